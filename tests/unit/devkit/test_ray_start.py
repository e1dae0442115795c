"""devkit.ray_start: the startup deadline is retried, every other error is not. No Ray."""

from __future__ import annotations

import pytest

from devkit.ray_start import init_local_ray

TIMED_OUT = Exception("The current node timed out during startup. This could happen because ...")


class FlakyInit:
    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls: list[dict[str, object]] = []
        self.shutdowns = 0

    def init(self, **kwargs: object) -> str:
        self.calls.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)
        return "context"

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_a_missed_startup_deadline_is_retried_after_a_shutdown() -> None:
    ray = FlakyInit([TIMED_OUT, TIMED_OUT])
    assert init_local_ray(init=ray.init, shutdown=ray.shutdown, num_cpus=2) == "context"
    assert ray.calls == [{"num_cpus": 2}] * 3
    assert ray.shutdowns == 2


def test_the_last_attempt_raises_the_startup_error() -> None:
    ray = FlakyInit([TIMED_OUT] * 3)
    with pytest.raises(Exception, match="timed out during startup"):
        init_local_ray(attempts=3, init=ray.init, shutdown=ray.shutdown)
    assert len(ray.calls) == 3


def test_any_other_error_is_raised_at_once() -> None:
    ray = FlakyInit([ConnectionError("GCS address not reachable")])
    with pytest.raises(ConnectionError):
        init_local_ray(init=ray.init, shutdown=ray.shutdown)
    assert (len(ray.calls), ray.shutdowns) == (1, 0)
