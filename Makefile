# votes: every command a user or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) -m deployments.local.stack
# The Ray token of `make run`'s cluster lives with the stack, never in ~/.ray.
RAY_TOKEN := $(or $(VOTES_STACK_DIR),.stack)/ray/auth_token
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv install lint stubs stack-up stack-down stack-status stack-clean run test test-unit \
	lock manifests check-manifests chaos dashboards autoscale-demo test-autoscaling loadtest bench \
	fresh-clone-test k8s-lab k8s-images k8s-node k8s-node-binaries bench-peers bench-scale soak

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..." >&2; exit 1; }
	@echo "venv: creating $(VENV) and installing the locked dependencies (first time: a few minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv==0.13.8
	@$(VENV)/bin/uv pip sync -q --python $(PY) requirements.lock
	@$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	@touch $@

venv: $(STAMP) ## create .venv with the locked dependencies

install: $(STAMP) ## download and build everything `make test` needs (the only step that needs the network)
	$(STACK) install
	@scripts/install-chromium.sh

lint: $(STAMP) ## ruff format and rules (pyproject.toml), then mypy strict on serve_app
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

lock: ## re-resolve requirements.lock from pyproject.toml (runtime, dev and ops)
	$(VENV)/bin/uv pip compile -q pyproject.toml --extra dev --extra ops --python-version 3.11 -o requirements.lock

stubs: $(STAMP) ## regenerate the gRPC stubs from proto/votes.proto
	$(PY) -m serve_app.grpc_stubs.generate

manifests: $(STAMP) ## regenerate kuberay/rayservice.yaml from config.yaml, and the lab overlay
	$(PY) -m deployments.check_config config.yaml
	$(PY) -m deployments.manifests
	$(PY) -m deployments.lab_images.overlay

check-manifests: $(STAMP) ## exit 1 (with a diff) if kuberay/rayservice.yaml is stale
	$(PY) -m deployments.manifests --check
	$(PY) -m deployments.lab_images.overlay --check

dashboards: $(STAMP) ## regenerate the Grafana dashboards and provisioning (deployments/k8s/grafana)
	$(PY) -m deployments.dashboards

stack-up: $(STAMP) ## install (if missing) and start Kafka, Redis and FerretDB; waits until healthy
	$(STACK) up

stack-down: $(STAMP) ## stop the local stack, keep its data
	$(STACK) down

stack-status: $(STAMP) ## one line per part of the local stack
	$(STACK) status

stack-clean: $(STAMP) ## stop the local stack and delete its data and logs
	$(STACK) clean

run: stack-up ## the main job: local stack + `serve run config.yaml` (HTTP :8000, gRPC :9000)
	@$(PY) -m deployments.check_config config.yaml
	@echo "run: HTTP http://127.0.0.1:8000  gRPC 127.0.0.1:9000  Ray dashboard http://127.0.0.1:8265"
	$(PY) -m serve_app.serve_env --ray-token-file $(RAY_TOKEN) $(VENV)/bin/serve run config.yaml

test-unit: $(STAMP) ## the unit tests alone (no services needed)
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

test: install stack-up ## the whole suite against the real local stack (chaos in its short mode)
	@rm -f test-artifacts/chaos-report.jsonl
	$(PY) -m pytest tests -q -ra $(PYTEST_ARGS)

loadtest: $(STAMP) ## locust headless against `make run` (or LOADTEST_ARGS="--host ..."), then reconcile exactly
	$(PY) -m loadtest.run $(LOADTEST_ARGS)

bench: stack-up ## side-by-side benchmark (~40 min on 2 cores; seed peers built first); writes bench/results/latest.{json,md,png}
	$(PY) -m bench.run $(BENCH_ARGS)

bench-peers: $(STAMP) ## build the seed's Rust HTTP and Go gRPC peers once (make bench does it too)
	$(PY) -m bench.peers.seed build

bench-scale: stack-up ## ingest with 1/2/4/8 ingress replicas and persist with 1-6 consumers; writes bench/results/scale.*
	$(PY) -m bench.scale $(SCALE_ARGS)

soak: stack-up ## 10 min of locust at ~70% of capacity (SOAK_ARGS=--quick: 2 min), every panel checked
	$(PY) -m loadtest.soak $(SOAK_ARGS)

test-autoscaling: stack-up ## the multi-node autoscaling scenario alone (its own Ray cluster, ~3 min)
	$(PY) -m pytest tests/autoscaling -q -ra -m autoscaling $(PYTEST_ARGS)

autoscale-demo: stack-up ## watch Ray scale the pool on Kafka lag and add/remove nodes; writes docs/autoscale-timeline.md + PNG
	$(PY) scripts/autoscale_demo.py

chaos: stack-up ## the fault matrix, long and repeated; writes test-artifacts/chaos-report.md
	@rm -f test-artifacts/chaos-report.jsonl
	VOTES_CHAOS_FULL=1 $(PY) -m pytest tests/chaos -q -ra $(PYTEST_ARGS); status=$$?; \
	$(PY) -m devkit.chaos_report; exit $$status

fresh-clone-test: ## clone main with an empty HOME (own network namespace as root) and run make test there
	scripts/fresh-clone-test.sh $(FRESH_ARGS)

k8s-lab: $(STAMP) ## real kube-apiserver+kwok+KubeRay in a netns (root): deploy, check Services, tear down
	$(PY) deployments/k8s-lab/build.py
	$(PY) deployments/k8s-lab/lab.py $(K8S_LAB_ARGS)

k8s-images: $(STAMP) ## the lab's images into .k8s-lab/images, from Debian/PyPI/Maven/Go (root; cached)
	deployments/k8s-lab/host-packages.sh debootstrap buildah
	$(STACK) install  # FerretDB's binary and Kafka's jars go into the images (cached)
	$(PY) deployments/k8s-lab/images.py build $(K8S_IMAGES_ARGS)

# The whole proof by default; `make k8s-node K8S_NODE_ARGS=` proves the node alone.
K8S_NODE_ARGS ?= --app --load --pod-loss

k8s-node: $(STAMP) ## control plane + a real node in a netns, the app on it, load, pod loss (root)
	deployments/k8s-lab/host-packages.sh runc containernetworking-plugins iptables conntrack \
		busybox-static debootstrap buildah
	@# Binaries and images side by side (lines interleave; each says whose it is): the
	@# images mostly download while Go compiles.
	$(MAKE) --no-print-directory -j2 k8s-node-binaries k8s-images
	$(PY) deployments/k8s-lab/node_lab.py $(K8S_NODE_ARGS)

k8s-node-binaries: $(STAMP)
	$(PY) deployments/k8s-lab/build.py --node
