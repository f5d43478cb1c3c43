"""The benchmark harness behind `make bench` (entry point: benchmarks/run.py)."""
