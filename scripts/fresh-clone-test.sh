#!/usr/bin/env bash
# The fresh-machine check: clone a branch into a temporary folder, give it an empty home folder
# (no ~/.ray, no Go, Maven, uv or pip caches of yours) and run `make test` there, the way CI
# and a newcomer do. As root with `ip netns`, the tests run in a network namespace of their own
# (a 127.0.0.1 nobody else uses); otherwise the ports they need must be free.
#
#   scripts/fresh-clone-test.sh [--keep] [BRANCH]      (default: main)
#   scripts/fresh-clone-test.sh --bench [BRANCH]       `make bench` instead of `make test`
#   scripts/fresh-clone-test.sh --k8s-node [BRANCH]    a cold `make k8s-node` instead (root)
#
# --bench builds the seed peers with the installs, runs `make bench $BENCH_ARGS` in the clone and
# keeps the clone, so that its bench/results/latest.* can be copied back. --k8s-node runs a cold
# `make k8s-node` (its own installs, builds and network namespace; $K8S_NODE_ARGS passed on) and
# keeps the clone, so that a second `make -C CLONE k8s-node` shows the warm time.
#
# Installs (Python packages, Kafka jars, FerretDB's Go build, apt packages) run first, outside
# the namespace, where the package registries are reachable; `make test` then runs inside it.
# Prints the test summary and the wall time; exits with `make test`'s status. The clone is
# deleted after a pass and kept after a failure (--keep keeps it always).
set -euo pipefail

keep=0
bench=0
k8s_node=0
branch=main
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    --bench) bench=1; keep=1 ;;
    --k8s-node) k8s_node=1; keep=1 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fresh-clone-test: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) branch=$arg ;;
  esac
done

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
git -C "$repo" rev-parse --verify --quiet "refs/heads/$branch" >/dev/null \
  || { echo "fresh-clone-test: no branch '$branch' in $repo" >&2; exit 2; }

# The interpreter itself, not a pyenv shim: a shim looks for its versions in $HOME.
python=${PYTHON:-python3.11}
python=$("$python" -c 'import sys; print(sys.executable)') \
  || { echo "fresh-clone-test: $python not found; install Python 3.11 or set PYTHON" >&2; exit 1; }

work=$(mktemp -d /tmp/votes-fresh.XXXXXX)
clone=$work/votes
home=$work/home
log=$work/make-test.log
((k8s_node)) && log=$work/make-k8s-node.log
mkdir -p "$home"
started=$(date +%s)
say() { printf '[fresh-clone-test %(%H:%M:%S)T] %s\n' -1 "$*"; }

git clone --quiet --branch "$branch" --single-branch "$repo" "$clone"
say "cloned $branch ($(git -C "$clone" log -1 --format='%h %s' | cut -c1-72)) into $clone"

# Rust's toolchain is installed per user (rustup): keep pointing at it, as at Go's GOROOT, while
# crates download into the clone's own cache (bench/peers/seed_toolchains.py sets CARGO_HOME).
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}

# Nothing from the real home folder or the caller's Ray/votes settings reaches the run.
isolated=(
  env -u RAY_AUTH_MODE -u RAY_AUTH_TOKEN -u RAY_AUTH_TOKEN_PATH -u RAY_ADDRESS
  -u GOPATH -u GOCACHE -u GOMODCACHE -u GOFLAGS -u MAVEN_OPTS -u VIRTUAL_ENV
  -u CARGO_HOME -u CARGO_TARGET_DIR RUSTUP_HOME="$rustup_home"
  HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_CACHE_HOME="$home/.cache"
  XDG_DATA_HOME="$home/.local/share" XDG_STATE_HOME="$home/.local/state"
  GOPATH="$home/go" GOCACHE="$home/.cache/go-build" MAVEN_OPTS="-Dmaven.repo.local=$home/.m2"
  UV_CACHE_DIR="$home/.cache/uv" PIP_CACHE_DIR="$home/.cache/pip" PYTHON="$python"
)
for name in $(env | grep -o '^VOTES_[A-Z_]*' || true); do isolated+=(-u "$name"); done

netns=""
cleanup() {
  if [[ -n "$netns" ]]; then
    # Whatever still runs in the namespace was started by this run: stop it by PID.
    "${isolated[@]}" ip netns exec "$netns" make -C "$clone" -s stack-down >/dev/null 2>&1 || true
    for pid in $(ip netns pids "$netns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 2
    for pid in $(ip netns pids "$netns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$netns" 2>/dev/null || true
  else
    "${isolated[@]}" make -C "$clone" -s stack-down >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if ((k8s_node)); then
  # No install step and no namespace of ours: the target installs what it needs and makes its own.
  say "running a cold make k8s-node ${K8S_NODE_ARGS+K8S_NODE_ARGS=\"$K8S_NODE_ARGS\"} (log: $log)"
  set +e
  node_args=()
  [[ -v K8S_NODE_ARGS ]] && node_args=(K8S_NODE_ARGS="$K8S_NODE_ARGS")
  "${isolated[@]}" "${node_args[@]}" make -C "$clone" k8s-node 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  elapsed=$(($(date +%s) - started))
  say "summary: $(grep -E '^k8s-node: (OK|FAILED)' "$log" | tail -n 1 || echo "no result line")"
  say "wall time: $((elapsed / 60)) min $((elapsed % 60)) s (clone, installs, builds, the run); exit $status"
  say "kept $work (the clone with its .k8s-lab caches, its home folder and the log)"
  trap - EXIT
  exit "$status"
fi

say "installing (outside any namespace: the registries must be reachable)"
"${isolated[@]}" make -C "$clone" install
if ((bench)); then
  say "building the seed peers (crates and Go modules come from the registries)"
  "${isolated[@]}" make -C "$clone" bench-peers || say "seed peers not built: the bench reports them skipped"
fi

if [[ $(id -u) -eq 0 ]] && ip netns list >/dev/null 2>&1; then
  netns=votes-fresh-$$
  ip netns add "$netns"
  ip netns exec "$netns" ip link set lo up
  runner=("${isolated[@]}" ip netns exec "$netns")
  say "running make test in network namespace $netns (127.0.0.1 of its own)"
else
  taken=()
  for port in 6379 8088 9092 9093 18000 19000 27017 32000 32040 32041 32042 32043; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then taken+=("$port"); fi
  done
  if ((${#taken[@]})); then
    echo "fresh-clone-test: ports in use on 127.0.0.1: ${taken[*]} (a make run or stack of yours?)" \
         "- stop what uses them, or run as root for a network namespace of its own" >&2
    exit 1
  fi
  runner=("${isolated[@]}")
  say "running make test (no network namespace: not root or no 'ip netns'; ports checked free)"
fi

set +e
if ((bench)); then
  "${runner[@]}" bash -c 'cd "$1" && make bench BENCH_ARGS="$2"' _ "$clone" "${BENCH_ARGS:-}" 2>&1 | tee "$log"
else
  "${runner[@]}" bash -c 'cd "$1" && CI=true make test' _ "$clone" 2>&1 | tee "$log"
fi
status=${PIPESTATUS[0]}
set -e

elapsed=$(($(date +%s) - started))
summary=$(grep -E '[0-9]+ (passed|failed|errors?)\b.* in [0-9.]+s|done in [0-9.]+ (s|min) \(expected' "$log" \
  | tail -n 1 || true)
say "summary: ${summary:-no pytest summary line (see $log)}"
say "wall time: $((elapsed / 60)) min $((elapsed % 60)) s (clone, installs and the run); exit $status"
cleanup
netns=""
trap - EXIT
if ((status == 0 && keep == 0)); then
  chmod -R u+w "$work" 2>/dev/null || true  # Go's module cache is read-only by default
  rm -rf "$work"
else
  say "kept $work (the clone, its home folder and make-test.log)"
fi
exit "$status"
