"""Test doubles only the tests use: counting_model.py (the counter script's rules in memory).

What the benchmark, the load tests and the scripts share with the tests is in devkit/.
"""
