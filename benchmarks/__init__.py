"""Benchmarks: run each as ``python -m benchmarks.bench_<topic>``."""
