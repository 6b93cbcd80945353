"""Teacher–student relabeling of a noisy set: an early-stopped, cross-fitted teacher, then distilling students."""

from __future__ import annotations

from numbers import Integral
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from .._compat import Interval, StrOptions
from .._train import predict_proba_nets
from .algorithms import fold_ids, one_hot
from .noisy_student import AUTO_STUDENTS
from .strategy import Outcome, Rows, StudentRounds

if TYPE_CHECKING:
    from . import SelfTrainer


class Relabel(StudentRounds):
    """Relabel a set in which every given label may be wrong: teacher–student distillation.

    Every row must carry a label (no ``-1``). The steps of :meth:`fit`:

    1. a **teacher** learns from the noisy labels without memorising them: ``n_folds`` networks,
       each trained on all folds but one and stopped early on its held-back fold (accuracy
       against the noisy labels, recorded in ``history_`` as ``holdout_accuracy``), and every
       row is labeled by the network that never saw it; or the ``teacher`` estimator of
       :class:`~labelclean.SelfTrainer` (e.g. a :class:`~labelclean.CoTeachingFilter`), fitted on
       all rows; with a classifier as ``estimator``, that classifier fitted on all rows;
    2. the teacher labels every row; the rows it is at least ``threshold`` confident about get
       its label (balanced per ``balance``);
    3. a **student** of width ``student_width`` learns them with training noise;
    4. the student becomes the next teacher, for ``max_iter`` rounds or until the labels stop
       changing.

    This follows a teacher–student experiment of Hinton's on MNIST, in which a student learnt
    well from a teacher trained on labels of which 80 % were wrong. The row contract is the
    detection rule's, as on :class:`~labelclean.CoTeachingFilter`: ``label_quality_`` is the
    quality of the *given* label, and a label is trusted where the final model agrees with it.
    It trains the torch networks unless ``estimator`` is a classifier (never the tabular
    backbones). How the defaults were chosen: ``docs/benchmarks.md#selft``.

    Parameters
    ----------
    max_iter : int >= 0, default=5
        Teacher → student rounds; ``0``: the first teacher is the final model.
    soft : bool, default=False
        ``True``: students learn the teacher's full class distribution; ``False``: its argmax
        (``docs/benchmarks.md#selft``). A classifier as ``estimator`` gets soft labels as
        duplicated rows with ``sample_weight``.
    threshold : float in [0, 1), default=0.0
        Minimum teacher confidence (top probability) for a row to get the teacher's label.
    balance : {"none", "equal"}, default="none"
        ``"none"``: the classes keep the shares the teacher finds; ``"equal"``: every class the
        same number of rows (Noisy Student's rule), which pushes a rare class's share up and
        relabels rows to it.
    student_width : float >= 1, default=1.0
        Width factor of the students' default networks relative to the first teacher.
    n_folds : int >= 2, default=2
        Networks (and folds) of the cross-fitted first teacher.
    patience : int >= 1, default=3
        Epochs without a better held-back accuracy before a teacher network stops.
    max_teacher_epochs : int >= 1, default=20
        Most epochs a teacher network may train (``docs/benchmarks.md#selft``).

    Examples
    --------
    >>> from labelclean import Relabel, SelfTrainer
    >>> SelfTrainer(strategy=Relabel(max_iter=2, n_folds=3))
    SelfTrainer(strategy=Relabel(max_iter=2, n_folds=3))
    """

    name: ClassVar[str] = "relabel"
    relabels: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict] = {
        **StudentRounds._parameter_constraints,
        "balance": [StrOptions({"none", "equal"})],
        "n_folds": [Interval(Integral, 2, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "max_teacher_epochs": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        max_iter: int = AUTO_STUDENTS,
        soft: bool = False,
        threshold: float = 0.0,
        balance: str = "none",
        student_width: float = 1.0,
        n_folds: int = 2,
        patience: int = 3,
        max_teacher_epochs: int = 20,
    ) -> None:
        self.max_iter = max_iter
        self.soft = soft
        self.threshold = threshold
        self.balance = balance
        self.student_width = student_width
        self.n_folds = n_folds
        self.patience = patience
        self.max_teacher_epochs = max_teacher_epochs

    @property
    def needs_networks(self) -> bool:
        return True

    def inapplicable(self, trainer: SelfTrainer) -> dict[str, str]:
        reasons = super().inapplicable(trainer)
        if trainer.teacher is not None or trainer.backbone_ != "network":
            replaced = "teacher=" if trainer.teacher is not None else "estimator="
            for name in ("n_folds", "patience", "max_teacher_epochs"):
                if self._changed(name):
                    reasons[name] = f"it shapes the cross-fitted teacher networks, which {replaced} replaces"
        return reasons

    def fit(self, trainer: SelfTrainer, rows: Rows) -> Outcome:
        """Relabel every row (see the class docstring)."""
        # 1. A teacher that has not memorised the noisy labels.
        if trainer.teacher is not None:
            proba, model = trainer._user_teacher(rows)
        elif trainer.backbone_ != "network":
            proba, model = trainer._labeled_teacher(rows, soft=self.soft)
        else:
            proba, model = self.cross_fitted_teacher(trainer, rows)
        # 2.–4. Students learn the teacher's labels on every row; each becomes the next teacher.
        return self._rounds(trainer, rows, proba, model, rows.labeled.copy())

    def cross_fitted_teacher(self, trainer: SelfTrainer, rows: Rows) -> tuple[np.ndarray, list[torch.nn.Module]]:
        """Step 1: ``n_folds`` early-stopped networks; each row's probabilities from the one that never saw it."""
        n, k = len(rows.y_enc), len(trainer.classes_)
        targets = torch.from_numpy(one_hot(np.maximum(rows.y_enc, 0), k))
        folds = fold_ids(n, self.n_folds, rows.generator)
        proba, nets = np.zeros((n, k), dtype=np.float32), []
        for fold in range(self.n_folds):
            held = torch.nonzero(folds == fold).squeeze(1)
            net = trainer._train_net(
                rows.Xt,
                targets,
                torch.nonzero(folds != fold).squeeze(1),
                width=1.0,
                gen=rows.generator,
                tag={"phase": "teacher", "round": 0, "fold": fold},
                phase=f"teacher, fold {fold + 1}/{self.n_folds}",
                stop=(held, self.patience, self.max_teacher_epochs),
            )
            proba[held.numpy()] = predict_proba_nets([net], rows.Xt, trainer.device_, rows=held)
            nets.append(net)
        return proba, nets
