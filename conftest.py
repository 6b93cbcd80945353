"""Test-wide settings, for the tests under tests/ and the doctests in labelclean/."""

import torch

# Small batches gain nothing from threads, and spinning OpenMP threads thrash when the two
# cores are shared: one thread keeps the suite fast and steady.
torch.set_num_threads(1)
