"""The report's comparisons with their uncertainty: HTTP or gRPC, the seed against the Python
peers and Serve, and each variant against its baseline; each a ratio of medians with its 95%
bootstrap interval over the repeats (bench/harness/stats.py)."""

from __future__ import annotations

import statistics
from typing import Any

from bench.harness import stats
from bench.harness.report.sections import _num, find, rate
from bench.harness.targets import mode_suffixes, run_rates

Scenario = dict[str, Any]


# ---- comparisons with their uncertainty ------------------------------------------------------

# (section, what, scenario a, label a, scenario b, label b); "{s}" is a Serve mode's suffix.
HTTP_OR_GRPC = [
    (
        "Serve's floor (no-op), one request each",
        "serve_noop_http{s}",
        "HTTP",
        "serve_noop_grpc{s}",
        "gRPC",
    ),
    (
        "single votes through Serve, ingest only",
        "serve_http_single_ingest{s}",
        "HTTP",
        "serve_grpc_single_ingest{s}",
        "gRPC",
    ),
    (
        "batches of 1000 through Serve, ingest only",
        "serve_http_batch_ingest{s}",
        "HTTP",
        "serve_grpc_batch_ingest{s}",
        "gRPC",
    ),
    (
        "single votes, plain Python servers without Ray",
        "plain_http_peer",
        "HTTP",
        "plain_grpc_peer",
        "gRPC",
    ),
    (
        "batches of 1000, plain Python servers",
        "plain_http_peer_batch",
        "HTTP",
        "plain_grpc_peer_batch",
        "gRPC",
    ),
    (
        "single votes, the seed (Rust HTTP, Go gRPC)",
        "seed_rust_http",
        "HTTP",
        "seed_go_grpc",
        "gRPC",
    ),
    ("batches of 1000, the seed", "seed_rust_http_batch", "HTTP", "seed_go_grpc_batch", "gRPC"),
    (
        "the seed's /grpc/insert (HTTP -> Go client -> Go gRPC server) or its gRPC direct",
        "seed_go_http_grpc",
        "/grpc/insert",
        "seed_go_grpc",
        "gRPC direct",
    ),
]
SEED_VS = [
    ("seed_rust_http", ["plain_http_peer", "serve_http_single_ingest{s}"]),
    ("seed_go_grpc", ["plain_grpc_peer", "serve_grpc_single_ingest{s}"]),
    ("seed_rust_http_batch", ["plain_http_peer_batch", "serve_http_batch_ingest{s}"]),
    ("seed_go_grpc_batch", ["plain_grpc_peer_batch", "serve_grpc_batch_ingest{s}"]),
    ("seed_go_http_grpc", ["plain_http_peer", "serve_http_single_ingest{s}"]),
]


def _compare(
    scenarios: list[Scenario], section: str, what: str, a: str, label_a: str, b: str, label_b: str
) -> dict[str, Any] | None:
    rates_a, rates_b = run_rates(find(scenarios, a)), run_rates(find(scenarios, b))
    if not rates_a or not rates_b:
        return None
    text, interval = stats.verdict(label_a, rates_a, label_b, rates_b)
    return {
        "section": section,
        "what": what,
        "a": a,
        "b": b,
        "label_a": label_a,
        "label_b": label_b,
        "rate_a": rate(scenarios, a),
        "rate_b": rate(scenarios, b),
        "verdict": text,
        "faster_over_slower": interval.as_dict(),
    }


def comparisons(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    suffixes = mode_suffixes(scenarios) or [""]
    for suffix in suffixes:
        for what, template_a, label_a, template_b, label_b in HTTP_OR_GRPC:
            a, b = template_a.format(s=suffix), template_b.format(s=suffix)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            mode = f" ({suffix.strip('[]')} mode)" if suffix and "{s}" in template_a else ""
            if entry := _compare(scenarios, "http_or_grpc", what + mode, a, label_a, b, label_b):
                found.append(entry)
        for seed, others in SEED_VS:
            for template in others:
                other = template.format(s=suffix)
                if (seed, other) in seen:
                    continue
                seen.add((seed, other))
                if entry := _compare(
                    scenarios, "seed", f"{seed} or {other}", seed, seed, other, other
                ):
                    found.append(entry)
    return found


def comparison_lines(found: list[dict[str, Any]], section: str) -> list[str]:
    return [
        f"- {c['what']}: {c['label_a']} {_num(c['rate_a'])} vs {c['label_b']} {_num(c['rate_b'])} "
        f"{'requests' if c['a'].startswith('serve_noop') else 'votes'}/s: {c['verdict']}."
        for c in found
        if c["section"] == section
    ]


def http_or_grpc(scenarios: list[Scenario], found: list[dict[str, Any]]) -> list[str]:
    lines = comparison_lines(found, "http_or_grpc")
    single = [
        s["votes_per_s"]
        for s in scenarios
        if s.get("votes_per_s")
        and s.get("kind") == "single"
        and s["name"].startswith("serve_")
        and "_ingest" in s["name"]
    ]
    batch = [
        s["votes_per_s"]
        for s in scenarios
        if s.get("votes_per_s")
        and s.get("kind") == "batch"
        and s["name"].startswith("serve_")
        and "_ingest" in s["name"]
    ]
    if single and batch:
        lines.append(
            f"- The protocol matters less than batching: through Serve the best batch path carries "
            f"{max(batch) / max(single):.0f}x the votes/s of the best single-vote path."
        )
    return lines


def variant_ratios(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    """Each variant (bench.harness.variants: --persist-write-concerns, --batch-transactions) against
    its baseline: the ratio of medians over the baseline's interleaved repeats and the variant's."""
    found = []
    for variant in scenarios:
        base = find(scenarios, variant.get("variant_of") or "")
        if not base:
            continue
        paired = [r for r in base.get("runs", []) if r.get("interleaved")]
        rates_base = run_rates({"runs": paired}) if paired else run_rates(base)
        rates_variant = run_rates(variant)
        if not rates_base or not rates_variant:
            continue
        found.append(
            {
                "what": variant.get("variant_what"),
                "setting": variant.get("variant_setting"),
                "flag": variant.get("variant_flag"),
                "baseline": base["name"],
                "variant": variant["name"],
                "baseline_value": variant.get("variant_baseline"),
                "variant_value": variant.get("variant"),
                "baseline_votes_per_s": statistics.median(rates_base),
                "variant_votes_per_s": statistics.median(rates_variant),
                "baseline_repeats": len(rates_base),
                "variant_repeats": len(rates_variant),
                "baseline_repeats_all": len(run_rates(base)),
                "baseline_over_variant": stats.ratio_ci(rates_base, rates_variant).as_dict(),
            }
        )
    return found


def variant_lines(scenarios: list[Scenario]) -> list[str]:
    lines = []
    for v in variant_ratios(scenarios):
        ratio = stats.Interval(**v["baseline_over_variant"])
        unclear = (
            "; no clear difference (the interval contains 1)"
            if ratio.n > 1 and ratio.contains(1)
            else ""
        )
        fewer = (
            f"; the baseline's other {v['baseline_repeats_all'] - v['baseline_repeats']} repeats, "
            "not "
            "interleaved, are left out of the ratio"
            if v["baseline_repeats_all"] > v["baseline_repeats"]
            else ""
        )
        lines.append(
            f"- {v['what']} (`{v['setting']}`), {v['baseline']} vs {v['variant']}: "
            f"{v['baseline_value']} {_num(v['baseline_votes_per_s'])} vs {v['variant_value']} "
            f"{_num(v['variant_votes_per_s'])} votes/s, "
            f"{v['baseline_value']}/{v['variant_value']} = "
            f"{ratio.point:.2f} ({ratio.label}){unclear}. Interleaved repeats: "
            f"{v['baseline_repeats']} of each{fewer}."
        )
    return lines


def seed_section(scenarios: list[Scenario], found: list[dict[str, Any]]) -> list[str]:
    seeds = [s for s in scenarios if s["name"].startswith("seed_")]
    if not seeds:
        return []
    lines = [
        (
            "The seed's own servers, built from its files by `bench/peers/seed_build.py` and run "
            "in "
            "this same run: "
            "each against the Python peers and against votes on Ray Serve (ingest only, like for "
            "like). "
            "CPU per vote by process: the CPU table below (`peer`: the seed's server, "
            "`peer_client`: its Go "
            "HTTP client in front of the gRPC server on the /grpc/insert path)."
        ),
        "",
    ]
    lines += [f"- {s['name']}: skipped: {s['skipped']}" for s in seeds if s.get("skipped")]
    lines += comparison_lines(found, "seed")
    return [*lines, ""]
