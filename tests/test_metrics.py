"""Detection metrics (labelclean/metrics.py): precision, recall and F1 of a clean mask against the truth."""

import numpy as np
import pytest

from labelclean import detection_scores


def test_detection_scores():
    given = np.array([0, 1, 1, 0, 2, 2])
    true = np.array([0, 0, 1, 1, 2, 2])
    clean = np.array([True, False, False, True, True, True])  # flags rows 1 (noisy) and 2 (clean)
    s = detection_scores(clean, given, true)
    assert s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5
    assert s["n_flagged"] == 2 and s["n_noisy"] == 2
    with pytest.raises(ValueError, match="same length"):
        detection_scores(clean[:3], given, true)
