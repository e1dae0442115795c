"""Redis: Debian's redis-server (installed with apt-get when missing), AOF fsynced on every
write."""

import os
import shutil

from deployments.local.stack import installing
from deployments.local.stack.errors import StackError
from deployments.local.stack.processes import working_dir
from deployments.local.stack.service import Service


class Redis(Service):
    name = "redis"
    port_variables = "VOTES_REDIS_PORT"

    def ports(self) -> tuple[int, ...]:
        return (self.config.redis_port,)

    def install(self) -> None:
        if shutil.which("redis-server"):
            return
        if os.geteuid() != 0:
            raise StackError(
                "redis-server is not installed and the stack is not run as root; install it with "
                "`sudo apt-get install -y redis-server` (its system service is not used)",
                "redis",
            )
        self._say(
            "installing redis-server with apt-get (Debian package; its service is not used) ..."
        )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        installing.run(["apt-get", "update", "-q"], part="redis", env=env)
        installing.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "redis-server"],
            part="redis",
            env=env,
        )

    def prepare(self) -> None:
        """Nothing to write: every setting is on its command line."""

    def command(self) -> list[str]:
        return [
            installing.which("redis-server", "redis"),
            "--bind", "127.0.0.1",
            "--port", str(self.config.redis_port),
            "--dir", str(self.data_dir),
            # Counters are committed before Kafka offsets: an acknowledged write must survive.
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", "",
        ]  # fmt: skip

    def is_ours(self, pid: int, argv: list[str]) -> bool:
        # redis-server rewrites its argv into a title ("redis-server 127.0.0.1:6379"), but it
        # chdirs into --dir, so its working directory identifies our instance.
        return "redis-server" in argv[0] and working_dir(pid) == self.data_dir

    def check(self, timeout_s: float, provision: bool) -> str | None:
        """PING."""
        import redis

        client = redis.Redis(
            host="127.0.0.1",
            port=self.config.redis_port,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        try:
            return None if client.ping() else "PING failed"
        finally:
            client.close()
