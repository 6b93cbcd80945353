"""labelclean: find wrong labels, propose better ones, fill in missing ones.

Estimators (scikit-learn compatible, PyTorch inside): :class:`CoTeachingFilter`,
:class:`SelfTrainer`, :class:`PUClassifier`; and :class:`ContrastiveEncoder`, a transformer
that learns features without labels, to put in front of them. Your own model's probabilities:
:func:`find_label_issues`. Data-ops API: :func:`filter_labels`, :func:`selftrain_labels`,
:func:`pu_labels`. Several annotators per row: :class:`AnnotatorConsensus`. Command line:
``labelclean --help``.

The names are imported on first use: ``import labelclean`` itself loads neither PyTorch nor
pyarrow, so the command line answers ``--help`` at once and the estimators work without the
parquet stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "AnnotatorConsensus": "consensus",
    "CoTeachingFilter": "coteaching",
    "Consistency": "self_training",
    "ContrastiveEncoder": "contrastive",
    "NoisyStudent": "self_training",
    "PUClassifier": "pu",
    "Relabel": "self_training",
    "SelfTrainer": "self_training",
    "detection_scores": "metrics",
    "filter_labels": "api",
    "find_label_issues": "detection",
    "make_noisy_labels": "noise",
    "pu_labels": "api",
    "selftrain_labels": "api",
}

__all__ = [
    "AnnotatorConsensus",
    "CoTeachingFilter",
    "Consistency",
    "ContrastiveEncoder",
    "NoisyStudent",
    "PUClassifier",
    "Relabel",
    "SelfTrainer",
    "detection_scores",
    "filter_labels",
    "find_label_issues",
    "make_noisy_labels",
    "pu_labels",
    "selftrain_labels",
]

if TYPE_CHECKING:  # what static tools and IDEs see
    from .api import filter_labels, pu_labels, selftrain_labels
    from .consensus import AnnotatorConsensus
    from .contrastive import ContrastiveEncoder
    from .coteaching import CoTeachingFilter
    from .detection import find_label_issues
    from .metrics import detection_scores
    from .noise import make_noisy_labels
    from .pu import PUClassifier
    from .self_training import Consistency, NoisyStudent, Relabel, SelfTrainer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labelclean' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
