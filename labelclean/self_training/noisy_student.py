"""Noisy Student self-training: a teacher labels the unlabeled rows, a noised student learns them, and so on."""

from __future__ import annotations

from numbers import Real
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .._compat import Interval
from .consistency import Consistency
from .strategy import Outcome, Rows, StudentRounds
from .tables import fit_tables, label_shares

if TYPE_CHECKING:
    from . import SelfTrainer

#: The default number of student rounds.
AUTO_STUDENTS = 5


class NoisyStudent(StudentRounds):
    """Self-training with a noisy student (Xie et al., *Self-training with Noisy Student*, CVPR 2020).

    The steps of :meth:`fit`:

    1. a **teacher** is trained on the labeled rows (or is consistency-trained on all rows, with
       ``consistency``; or is the ``teacher`` estimator of :class:`~labelclean.SelfTrainer`);
    2. the teacher, without noise, labels the unlabeled rows; the rows it is at least
       ``threshold`` confident about, balanced per ``balance``, get its label (soft
       distributions or hard labels, ``soft``);
    3. a **student** of width ``student_width`` learns them together with the labeled rows
       (repeated to ``labeled_share``) *with* noise: dropout, Gaussian input noise for vectors,
       random warps for images (the trainer's ``dropout``, ``input_noise``, ``augment``);
    4. the student becomes the next teacher: steps 2–3 repeat for ``max_iter`` rounds, or until
       the pseudo-labels stop changing.

    On the **tabular backbones** (``SelfTrainer.backbone_ == "table"``: scikit-learn's
    gradient-boosted trees and a logistic regression, picked on the labeled rows; see
    :func:`labelclean.self_training.tables.fit_tables`) the students take no training noise:
    each round refits them from scratch on the labeled rows and the ``r / max_iter`` most
    confident share of the unlabeled rows in round ``r`` (as in Curriculum Labeling,
    Cascante-Bonilla et al., AAAI 2021), and ``guard`` keeps the self-trained models only where
    they are no worse on held-out labeled rows. There ``soft``, ``student_width`` and
    ``consistency`` cannot apply, and on the other learners ``guard`` cannot: a ``ValueError``
    says so when one is set. How the defaults were chosen: ``docs/benchmarks.md#selft``; the
    tabular path on real tables: ``docs/benchmarks.md#semi``.

    Parameters
    ----------
    max_iter : int >= 0, default=5
        Teacher → student rounds; ``0``: the first teacher is the final model.
    soft : bool, default=False
        ``True``: students learn the teacher's full class distribution (Noisy Student's soft
        pseudo-labels); ``False``: its argmax. Hard labels are the default: they measured
        better (``docs/benchmarks.md#selft``). A classifier as ``estimator`` gets soft labels as
        duplicated rows with ``sample_weight``; without ``sample_weight`` support use ``False``.
    threshold : float in [0, 1), default=0.0
        Minimum teacher confidence (top probability) for a row to get a pseudo-label.
    balance : {"shares", "equal", "none"}, default="shares"
        ``"shares"``: balance the pseudo-labeled rows to the class shares of the labeled rows
        (:func:`~labelclean.self_training.prior_balance_rows`), so a rare class keeps its share
        instead of being inflated to the mean class size; ``"equal"``: every class the same
        number of rows, most confident first, rare classes repeated (Noisy Student's rule,
        :func:`~labelclean.self_training.balance_rows`); ``"none"``: every selected row once.
    labeled_share : float in [0, 1), default=0.17
        Share of each student's training rows that carry a given label: the labeled rows are
        repeated (each copy with fresh training noise) until they make up about this share
        (:func:`~labelclean.self_training.labeled_repeats`); ``0`` adds each once. The teacher's
        pseudo-labels are wrong in systematic places, and a student copies such errors unless
        the true labels weigh enough (``docs/benchmarks.md#selft``).
    student_width : float >= 1, default=1.0
        Width factor of the students' default networks relative to the first teacher.
    consistency : Consistency or None, default=None
        Train the first teacher by :class:`~labelclean.Consistency` training on all rows instead of on the
        labeled rows alone (the torch networks only, without ``teacher``).
    guard : bool, default=True
        Tabular backbones: keep the self-trained models only where self-training is not worse
        than the same learner on the labeled rows alone, judged on the labeled rows only, over
        three stratified folds. A class with fewer than three labeled rows leaves a fold
        without it, so the check cannot judge: self-training is then not kept. For each
        fold the rounds run on the other folds' labeled rows and every unlabeled row, and the
        round-0 models and the final ones predict the held-out fold. Self-training is kept when
        it is worse on neither pooled held-out score, balanced accuracy (not lower) and log-loss
        (not higher); otherwise the models fitted on the labeled rows are the final ones
        (``self_training_kept_`` is ``False``, ``termination_condition_`` ``"no_gain"``). The
        check costs about as many times the rounds as there are folds
        (``docs/benchmarks.md#semi``).

    Examples
    --------
    >>> from labelclean import Consistency, NoisyStudent, SelfTrainer
    >>> SelfTrainer(strategy=NoisyStudent(max_iter=2, threshold=0.8))
    SelfTrainer(strategy=NoisyStudent(max_iter=2, threshold=0.8))
    >>> NoisyStudent(max_iter=1, consistency=Consistency(epochs=10)).get_params()["consistency__epochs"]
    10
    """

    name: ClassVar[str] = "noisy_student"
    _parameter_constraints: ClassVar[dict] = {
        **StudentRounds._parameter_constraints,
        "labeled_share": [Interval(Real, 0.0, 1.0, closed="left")],
        "consistency": [Consistency, None],
        "guard": ["boolean"],
    }

    def __init__(
        self,
        *,
        max_iter: int = AUTO_STUDENTS,
        soft: bool = False,
        threshold: float = 0.0,
        balance: str = "shares",
        labeled_share: float = 0.17,
        student_width: float = 1.0,
        consistency: Consistency | None = None,
        guard: bool = True,
    ) -> None:
        self.max_iter = max_iter
        self.soft = soft
        self.threshold = threshold
        self.balance = balance
        self.labeled_share = labeled_share
        self.student_width = student_width
        self.consistency = consistency
        self.guard = guard

    @property
    def needs_networks(self) -> bool:
        return self.consistency is not None

    def check(self, trainer: SelfTrainer) -> None:
        super().check(trainer)
        if self.consistency is not None:
            self.consistency.check(trainer)

    def inapplicable(self, trainer: SelfTrainer) -> dict[str, str]:
        if trainer.backbone_ != "table":
            reasons = super().inapplicable(trainer)
            if not self.guard:
                reasons["guard"] = "it checks the tabular backbones' rounds, and these are the networks or estimator="
            return reasons
        tables = "the tabular backbones (estimator='auto' on a table) take no "
        why = {"soft": tables + "soft labels", "student_width": tables + "network width"}
        reasons = {name: reason for name, reason in why.items() if self._changed(name)}
        if self.consistency is not None:  # never reached from SelfTrainer, which then trains the networks
            reasons["consistency"] = tables + "consistency training"
        return reasons

    def _shares(self, rows: Rows, n_classes: int) -> np.ndarray | None:
        return label_shares(rows.y_enc, rows.given, n_classes) if self.balance == "shares" else None

    def _labeled_share(self) -> float:
        return self.labeled_share

    def fit(self, trainer: SelfTrainer, rows: Rows) -> Outcome:
        """Noisy Student's steps (see the class docstring); on the tabular backbones, :func:`.tables.fit_tables`."""
        if trainer.backbone_ == "table":
            return fit_tables(self, trainer, rows)
        # 1. The first teacher.
        trained = rows.labeled.copy()
        if trainer.teacher is not None:
            proba, model = trainer._user_teacher(rows)
        elif self.consistency is not None and not rows.given.all():
            proba, model = self.consistency.teach(trainer, rows)
            trained = self.consistency.learnt(rows, proba)  # it learnt the rows it is sure of, as a student does
        else:
            proba, model = trainer._labeled_teacher(rows, soft=self.soft)
        if rows.given.all():  # nothing to pseudo-label: the teacher is the final model
            return model, proba, trained
        # 2.–4. Pseudo-labels, a noised student, and the student as the next teacher, round by round.
        return self._rounds(trainer, rows, proba, model, trained)
