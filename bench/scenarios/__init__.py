"""The scenario families of `make bench` and `make bench-scale`, one module (or package) each."""
