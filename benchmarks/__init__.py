"""Benchmarks of labelclean against the tools users would pick instead (run: python -m benchmarks)."""
