"""The soak's command line: its defaults and the arguments it refuses. No services."""

from __future__ import annotations

import pytest

from loadtest import soak


def test_default_warmup_and_probes() -> None:
    assert soak.parse_args([]).warmup == 60
    assert soak.parse_args(["--duration", "60"]).warmup == 15
    assert soak.parse_args([]).probes is True
    assert soak.parse_args(["--host", "http://127.0.0.1:8000"]).probes is False
    assert soak.parse_args(["--host", "http://h:8000", "--probes"]).probes is True
    with pytest.raises(SystemExit):
        soak.parse_args(["--share", "1.5"])


def test_quick_is_a_short_smoke_with_denser_samples() -> None:
    quick = soak.parse_args(["--quick"])
    assert (quick.duration, quick.sample_every, quick.warmup) == (120, 15, 30)
    assert soak.parse_args(["--quick", "--duration", "200"]).duration == 200
    assert soak.parse_args([]).duration == 600
