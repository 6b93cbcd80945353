"""What every strategy trains with: the learner (networks or the user's classifier), its noise, its teachers.

:class:`~labelclean.SelfTrainer` mixes :class:`Learner` in; the strategies call these methods
on the trainer they are fitting, so that one strategy's steps read as its paper's, while the
networks, the training loop, the noise and the progress reports stay the same for all.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import torch
from sklearn.base import clone

from .. import _progress
from .._compat import _safe_indexing
from .._crossfit import backbone_kind
from .._engine import EarlyStopping, Feed, History, LearningRate, Progress, fit_epochs, run_epoch, supervised
from .._train import adam, augmentation, lr_factor, predict_proba_nets, random_shift, steps_per_epoch
from .algorithms import align_columns, epochs_for, gaussian_noise, one_hot, soft_cross_entropy, weighted_rows
from .strategy import Rows, Strategy


class Learner:
    """The learner of a :class:`~labelclean.SelfTrainer`: networks or ``estimator``, with their training noise."""

    # -- the learner ----------------------------------------------------------
    def _check_models(self) -> None:
        """``estimator`` and ``teacher`` are usable: a TypeError that names the fix otherwise."""
        if isinstance(self.estimator, str) and self.estimator not in ("auto", "network"):
            raise TypeError(
                f"estimator={self.estimator!r} is neither 'auto', 'network' nor a classifier with fit/predict_proba; "
                "e.g. LogisticRegression(), or 'network' for the default networks."
            )
        for name in ("estimator", "teacher"):
            model = getattr(self, name)
            if (
                model is not None
                and not isinstance(model, str)
                and not (hasattr(model, "fit") and hasattr(model, "predict_proba"))
            ):
                raise TypeError(
                    f"{name}={model!r} lacks fit/predict_proba; pass a classifier with predict_proba "
                    "(e.g. LogisticRegression(), or SVC(probability=True)), or None for the default networks."
                )

    def _user_estimator(self) -> bool:
        """True when ``estimator`` is a classifier (not ``"auto"``, ``"network"`` or ``None``)."""
        return self.estimator is not None and not isinstance(self.estimator, str)

    def _resolve_backbone(self, n_rows: int, requested: str | Strategy, *, relabel: bool) -> str:
        """``backbone_``: ``"table"``, ``"network"`` or ``"estimator"`` (see ``estimator``)."""
        kind = backbone_kind(
            self.estimator,
            module=self.module,
            input_shape=self.input_shape_,
            n_features=int(np.prod(self.input_shape_)),
            n_rows=n_rows,
        )
        networks = isinstance(requested, Strategy) and requested.needs_networks
        if kind == "table" and (relabel or networks or self.teacher is not None):
            return "network"
        return kind

    # -- noise ----------------------------------------------------------------
    def _noise(self):
        """The student noise: warps of images (``augment``), Gaussian noise on vectors (``input_noise``), or None."""
        if len(self.input_shape_) == 3:
            return augmentation(self.augment, self.input_shape_)
        if self.input_noise > 0:
            return functools.partial(gaussian_noise, std=float(self.input_noise), scale=self._x_scale)
        return None

    def _weak_noise(self):
        """Consistency training's weak view: images shifted by up to 1/14 of their side; vectors unchanged."""
        if len(self.input_shape_) != 3 or self.augment == "none":
            return None
        shift = min(self.input_shape_[1:]) // 14
        return functools.partial(random_shift, max_shift=shift) if shift else None

    # -- one model ------------------------------------------------------------
    def _train_net(self, Xt, targets, rows, *, width, gen, tag, phase=None, stop=None) -> torch.nn.Module:
        """Train one network on ``rows`` against soft ``targets``.

        ``stop``: ``(held-back rows, patience, most epochs)`` to stop early on the held-back
        rows' accuracy against ``targets``. ``tag`` marks its ``history_`` entries; ``phase``
        names its progress (default: from ``tag``).
        """
        net = self._new_net(len(self.classes_), width=width)
        optimizer = adam(net.parameters(), self.lr, self.weight_decay)
        epochs = epochs_for(len(rows), self.batch_size, self.max_epochs, self.min_steps)
        callbacks = [
            LearningRate(optimizer, lambda e: self.lr * (1.0 if stop is not None else lr_factor(e, epochs))),
            Progress(self.device_),
        ]
        if stop is not None:  # early stopping decides, within the most epochs
            holdout, patience, max_epochs = stop
            epochs = max(epochs, max_epochs)
            held_labels = targets[holdout].argmax(1).numpy()  # the (noisy) labels it is scored against

            def accuracy() -> float:
                return float(
                    np.mean(predict_proba_nets([net], Xt, self.device_, rows=holdout).argmax(1) == held_labels)
                )

            callbacks.append(EarlyStopping(net, accuracy, patience=patience, key="holdout_accuracy"))
        callbacks.append(History(self.history_, tag, verbose=self.verbose, name="SelfTrainer"))
        feed = Feed(Xt, self.device_, gen, self._noise())
        step = supervised([net], soft_cross_entropy, feed, targets)
        fit_epochs(
            epochs,
            lambda e: run_epoch(step, feed.shuffled(rows, self.batch_size), optimizer, [net], callbacks),
            callbacks,
            phase=phase or self._phase_name(tag),
            steps=steps_per_epoch(len(rows), self.batch_size),
        )
        return net

    def _train_model(self, Xt, targets, rows, *, width, soft, gen, tag):
        """Train the learner on ``rows`` against ``targets``: a network, or a clone of ``estimator``.

        The estimator learns soft targets (``soft``) as one weighted copy of a row per class
        (:func:`weighted_rows`), hard ones as their argmax.
        """
        if self.backbone_ == "network":
            return self._train_net(Xt, targets, torch.as_tensor(rows), width=width, gen=gen, tag=tag)
        t0 = time.perf_counter()
        X2, T = Xt.reshape(Xt.shape[0], -1).numpy(), targets.numpy()
        model = clone(self.estimator)
        with _progress.phase(self._phase_name(tag), 1, unit="fits"):
            if soft:
                r, c, w = weighted_rows(T[rows])
                model.fit(X2[rows][r], c, sample_weight=w)
            else:
                model.fit(X2[rows], T[rows].argmax(1))
            _progress.advance(1, rows=len(rows))
        self.history_.append({**tag, "epoch": 0, "seconds": time.perf_counter() - t0})
        return model

    @staticmethod
    def _phase_name(tag: dict[str, Any]) -> str:
        """The progress phase of a model's training, from its ``history_`` tag."""
        return f"student {tag['round']}" if tag["phase"] == "student" else "teacher"

    def _proba(self, model, Xr: np.ndarray | torch.Tensor) -> np.ndarray:
        """A trained model's probabilities on ``Xr``, one column per class of ``classes_``."""
        if isinstance(model, torch.nn.Module):
            return predict_proba_nets([model], torch.as_tensor(Xr), self.device_)
        X2 = np.asarray(Xr).reshape(len(Xr), -1)
        return align_columns(model.predict_proba(X2), np.asarray(model.classes_), np.arange(len(self.classes_)))

    # -- first teachers ---------------------------------------------------------
    def _user_teacher(self, rows: Rows) -> tuple[np.ndarray, None]:
        """The ``teacher`` estimator, fitted on the labeled rows (``teacher_``); its probabilities on every row."""
        fit_rows = np.flatnonzero(rows.labeled)
        with _progress.phase("teacher", 1, unit="fits"):
            self.teacher_ = clone(self.teacher).fit(_safe_indexing(rows.X, fit_rows), _safe_indexing(rows.y, fit_rows))
            _progress.advance(1, rows=len(fit_rows))
        proba = self.teacher_.predict_proba(rows.X)
        return align_columns(proba, np.asarray(self.teacher_.classes_), self.classes_), None

    def _labeled_teacher(self, rows: Rows, *, soft: bool) -> tuple[np.ndarray, Any]:
        """The learner trained on the labeled rows' labels; its probabilities on every row, and the model."""
        targets = torch.from_numpy(one_hot(np.maximum(rows.y_enc, 0), len(self.classes_)))
        model = self._train_model(
            rows.Xt,
            targets,
            np.flatnonzero(rows.labeled),
            width=1.0,
            soft=soft,
            gen=rows.generator,
            tag={"phase": "teacher", "round": 0},
        )
        return self._proba(model, rows.Xt), model
