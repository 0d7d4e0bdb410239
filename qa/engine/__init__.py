"""Comparison engine: masks, numba kernels, matching and the batched comparison of annotator pairs."""
