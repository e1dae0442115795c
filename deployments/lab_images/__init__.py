"""The lab's container images, built here from Debian, PyPI, Maven and Go (no registry)."""
