"""Benchmarks that print figures (never timed unit tests): run them on a quiet machine."""
