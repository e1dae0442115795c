"""Variants: a scenario measured again under another value of an app setting, in the same run.

The first value is the baseline and keeps the scenario's name; each other value's repeats are
interleaved with the baseline's (A/B, B/A, ...), and the report gives their ratio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serve_app.settings import MONGO_WRITE_CONCERNS, Settings


@dataclass(frozen=True)
class Variants:
    """A scenario measured under several values of an app setting in one run: the first value is
    the baseline and keeps the scenario's name; each other value's repeats are interleaved with the
    baseline's (`interleaved`), and the report gives their ratio (variant_lines in
    bench/harness/report/comparisons.py)."""

    flag: str  # the bench.run option that chooses the values
    setting: str  # the app setting (serve_app.settings.Settings)
    what: str  # what the report calls it
    values: dict[str, Any]  # a value as the option spells it -> the setting's value
    suffixes: dict[str, str] = field(
        default_factory=dict
    )  # a value -> its names' suffix (default: itself)
    default: str = ""  # the option's default

    def parse(self, text: str) -> list[str]:
        """The values to compare, the baseline first, each once (empty text: the default)."""
        chosen = list(
            dict.fromkeys(v.strip() for v in (text or self.default).split(",") if v.strip())
        )
        for value in chosen:
            if value not in self.values:
                raise SystemExit(
                    f"{self.flag}: unknown value {value!r}; known: {', '.join(self.values)}"
                )
        if not chosen:
            raise SystemExit(f"{self.flag} names no value")
        return chosen

    def name(self, base: str, value: str, baseline: str) -> str:
        """`base` for the baseline, `base_<suffix>` for another value."""
        return base if value == baseline else f"{base}_{self.suffixes.get(value, value)}"

    def info(self, value: str, chosen: list[str], baseline_name: str) -> dict[str, Any]:
        """What a scenario records about its variant: the report and the targets read it."""
        info = {
            "variant_setting": self.setting,
            "variant_flag": self.flag,
            "variant_what": self.what,
            "variant": value,
            "variant_baseline": chosen[0],
        }
        return info | ({"variant_of": baseline_name} if value != chosen[0] else {})


WRITE_CONCERNS = Variants(
    "--persist-write-concerns",
    "mongo_write_concern",
    "vote log write concern",
    {c: c for c in MONGO_WRITE_CONCERNS},
    default=f"{Settings.model_fields['mongo_write_concern'].default},acknowledged",
)
BATCH_TRANSACTIONS = Variants(
    "--batch-transactions",
    "kafka_batch_transactions",
    "Kafka transaction per batch",
    {"on": True, "off": False},
    suffixes={"on": "txn", "off": "no_txn"},
    default="on,off",
)
VARIANTS = (WRITE_CONCERNS, BATCH_TRANSACTIONS)
# The scenario --batch-transactions varies (ingest only: the transaction is the ingress's work).
BATCH_TRANSACTIONS_SCENARIO = "serve_http_batch_ingest"


def write_concerns(text: str) -> list[str]:
    """--persist-write-concerns: the write concerns to compare, the baseline first."""
    return WRITE_CONCERNS.parse(text)


def batch_transactions(text: str, app_args: list[str]) -> list[str]:
    """--batch-transactions: on and/or off, the baseline first.
    `--app-arg kafka_batch_transactions=X`
    (decision 0023's way) instead: X alone; both at once: refused."""
    given = [
        value.strip().lower()
        for key, _, value in (item.partition("=") for item in app_args)
        if key.strip() == BATCH_TRANSACTIONS.setting
    ]
    if given and text:
        raise SystemExit(
            f"--app-arg {BATCH_TRANSACTIONS.setting}=... and --batch-transactions both set "
            f"{BATCH_TRANSACTIONS.setting}: use --batch-transactions (e.g. off, or off,on)"
        )
    if given:
        return ["on" if given[-1] in ("true", "1", "yes", "on") else "off"]
    return BATCH_TRANSACTIONS.parse(text)


def persist_name(replicas: int, write_concern: str, baseline: str) -> str:
    """persist_x1 for the baseline write concern, persist_x1_acknowledged for another."""
    return WRITE_CONCERNS.name(f"persist_x{replicas}", write_concern, baseline)


def interleaved(choices: list[str], repeats: int, variant_repeats: int | None = None) -> list[str]:
    """The order of the repeats: A/B, then B/A, ... so that a drift of the machine meets both;
    with fewer variant repeats, the baseline's remaining repeats after them."""
    rounds = repeats if variant_repeats is None else min(repeats, variant_repeats)
    order = [
        choice
        for index in range(rounds)
        for choice in (choices if index % 2 == 0 else list(reversed(choices)))
    ]
    return order + choices[:1] * (repeats - rounds)
