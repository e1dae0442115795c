# The votes image: Ray 2.60 (CPU, Python 3.11) plus the votes package and its runtime
# dependencies, for the KubeRay RayService (kuberay/rayservice.yaml) and anywhere else Ray runs.
#
#   docker build -t ghcr.io/votes-contest/votes:0.1.0 .
#   docker push ghcr.io/votes-contest/votes:0.1.0
#
# The tag is the version in pyproject.toml; the Ray version must match pyproject's ray pin and the
# RayService's rayVersion (tests/unit/test_dockerfile.py and
# tests/unit/deployments/test_manifests_rayservice.py check both).
# No credentials in here: they come from the Secret votes-secrets at run time.
#
# RAY_BASE_IMAGE is the Ray image to build on. Leave it alone: the default is the upstream image.
# Where no registry is reachable, the lab builds a stand-in from Debian 12 and PyPI and passes it
# here (deployments/k8s-lab/images.py, docs/kubernetes.md "The real node: lab-only differences").
ARG RAY_BASE_IMAGE=rayproject/ray:2.60.0-py311
FROM ${RAY_BASE_IMAGE}

WORKDIR /home/ray/votes

# 1. Runtime dependencies only (pyproject's [project].dependencies, not the dev or ops extras), at
#    the versions of requirements.lock (used as constraints). Its own layer: code changes reuse it.
COPY --chown=ray:users pyproject.toml requirements.lock ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--no-cache-dir', \
'--constraint', 'requirements.lock', *deps])"

# 2. The package itself (serve_app, with its generated gRPC stubs and static page). README* is
#    optional (pyproject's readme); a wildcard next to a file that exists may match nothing.
COPY --chown=ray:users pyproject.toml README* ./
COPY --chown=ray:users proto/ proto/
COPY --chown=ray:users serve_app/ serve_app/
RUN python -m pip install --no-cache-dir --no-deps . \
    && python -c "import serve_app.app, serve_app.grpc_stubs.votes_pb2_grpc"

# KubeRay replaces the command with `ray start ...`; Serve imports serve_app.app:build_app.
