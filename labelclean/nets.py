"""The default networks, for ``module=`` factories: pick another backbone than the one chosen for the input shape.

Every estimator builds its networks from the input shape (:func:`backbone_name`): an
:class:`MLP` for vector rows, a :class:`SmallCNN` for grey or small images, a
:class:`ResNet` for colour images of at least 32 px a side. ``module=`` replaces that
choice, e.g. the small CNN on colour images, about eight times cheaper per image on a CPU
(how the defaults were chosen: ``docs/benchmarks.md#implementation``).

Examples
--------
>>> import numpy as np
>>> from labelclean import CoTeachingFilter
>>> from labelclean.nets import SmallCNN, backbone_name
>>> backbone_name((3, 32, 32)), backbone_name((1, 28, 28)), backbone_name((64,))
('resnet', 'small_cnn', 'mlp')
>>> X = np.random.default_rng(0).random((40, 3, 32, 32), dtype=np.float32)
>>> y = np.arange(40) % 2
>>> f = CoTeachingFilter(module=lambda shape, k: SmallCNN(*shape, k), max_epochs=1, refine_epochs=0, random_state=0)
>>> type(f.fit(X, y).networks_[0][1]).__name__
'SmallCNN'
"""

from __future__ import annotations

from ._nets import MLP, RESNET_MIN_SIDE, ResNet, SmallCNN, backbone_name

__all__ = ["MLP", "RESNET_MIN_SIDE", "ResNet", "SmallCNN", "backbone_name"]
