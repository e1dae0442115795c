"""What the stack needs to know about each part (Kafka, Redis, FerretDB): one small interface."""

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from deployments.local.stack.config import Config


class Service(ABC):
    """One part of the stack: how it is installed, started, checked and recognised by its pid."""

    name: ClassVar[str]
    startup_timeout_s: ClassVar[float] = 30.0
    port_variables: ClassVar[str]  # the VOTES_* variables that move its ports, for error messages

    def __init__(self, config: Config, say: Callable[[str], None]) -> None:
        self.config = config
        self._say = say

    @property
    def data_dir(self) -> Path:
        """Its working directory and data, kept across down/up."""
        return self.config.data_dir(self.name)

    @property
    def log_path(self) -> Path:
        return self.config.log_path(self.name)

    @abstractmethod
    def ports(self) -> tuple[int, ...]:
        """Every port it listens on; the first one is the one clients use."""

    @abstractmethod
    def install(self) -> None:
        """Install it if missing (the only step that needs the network); quick when installed."""

    @abstractmethod
    def prepare(self) -> None:
        """Write what it needs on disk before it starts (config files, formatted storage)."""

    @abstractmethod
    def command(self) -> list[str]:
        """Its command line (run in data_dir, without the `nice` prefix)."""

    def run_as(self) -> str | None:
        """The user to run it as; None: the stack's own user."""
        return None

    @abstractmethod
    def is_ours(self, pid: int, argv: list[str]) -> bool:
        """Whether the live process `pid` (with this argv) is this stack's instance of it."""

    @abstractmethod
    def check(self, timeout_s: float, provision: bool) -> str | None:
        """None if it answers its health check, else the problem; may raise any client error.

        provision: also create what clients expect to exist (Kafka's topics), during startup.
        """

    def health_problem(self, timeout_s: float, provision: bool = False) -> str | None:
        """check(), with a client error reported as the problem instead of raised."""
        try:
            return self.check(timeout_s, provision)
        except Exception as exc:  # noqa: BLE001 - any client error means "not healthy"
            return f"{type(exc).__name__}: {exc}".strip()
