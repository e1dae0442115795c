"""One-off investigations beside `make bench`: the ingress's hot path and cost, FerretDB's
backends."""
