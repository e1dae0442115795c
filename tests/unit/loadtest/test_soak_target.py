"""The soak's own instance: what `make run` ships, with Serve's fallback proxy on ports of its own.
No services."""

from __future__ import annotations

from loadtest import soak, soak_target


def test_own_instance_moves_serves_fallback_proxy_ports() -> None:
    """Serve's proxy behind HAProxy listens on 8500/9500 unless told otherwise, and every other
    instance's HAProxy falls back to those ports: ours must not be the one that answers."""
    import shutil

    from serve_app.serve_env import SERVE_ENV

    own = soak_target.OwnInstance(soak.parse_args(["--fallback-ports", "20134", "20135"]))
    try:
        env = own.serve.extra_env
        assert env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] == "20134"
        assert env["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"] == "20135"
        assert all(env[name] == value for name, value in SERVE_ENV.items())
        assert own.serve.mode == "haproxy"
        assert own.app["redis_url"].endswith("/9")
    finally:
        shutil.rmtree(own.serve.haproxy_dir, ignore_errors=True)
