"""Helpers shared by the tests, the benchmark (bench/) and the scripts (scripts/).

Each lives here once: names.py (a run's own topics, groups, databases), net.py (ports),
waiting.py (poll a condition, fail naming it), kafka.py (topics, reading a topic to its end,
a group's lag), serve.py (deploy a Serve config), counting_model.py (the counter script's rules
in memory), fake_cluster.py and autoscale_scenario.py (the autoscaling scenario that
tests/autoscaling and scripts/autoscale_demo.py run). None of it depends on pytest.
"""
