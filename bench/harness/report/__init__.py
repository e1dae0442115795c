"""The reports of `make bench` (latest.*) and `make bench-scale` (scale.*), one writer."""
