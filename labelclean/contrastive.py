"""Contrastive representation learning: an unsupervised encoder to put in front of the label cleaners.

Two augmented views of the same row are pulled together and views of different rows are
pushed apart, so the embedding keeps what survives the augmentations — information about
the data, none about the (possibly wrong) labels. SimCLR's NT-Xent loss (Chen et al., ICML
2020) by default; image views by random affine warps and noise, tabular views by SCARF's
corruption from the empirical marginals (Bahri et al., ICLR 2022). ``phases="alternating"``
separates the two forces into alternating epochs: attraction of positive pairs only, then
repulsion of negative pairs only, with a margin (Hadsell, Chopra and LeCun, CVPR 2006).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._base import TorchEstimatorMixin, _as_tensor
from ._compat import Interval, StrOptions, _fit_context
from ._engine import Augment, Feed, History, LearningRate, Progress, StepOut, fit_epochs, run_epoch
from ._train import adam, affine_warp, batched_forward, lr_factor, steps_per_epoch

# ---------------------------------------------------------------------------
# Pure functions: augmentations and losses, on tensors.
# ---------------------------------------------------------------------------


def augment_images(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    max_shift: float,
    max_rotation: float,
    max_scale: float,
    noise: float,
    scale: torch.Tensor,
) -> torch.Tensor:
    """One random view of each image of a ``(n, C, H, W)`` batch: a random affine warp plus Gaussian noise.

    The warp is :func:`~labelclean._train.affine_warp`; then noise of ``noise`` times the
    per-channel ``scale`` is added. Random numbers come from ``generator`` (on the CPU), so
    results do not depend on the device.
    """
    out = affine_warp(x, generator, max_shift=max_shift, max_rotation=max_rotation, max_scale=max_scale)
    if noise > 0:
        out = out + noise * scale.to(x.device) * torch.randn(x.shape, generator=generator).to(x.device)
    return out


def corrupt_features(
    x: torch.Tensor, generator: torch.Generator, *, corruption: float, noise: float, scale: torch.Tensor
) -> torch.Tensor:
    """One random view of each row of a ``(n, d)`` batch, SCARF-style (Bahri et al., 2022), plus Gaussian noise.

    Each feature of each row is, with probability ``corruption``, replaced by the same
    feature of another row drawn at random from the batch — a draw from that feature's
    empirical marginal, since batches are uniform samples of the rows. Then noise of
    ``noise`` times the per-feature ``scale`` is added.

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(12.0).reshape(4, 3)
    >>> view = corrupt_features(x, torch.Generator().manual_seed(0), corruption=0.5, noise=0.0, scale=torch.ones(3))
    >>> bool(all(set(view[:, j].tolist()) <= set(x[:, j].tolist()) for j in range(3)))  # values stay in their column
    True
    """
    n, d = x.shape
    replace = (torch.rand((n, d), generator=generator) < corruption).to(x.device)
    donors = torch.randint(0, n, (n, d), generator=generator).to(x.device)
    out = torch.where(replace, torch.gather(x, 0, donors), x)
    if noise > 0:
        out = out + noise * scale.to(x.device) * torch.randn((n, d), generator=generator).to(x.device)
    return out


def _negatives_mask(n: int, device: torch.device) -> torch.Tensor:
    """``(2n, 2n)`` mask of negative pairs among two stacked views: everything but self and partner."""
    eye = torch.eye(2 * n, dtype=torch.bool, device=device)
    return ~(eye | eye.roll(n, dims=1))


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent / InfoNCE (SimCLR, Chen et al., 2020): each view must pick its partner among the ``2n - 1`` others.

    ``z1[i]`` and ``z2[i]`` are the projections of two views of row ``i``; similarities are
    cosines divided by ``temperature``. Returns the mean cross-entropy over the ``2n`` views.

    Examples
    --------
    >>> import torch
    >>> z = torch.eye(4)
    >>> aligned = nt_xent_loss(z, z, 0.1)
    >>> shuffled = nt_xent_loss(z, z[[1, 2, 3, 0]], 0.1)
    >>> bool(aligned < 0.01 < shuffled)
    True
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def alignment_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Attraction only: mean squared distance between the unit-norm projections of the two views of each row."""
    return (F.normalize(z1, dim=1) - F.normalize(z2, dim=1)).pow(2).sum(1).mean()


def margin_repulsion_loss(z1: torch.Tensor, z2: torch.Tensor, margin: float) -> torch.Tensor:
    """Repulsion only, with a margin: ``mean(max(0, margin − d)²)`` over the negative pairs' distances ``d``.

    The distances are between unit-norm projections (in ``[0, 2]``); pairs already
    ``margin`` or more apart contribute nothing and are not pushed further (the negative
    half of the contrastive loss of Hadsell, Chopra and LeCun, 2006).

    Examples
    --------
    >>> import torch
    >>> far = torch.eye(3)  # pairwise distance sqrt(2)
    >>> float(margin_repulsion_loss(far, far, 1.0))
    0.0
    >>> float(margin_repulsion_loss(far, far, 2.0)) > 0
    True
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    dist = torch.sqrt(torch.clamp(2.0 - 2.0 * (z @ z.T), min=1e-12))
    return F.relu(margin - dist)[_negatives_mask(n, z.device)].pow(2).mean()


@torch.no_grad()
def embedding_stats(z1: torch.Tensor, z2: torch.Tensor, margin: float) -> dict[str, torch.Tensor]:
    """Diagnostics of a batch of projections (tensors, kept on the device).

    ``alignment``: mean squared distance of positive pairs (lower = views agree);
    ``uniformity``: ``log mean exp(−2 d²)`` over negative pairs (Wang and Isola, 2020; lower
    = more spread out); ``within_margin``: share of negative pairs closer than ``margin``.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    d2 = torch.clamp(2.0 - 2.0 * (z @ z.T), min=0.0)[_negatives_mask(n, z.device)]
    return {
        "alignment": (z[:n] - z[n:]).pow(2).sum(1).mean(),
        "uniformity": torch.logsumexp(-2.0 * d2, 0) - math.log(d2.numel()),
        "within_margin": (d2 < margin**2).float().mean(),
    }


def phase_of(epoch: int, phases: str) -> str:
    """The loss of an epoch: ``"joint"`` always, or ``"positive"`` / ``"negative"`` in turn, positive first."""
    if phases == "joint":
        return "joint"
    return "positive" if epoch % 2 == 0 else "negative"


def contrastive_step(
    encoder: nn.Module,
    head: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    augment: Augment,
    feed: Feed,
    margin: float,
    idx: torch.Tensor,
) -> StepOut:
    """One step on rows ``idx``: two views of the batch (``augment(x, generator)``) go through the networks together.

    ``loss_fn(z1, z2)`` is the loss of the phase; the step reports it with the statistics of
    :func:`embedding_stats`, weighted by the batch size.
    """
    xb = feed.x(idx)
    views = torch.cat([augment(xb, feed.generator), augment(xb, feed.generator)])
    z1, z2 = head(encoder(views)).chunk(2)
    loss = loss_fn(z1, z2)
    b = len(idx)
    return StepOut(loss, {k: v * b for k, v in {"loss": loss.detach(), **embedding_stats(z1, z2, margin)}.items()}, b)


def projection_head(n_components: int, projection_dim: int) -> nn.Module:
    """SimCLR's projection head ``g``: the loss sees ``g(h)``, users get the representation ``h``."""
    return nn.Sequential(nn.BatchNorm1d(n_components), nn.ReLU(), nn.Linear(n_components, projection_dim))


# ---------------------------------------------------------------------------
# The estimator: thin orchestration.
# ---------------------------------------------------------------------------


class ContrastiveEncoder(TorchEstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Learn an embedding of the rows without labels, by contrastive learning; a scikit-learn transformer.

    Each mini-batch is seen through two random augmentations ("views"). The encoder (the
    default MLP for vectors, the small CNN for images, or ``module``) maps every view to
    ``n_components`` features, a small projection head maps those to the space where the
    loss is computed, and the loss pulls the two views of a row together and pushes views
    of different rows apart. ``transform`` returns the encoder's features (before the head,
    as in SimCLR). Put it in front of a label cleaner —
    ``make_pipeline(ContrastiveEncoder(), CoTeachingFilter())`` — so that the cleaner works
    on features that were learnt without the labels.

    Parameters
    ----------
    n_components : int, default=64
        Width of the embedding returned by ``transform``.
    projection_dim : int, default=64
        Width of the projection head's output, where the loss is computed.
    phases : {"joint", "alternating"}, default="joint"
        ``"joint"``: every step minimises NT-Xent (SimCLR), attraction and repulsion at
        once. ``"alternating"``: even epochs only attract the two views of each row
        (:func:`alignment_loss`), odd epochs only repel views of different rows until they
        are ``margin`` apart (:func:`margin_repulsion_loss`).
    temperature : float, default=0.5
        NT-Xent temperature (``phases="joint"``).
    margin : float in (0, 2], default=1.0
        Distance between unit-norm projections beyond which negative pairs are not pushed
        (``phases="alternating"``; 1.0 is a cosine similarity of 0.5, random directions are
        about 1.41 apart).
    corruption : float in [0, 1), default=0.6
        Vectors: share of features replaced by draws from their empirical marginal (SCARF).
    noise : float, default=0.1
        Gaussian noise added to every view, in units of each feature's (channel's) std.
    max_shift : float in [0, 1), default=0.1
        Images: largest random shift, as a share of the side.
    max_rotation : float, default=15.0
        Images: largest random rotation, in degrees.
    max_scale : float in [0, 1), default=0.1
        Images: largest random zoom in or out (zooming in is a random crop).
    max_epochs : int, default=20
    batch_size : int, default=256
        Rows per step; each step compares ``2 · batch_size`` views.
    lr : float, default=1e-3
        Adam's learning rate; decays linearly to zero over the second half of the epochs.
    weight_decay : float, default=0.0
    hidden_dims : sequence of int, default=(256, 256)
        Hidden widths of the default MLP (2-D inputs).
    dropout : float in [0, 1), default=0.0
    input_shape : tuple (C, H, W) or None, default=None
        Treat 2-D rows as images of this shape (default CNN, image augmentations).
    module : callable or None, default=None
        ``module(input_shape, n_components) -> torch.nn.Module`` to replace the default encoder.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and augmentations, without touching global generators.
    verbose : int, default=0
        Print one line per epoch when positive.
    n_jobs : int or None, default=None
        Torch threads during ``fit`` and ``transform`` (restored afterwards); ``None`` leaves
        torch's setting, ``-1`` uses all cores.

    Attributes
    ----------
    encoder_ : torch.nn.Module
        The trained encoder (input standardization included), in eval mode.
    head_ : torch.nn.Module
        The trained projection head (not used by ``transform``).
    networks_ : list of torch.nn.Module
        ``[encoder_, head_]``, as :meth:`save` stores them (:meth:`load` reads them back).
    history_ : list of dict
        One entry per epoch: phase, loss, alignment, uniformity, within_margin, seconds.
    phase_seconds_ : dict of str to float
        Seconds of each phase of the fit, named as its progress shows them (``"contrastive"``).
    input_shape_ : tuple of int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from labelclean import ContrastiveEncoder
    >>> X, y = make_classification(300, n_features=12, random_state=0)
    >>> enc = ContrastiveEncoder(n_components=8, max_epochs=3, random_state=0)
    >>> Z = enc.fit_transform(X)
    >>> Z.shape, Z.dtype
    ((300, 8), dtype('float32'))
    >>> enc.get_feature_names_out()[:3].tolist()
    ['contrastiveencoder0', 'contrastiveencoder1', 'contrastiveencoder2']
    >>> [h["phase"] for h in enc.set_params(phases="alternating").fit(X).history_]
    ['positive', 'negative', 'positive']
    """

    _parameter_constraints: dict = {
        **TorchEstimatorMixin._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        "phases": [StrOptions({"joint", "alternating"})],
        "temperature": [Interval(Real, 0.0, None, closed="neither")],
        "margin": [Interval(Real, 0.0, 2.0, closed="right")],
        "corruption": [Interval(Real, 0.0, 1.0, closed="left")],
        "noise": [Interval(Real, 0.0, None, closed="left")],
        "max_shift": [Interval(Real, 0.0, 1.0, closed="left")],
        "max_rotation": [Interval(Real, 0.0, 180.0, closed="both")],
        "max_scale": [Interval(Real, 0.0, 1.0, closed="left")],
    }

    def __init__(
        self,
        *,
        n_components: int = 64,
        projection_dim: int = 64,
        phases: str = "joint",
        temperature: float = 0.5,
        margin: float = 1.0,
        corruption: float = 0.6,
        noise: float = 0.1,
        max_shift: float = 0.1,
        max_rotation: float = 15.0,
        max_scale: float = 0.1,
        max_epochs: int = 20,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        hidden_dims: tuple[int, ...] = (256, 256),
        dropout: float = 0.0,
        input_shape: tuple[int, ...] | None = None,
        module: Any = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.projection_dim = projection_dim
        self.phases = phases
        self.temperature = temperature
        self.margin = margin
        self.corruption = corruption
        self.noise = noise
        self.max_shift = max_shift
        self.max_rotation = max_rotation
        self.max_scale = max_scale
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.hidden_dims = hidden_dims
        self.dropout = dropout
        self.input_shape = input_shape
        self.module = module
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- pieces of fit ----------------------------------------------------
    def _augmenter(self):
        """The view generator for this input kind: affine warps for images, SCARF corruption for vectors."""
        scale = self._x_scale
        if len(self.input_shape_) == 3:
            params = dict(max_shift=self.max_shift, max_rotation=self.max_rotation, max_scale=self.max_scale)
            return lambda x, gen: augment_images(x, gen, noise=self.noise, scale=scale, **params)
        return lambda x, gen: corrupt_features(x, gen, corruption=self.corruption, noise=self.noise, scale=scale)

    def _loss(self, phase: str):
        if phase == "joint":
            return lambda z1, z2: nt_xent_loss(z1, z2, self.temperature)
        if phase == "positive":
            return alignment_loss
        return lambda z1, z2: margin_repulsion_loss(z1, z2, self.margin)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> ContrastiveEncoder:
        """Train the encoder on ``X``; labels are not used.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or an image array
            Rows (tabular features, embeddings) or images (``N×H×W``, ``N×C×H×W``,
            ``N×H×W×C``, or rows with ``input_shape``).
        y : ignored
            Accepted for pipelines (e.g. ``-1`` for unlabeled rows is fine).

        Returns
        -------
        self
        """
        Xt, _ = self._prepare(X, None)
        if Xt.shape[0] < 2:
            raise ValueError(
                f"X has {Xt.shape[0]} sample; contrastive learning compares rows with each other and needs at least 2."
            )
        self.history_ = []
        gen = self._generator()
        augment = self._augmenter()
        with self._seeded():
            encoder = self._new_net(self.n_components)
            head = projection_head(self.n_components, self.projection_dim).to(self.device_)
            params = [*encoder.parameters(), *head.parameters()]
            optimizer = adam(params, self.lr, self.weight_decay)
            feed = Feed(Xt, self.device_, gen)
            callbacks = [
                LearningRate(optimizer, lambda e: self.lr * lr_factor(e, self.max_epochs)),
                Progress(self.device_),
                History(
                    self.history_,
                    lambda e: {"phase": phase_of(e, self.phases)},
                    verbose=self.verbose,
                    name="ContrastiveEncoder",
                ),
            ]

            def epoch(e: int) -> dict[str, float]:
                step = functools.partial(
                    contrastive_step, encoder, head, self._loss(phase_of(e, self.phases)), augment, feed, self.margin
                )
                return run_epoch(
                    step, feed.shuffled(Xt.shape[0], self.batch_size), optimizer, [encoder, head], callbacks
                )

            total = steps_per_epoch(Xt.shape[0], self.batch_size)
            fit_epochs(self.max_epochs, epoch, callbacks, phase="contrastive", steps=total)
        head._labelclean_spec = {"kind": "projection_head"}  # how load rebuilds it
        self.networks_ = [encoder.eval(), head.eval()]
        self._n_features_out = self.n_components
        return self

    @property
    def encoder_(self) -> torch.nn.Module:
        return self.networks_[0]

    @property
    def head_(self) -> torch.nn.Module:
        return self.networks_[1]

    def _rebuild_network(self, spec: dict[str, Any]) -> torch.nn.Module:
        if spec.get("kind") == "projection_head":
            return projection_head(self.n_components, self.projection_dim).to(self.device_)
        return super()._rebuild_network(spec)

    def transform(self, X: Any) -> np.ndarray:
        """Embed rows shaped like the training rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or an image array

        Returns
        -------
        ndarray of shape (n_samples, n_components), float32
        """
        check_is_fitted(self, "encoder_")
        Xr, _ = self._validate_X(X, reset=False)
        self.encoder_.eval()
        with self._threads():
            return batched_forward(lambda xb: self.encoder_(xb).float(), _as_tensor(Xr), self.device_)
