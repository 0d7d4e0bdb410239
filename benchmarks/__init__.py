"""Benchmarks: each figure is a ratio against a baseline run in the same process on the same data."""
