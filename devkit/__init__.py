"""The project's development kit: what the tests, the benchmark (bench/), the load tests
(loadtest/) and the scripts (scripts/) share. Never in the image, and it never imports `tests`.

names.py (a run's own topics, groups, databases), net.py (ports), waiting.py (poll a condition,
fail naming it), kafka.py (topics, reading a topic to its end, a group's lag), serve.py (deploy a
Serve config), latency_proxy.py (a TCP proxy that slows a store down), browser.py (headless
Chromium for the live page), chaos_report.py (`make chaos`'s table), k8s_validation/ (offline
validation of Kubernetes manifests against k8s_schemas/, the vendored CRDs), autoscale/ (the
fake multi-node cluster and the autoscaling scenario that tests/autoscaling and
scripts/autoscale_demo.py run). None of it depends on pytest.
"""
