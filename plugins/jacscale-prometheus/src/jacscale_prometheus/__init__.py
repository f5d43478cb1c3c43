"""Prometheus metrics for jacscale."""
