"""The autoscaling scenario on a fake multi-node Ray cluster (`python -m devkit.autoscale`)."""
