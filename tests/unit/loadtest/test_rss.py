"""RSS per process class: the growth between two samples, its findings and tables. No services."""

from __future__ import annotations

from loadtest import rss

MB = rss.MB


def sample(processes: dict[int, tuple[str, float]]) -> rss.Sample:
    return rss.Sample(0.0, {pid: (kind, int(mb * MB)) for pid, (kind, mb) in processes.items()})


def test_growth_compares_the_same_processes_and_flags_over_the_limit() -> None:
    first = sample({1: ("kafka", 500), 2: ("serve_pool_replica", 200), 3: ("serve_proxy", 100)})
    last = sample(
        {
            1: ("kafka", 540),
            2: ("serve_pool_replica", 260),
            3: ("serve_proxy", 100),
            4: ("serve_pool_replica", 400),
        }
    )  # a replica the autoscaler added
    rows = {row.process_class: row for row in rss.growth(first, last, limit_pct=10)}
    assert (rows["kafka"].growth_pct, rows["kafka"].flagged) == (8.0, False)
    pool = rows["serve_pool_replica"]
    assert (pool.processes, pool.start_mb, pool.end_mb, pool.new) == (1, 200.0, 260.0, 1)
    assert (pool.growth_pct, pool.flagged) == (30.0, True)
    assert rows["serve_proxy"].growth_pct == 0.0


def test_growth_with_an_explanation_is_shown_not_flagged() -> None:
    first, last = sample({1: ("kafka", 100)}), sample({1: ("kafka", 150)})
    [row] = rss.growth(first, last, 10, explained={"kafka": "JVM heap grows to -Xmx"})
    assert row.growth_pct == 50.0 and not row.flagged
    assert row.explanation == "JVM heap grows to -Xmx"
    assert "explained" in rss.markdown_table([row], 10)


def test_growth_over_a_short_window_is_shown_not_judged() -> None:
    first = sample({1: ("ferretdb", 100)})
    for apart_s, flagged in ((42.0, False), (300.0, True)):
        last = rss.Sample(apart_s, {1: ("ferretdb", int(112 * MB))})
        [row] = rss.growth(first, last, 10, min_window_s=240)
        assert (row.growth_pct, row.flagged) == (12.0, flagged)
        assert ("not judged" in row.explanation) is not flagged


def test_growth_of_a_class_with_no_common_process() -> None:
    first = sample({1: ("serve_ingress_replica", 100)})
    last = sample({2: ("serve_ingress_replica", 120)})  # replaced
    [row] = rss.growth(first, last)
    assert (row.processes, row.growth_pct, row.flagged, row.new, row.gone) == (0, None, False, 1, 1)


def test_growth_table_marks_findings() -> None:
    rows = rss.growth(sample({1: ("raylet", 100)}), sample({1: ("raylet", 115)}), limit_pct=10)
    table = rss.markdown_table(rows, 10)
    assert "| raylet | 1 | 100.0 | 115.0 | +15.0% | 0 / 0 | FINDING: over 10% |" in table


def test_per_process_lists_every_pid() -> None:
    rows = rss.per_process(
        sample({1: ("a", 10), 2: ("b", 20)}), sample({2: ("b", 25), 3: ("c", 5)})
    )
    rows = [{k: v for k, v in row.items() if k != "title"} for row in rows]
    assert rows == [
        {"pid": 1, "class": "a", "start_mb": 10.0, "end_mb": None},
        {"pid": 2, "class": "b", "start_mb": 20.0, "end_mb": 25.0},
        {"pid": 3, "class": "c", "start_mb": None, "end_mb": 5.0},
    ]


def test_process_table_lists_each_pid() -> None:
    rows = rss.per_process(sample({7: ("kafka", 500)}), sample({7: ("kafka", 510), 8: ("x", 1)}))
    table = rss.process_table(rows)
    assert "| 7 | kafka | 500.0 | 510.0 |" in table
    assert "| 8 | x | - | 1.0 |" in table


def test_sampler_names_stack_and_extra_pids() -> None:
    import os

    sampler = rss.RssSampler(stack={"self-as-kafka": os.getpid()})
    taken = sampler.sample()
    assert taken.processes[os.getpid()][0] == "self-as-kafka"
    assert taken.processes[os.getpid()][1] > 0
