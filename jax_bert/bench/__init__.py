"""Benchmarks of the pretraining step (pretraining.py) and the timing helpers they share (timing.py)."""
