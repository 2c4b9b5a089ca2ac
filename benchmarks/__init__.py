"""Benchmarks: data generators and timed runs (``python benchmarks/<name>.py``)."""
