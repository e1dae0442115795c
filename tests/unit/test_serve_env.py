"""The Serve environment: one list, applied by `make run`, the test session and the RayService."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from serve_app import serve_env
from serve_app.serve_env import PORT_BLOCK_SIZE, SERVE_ENV, apply, private_instance

ROOT = Path(__file__).resolve().parents[2]


def test_haproxy_direct_ingress_and_the_grpc_limit_are_on() -> None:
    assert SERVE_ENV["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert SERVE_ENV["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert SERVE_ENV["RAY_SERVE_GRPC_MAX_MESSAGE_SIZE"] == str(4 * 1024 * 1024)


def test_a_value_the_user_set_wins() -> None:
    environ = {"RAY_SERVE_ENABLE_HA_PROXY": "0", "PATH": "/bin"}
    apply(environ)
    assert environ["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    assert environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1" and environ["PATH"] == "/bin"


def test_a_private_instance_keeps_to_its_port_block_and_folder(tmp_path: Path) -> None:
    state = tmp_path / "h"
    env = private_instance(state, 32000)
    ports = sorted(int(v) for k, v in env.items() if k.endswith("_PORT"))
    assert ports[0] == 32000 and ports[-1] < 32000 + PORT_BLOCK_SIZE
    assert len(set(ports)) == len(ports)  # no two listeners on one port
    http = range(
        int(env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"]),
        int(env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]) + 1,
    )
    grpc = range(
        int(env["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"]),
        int(env["RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"]) + 1,
    )
    assert not set(http) & set(grpc)
    # Serve's fallback proxy too: on its defaults (8500/9500) two instances' votes mix.
    assert {
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT",
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT",
    } <= env.keys()
    assert state.is_dir()
    paths = [v for k, v in env.items() if "SOCKET" in k or "FILE" in k or "STATE_BASE" in k]
    assert paths and all(p.startswith(str(state)) for p in paths)


def test_make_run_and_the_rayservice_use_the_list() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert (
        "-m serve_app.serve_env --ray-token-file $(RAY_TOKEN) $(VENV)/bin/serve run config.yaml"
        in makefile
    )
    manifest = list(yaml.safe_load_all((ROOT / "kuberay/rayservice.yaml").read_text()))
    (service,) = [doc for doc in manifest if doc and doc.get("kind") == "RayService"]
    cluster = service["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]
    for pod in pods:
        (container,) = [
            c for c in pod["template"]["spec"]["containers"] if c["name"].startswith("ray")
        ]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert {name: env.get(name) for name in SERVE_ENV} == SERVE_ENV


def test_the_wrapper_runs_the_command_with_the_environment() -> None:
    probe = "import os; print(os.environ['RAY_SERVE_ENABLE_HA_PROXY'], os.environ['KEEP'])"
    result = subprocess.run(
        [sys.executable, "-m", "serve_app.serve_env", sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"KEEP": "yes", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "yes"]


def test_the_wrapper_names_a_command_it_cannot_run() -> None:
    assert serve_env.main([]) == 2
    result = subprocess.run(
        [sys.executable, "-m", "serve_app.serve_env", "/nonexistent/serve"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 127 and "cannot run '/nonexistent/serve'" in result.stderr


def test_a_token_file_of_our_own_is_made_once_and_kept_private(tmp_path: Path) -> None:
    token_file = tmp_path / "ray" / "auth_token"
    env = serve_env.ray_token_env(token_file)
    assert env == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    token = token_file.read_text()
    assert len(token) == 64 and int(token, 16) >= 0
    assert token_file.stat().st_mode & 0o777 == 0o600
    serve_env.ray_token_env(token_file)
    assert token_file.read_text() == token  # a second cluster shares it, never replaces it


def test_an_auth_choice_the_caller_made_wins(tmp_path: Path) -> None:
    for chosen in (
        {"RAY_AUTH_MODE": "disabled"},
        {"RAY_AUTH_TOKEN": "t"},
        {"RAY_AUTH_TOKEN_PATH": "/elsewhere"},
    ):
        assert serve_env.auth_settings(chosen, tmp_path / "auth_token") == {}
    assert not (tmp_path / "auth_token").exists()
    assert serve_env.auth_settings({}, tmp_path / "auth_token")["RAY_AUTH_MODE"] == "token"


def test_the_wrapper_gives_the_command_the_token_file(tmp_path: Path) -> None:
    probe = "import os; print(os.environ['RAY_AUTH_MODE'], os.environ['RAY_AUTH_TOKEN_PATH'])"
    token_file = tmp_path / "auth_token"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serve_app.serve_env",
            "--ray-token-file",
            str(token_file),
            sys.executable,
            "-c",
            probe,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["token", str(token_file)]
    assert f"Ray token in {token_file}" in result.stderr


def test_choosing_the_token_does_not_import_ray() -> None:
    # tests/conftest.py sets RAY_AUTH_MODE through this module before Ray is imported, and Ray
    # reads the mode once, at import (docs/decisions/0010-ray-token-file.md).
    probe = (
        "import sys, serve_app.serve_env; "
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
