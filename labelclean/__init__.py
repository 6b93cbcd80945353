"""labelclean: find wrong labels, propose better ones, fill in missing ones."""

from .coteaching import CoTeachingFilter
from .metrics import detection_scores
from .noise import make_noisy_labels

__all__ = ["CoTeachingFilter", "detection_scores", "make_noisy_labels"]
__version__ = "0.1.0"
