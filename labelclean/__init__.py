"""labelclean: find wrong labels, propose better ones, fill in missing ones.

Estimators (scikit-learn compatible, PyTorch inside): :class:`CoTeachingFilter`,
:class:`SelfTrainer`, :class:`PUClassifier`; and :class:`ContrastiveEncoder`, a transformer
that learns features without labels, to put in front of them. Your own model's probabilities:
:func:`find_label_issues`. Data-ops API: :func:`filter_labels`, :func:`selftrain_labels`,
:func:`pu_labels`. Command line: ``labelclean --help``.
"""

from .api import filter_labels, pu_labels, selftrain_labels
from .contrastive import ContrastiveEncoder
from .coteaching import CoTeachingFilter
from .detection import find_label_issues
from .metrics import detection_scores
from .noise import make_noisy_labels
from .pu import PUClassifier
from .self_training import SelfTrainer

__all__ = [
    "CoTeachingFilter",
    "ContrastiveEncoder",
    "PUClassifier",
    "SelfTrainer",
    "detection_scores",
    "filter_labels",
    "find_label_issues",
    "make_noisy_labels",
    "pu_labels",
    "selftrain_labels",
]
__version__ = "0.1.0"
