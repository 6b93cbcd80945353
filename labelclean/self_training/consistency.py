"""FixMatch-style consistency training with a mean teacher: one network learns from labeled and unlabeled rows."""

from __future__ import annotations

from numbers import Integral, Real
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from .._compat import Interval
from .._engine import History, LearningRate, fit_epochs
from .._train import adam, lr_factor, moving_averages, predict_proba_nets, steps_per_epoch
from .algorithms import consistency_epoch, epochs_for
from .strategy import Outcome, Rows, Strategy

if TYPE_CHECKING:
    from . import SelfTrainer

#: ``strategy="auto"`` consistency-trains (``Consistency()``, this many passes) on the networks when
#: every class has at least ``AUTO_CONSISTENCY_MIN_LABELS`` labeled rows.
AUTO_CONSISTENCY_EPOCHS = 20
AUTO_CONSISTENCY_MIN_LABELS = 50


class Consistency(Strategy):
    """Consistency training (FixMatch, Sohn et al., NeurIPS 2020) with a mean teacher (Tarvainen and Valpola, 2017).

    One network learns from the labeled and the unlabeled rows together, and is the final
    model. The steps of :meth:`fit`:

    1. a network, and a moving average of its weights (``ema``) that makes the targets;
    2. ``epochs`` passes over the unlabeled rows (raised so that the network gets at least
       ``min_steps`` updates, a :class:`~labelclean.SelfTrainer` parameter). Each step takes a
       batch of unlabeled rows and a quarter as many labeled ones
       (:func:`~labelclean.self_training.consistency_epoch`): the averaged network predicts a
       weakly perturbed copy of each unlabeled row (images shifted by up to 1/14 of their side,
       vectors as they are), and where that prediction is at least ``threshold`` confident it
       is the target of a strongly perturbed copy (the trainer's student noise: random warps
       of images, Gaussian noise on vectors); the labeled rows learn their labels;
    3. the averaged network is the final model; the rows it predicts with at least
       ``threshold`` confidence count as learnt (``clean_mask_``).

    It trains the torch networks: with ``estimator="auto"`` a table gets them too; a classifier
    as ``estimator`` or a ``teacher`` cannot be consistency-trained (a ``ValueError`` says so).
    With every row labeled the network learns the labeled rows alone. :class:`~labelclean.NoisyStudent`
    can start from a consistency-trained teacher: ``NoisyStudent(consistency=Consistency())``.
    ``SelfTrainer(strategy="auto")`` picks ``Consistency()`` on the networks when every class
    has at least 50 labeled rows: with fewer labels a class the network's own confident
    mistakes can take over. How the rule and the defaults were chosen, on images and vector
    rows: ``docs/benchmarks.md#selft``.

    Parameters
    ----------
    epochs : int >= 1, default=20
        Passes over the unlabeled rows.
    threshold : float in [0, 1), default=0.95
        Confidence the averaged network's prediction on the weak view needs to become a target.
    align : bool, default=False
        Align the weak-view predictions with the labeled rows' class frequencies before reading
        their confidence (distribution alignment, Berthelot et al., ReMixMatch, ICLR 2020); not
        the default (``docs/benchmarks.md#selft``).
    ema : float in [0, 1), default=0.999
        Weight of the moving average of the network's weights (updated every step, with a
        warm-up ``min(ema, (1 + n) / (10 + n))`` after ``n`` steps), which makes the targets and
        is the final model; ``0`` uses the network itself (``docs/benchmarks.md#selft``).

    Examples
    --------
    >>> from labelclean import Consistency, SelfTrainer
    >>> SelfTrainer(strategy=Consistency(epochs=5, threshold=0.9))
    SelfTrainer(strategy=Consistency(epochs=5, threshold=0.9))
    >>> SelfTrainer(strategy=Consistency(epochs=5)).get_params(deep=True)["strategy__epochs"]
    5
    """

    name: ClassVar[str] = "consistency"
    _parameter_constraints: ClassVar[dict] = {
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "threshold": [Interval(Real, 0.0, 1.0, closed="left")],
        "align": ["boolean"],
        "ema": [Interval(Real, 0.0, 1.0, closed="left")],
    }

    def __init__(
        self, *, epochs: int = AUTO_CONSISTENCY_EPOCHS, threshold: float = 0.95, align: bool = False, ema: float = 0.999
    ) -> None:
        self.epochs = epochs
        self.threshold = threshold
        self.align = align
        self.ema = ema

    @property
    def needs_networks(self) -> bool:
        return True

    def inapplicable(self, trainer: SelfTrainer) -> dict[str, str]:
        if trainer.teacher is not None:
            return {"teacher": "teacher= is a first teacher of its own; consistency training trains one"}
        if trainer.backbone_ != "network":
            return {"estimator": f"estimator={trainer.estimator!r} replaces the networks it trains"}
        return {}

    def fit(self, trainer: SelfTrainer, rows: Rows) -> Outcome:
        """Consistency-train one network on all rows; it is the final model (see the class docstring)."""
        if rows.given.all():  # nothing unlabeled to learn from: the labeled rows alone
            proba, model = trainer._labeled_teacher(rows, soft=False)
            return model, proba, rows.labeled.copy()
        proba, net = self.teach(trainer, rows)
        return net, proba, self.learnt(rows, proba)

    def learnt(self, rows: Rows, proba: np.ndarray) -> np.ndarray:
        """The rows a consistency-trained network learnt: the labeled ones and those it is ``threshold`` sure of."""
        return rows.labeled | (proba.max(axis=1) >= self.threshold)

    def teach(self, trainer: SelfTrainer, rows: Rows) -> tuple[np.ndarray, torch.nn.Module]:
        """Steps 1–2: the consistency-trained (averaged) network and its probabilities on every row."""
        trainer.consistency_epochs_ = int(self.epochs)
        net = trainer._new_net(len(trainer.classes_))
        optimizer = adam(net.parameters(), trainer.lr, trainer.weight_decay)
        lab = torch.from_numpy(np.flatnonzero(rows.labeled))
        unl = torch.from_numpy(np.flatnonzero(~rows.labeled))
        epochs = epochs_for(len(unl), trainer.batch_size, self.epochs, trainer.min_steps)
        y_t, weak, strong = torch.from_numpy(rows.y_enc), trainer._weak_noise(), trainer._noise()
        prior = running = None
        if self.align:
            k = len(trainer.classes_)
            prior = torch.bincount(y_t[lab], minlength=k).float().to(trainer.device_)
            prior, running = prior / prior.sum(), torch.full((k,), 1.0 / k, device=trainer.device_)
        averaged = moving_averages([net], self.ema)[0] if self.ema > 0 else None
        callbacks = [
            LearningRate(optimizer, lambda e: trainer.lr * lr_factor(e, epochs)),
            History(trainer.history_, {"phase": "teacher", "round": 0}, verbose=trainer.verbose, name="SelfTrainer"),
        ]

        def epoch(_: int) -> dict[str, float]:
            return consistency_epoch(
                net,
                optimizer,
                rows.Xt,
                y_t,
                lab,
                unl,
                batch_size=trainer.batch_size,
                labeled_batch=max(1, trainer.batch_size // 4),
                threshold=float(self.threshold),
                generator=rows.generator,
                device=trainer.device_,
                weak=weak,
                strong=strong,
                prior=prior,
                running=running,
                averaged=averaged,
            )

        steps = steps_per_epoch(len(unl), trainer.batch_size)
        fit_epochs(epochs, epoch, callbacks, phase="teacher (consistency)", steps=steps)
        if averaged is not None:  # 3. the mean teacher is the model
            net = averaged.module
        return predict_proba_nets([net], rows.Xt, trainer.device_), net
