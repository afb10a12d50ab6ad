"""Benchmarks are run on demand:  pytest benchmarks --benchmark-only  (not part of the test suite)."""
