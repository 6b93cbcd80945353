"""What the strategies of :class:`~labelclean.SelfTrainer` share: the parameter base, the rows of a fit, the rounds.

A strategy is a small parameter object (scikit-learn conventions: ``__init__`` only stores its
keyword arguments; ``get_params`` / ``set_params`` / ``clone`` / ``repr`` work, and
``SelfTrainer.get_params(deep=True)`` lists its parameters as ``strategy__<name>``). Its
parameters are validated when the :class:`~labelclean.SelfTrainer` holding it fits; then its
``fit(trainer, rows)`` runs the algorithm, with the trainer's networks, noise and training loop,
and never changes the strategy itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import has_fit_parameter

from .._compat import Interval, StrOptions
from .._persist import register_params
from .algorithms import labeled_repeats, select_pseudo_rows, student_targets

if TYPE_CHECKING:  # the trainer calls the strategies, never the other way round
    from . import SelfTrainer

#: What a strategy's ``fit`` returns: the final model (a network, a list of networks, a fitted
#: scikit-learn classifier or ``None``), its probabilities on every row, and the rows it trained on.
Outcome = tuple[Any, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Rows:
    """The rows of one fit, as the strategies read them.

    Attributes
    ----------
    X : array-like
        The rows as given (a user ``teacher`` and the tabular backbones read them).
    y : ndarray
        The labels as given, ``-1`` for unlabeled rows (a user ``teacher`` learns them).
    Xt : torch.Tensor
        The rows as float32 ``(n, *input_shape_)``, on the host.
    y_enc : ndarray of int64
        Class index of each labeled row, ``-1`` elsewhere.
    labeled : ndarray of bool
        Rows with a label.
    given : ndarray of bool
        Rows whose label is trusted: the labeled rows, or none when every label may be wrong.
    generator : torch.Generator
        Draws the shuffles, folds and noise.
    """

    X: Any
    y: np.ndarray
    Xt: torch.Tensor
    y_enc: np.ndarray
    labeled: np.ndarray
    given: np.ndarray
    generator: torch.Generator


class Strategy(BaseEstimator):
    """Base of the strategies: a name, the parameter checks, and ``fit(trainer, rows)``.

    Two strategies are equal when they are of the same class with equal parameters.
    """

    #: The name ``SelfTrainer(strategy=...)`` also accepts for this strategy with its defaults.
    name: ClassVar[str] = ""
    #: Every given label may be wrong (the detection rule fills the row contract).
    relabels: ClassVar[bool] = False
    _parameter_constraints: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_params(cls)  # ``save`` stores a strategy as its parameters, never pickled

    @property
    def needs_networks(self) -> bool:
        """Whether it trains the torch networks, so that ``estimator="auto"`` never picks the tabular backbones."""
        return False

    def inapplicable(self, trainer: SelfTrainer) -> dict[str, str]:
        """Parameters set away from their default that cannot apply to ``trainer``'s learner: name -> why."""
        return {}

    def check(self, trainer: SelfTrainer) -> None:
        """Validate the parameters; a ``ValueError`` names any that could not apply (nothing silently does nothing)."""
        self._validate_params()
        reasons = self.inapplicable(trainer)
        if reasons:
            why = "; ".join(f"{name}: {reason}" for name, reason in reasons.items())
            raise ValueError(f"strategy={' '.join(repr(self).split())} cannot run as asked: {why}.")

    def fit(self, trainer: SelfTrainer, rows: Rows) -> Outcome:
        """Run the algorithm on ``rows`` with ``trainer``'s learner; see the subclasses."""
        raise NotImplementedError

    def _changed(self, name: str) -> bool:
        """Whether parameter ``name`` differs from its default."""
        default = type(self)().get_params(deep=False)[name]
        return getattr(self, name) != default

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.get_params(deep=False) == other.get_params(deep=False)

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))


class StudentRounds(Strategy):
    """Teacher → student rounds (Noisy Student's loop), shared by :class:`NoisyStudent` and :class:`Relabel`.

    In each round the teacher's most confident rows (``threshold``, balanced per ``balance``)
    get its label; a student (of width ``student_width``, with training noise) learns them with
    the trusted labels; it becomes the next teacher, for ``max_iter`` rounds or until the
    pseudo-labels stop changing.
    """

    _parameter_constraints: ClassVar[dict] = {
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "soft": ["boolean"],
        "threshold": [Interval(Real, 0.0, 1.0, closed="left")],
        "balance": [StrOptions({"shares", "equal", "none"})],
        "student_width": [Interval(Real, 1.0, None, closed="left")],
    }

    def inapplicable(self, trainer: SelfTrainer) -> dict[str, str]:
        reasons = {}
        if self.student_width != 1.0 and trainer.backbone_ != "network":
            reasons["student_width"] = "it widens the default networks, which estimator= replaces"
        if self.soft and trainer._user_estimator() and not has_fit_parameter(trainer.estimator, "sample_weight"):
            reasons["soft"] = (
                f"estimator={trainer.estimator!r} has no sample_weight in fit, which soft labels need; "
                f"pass {type(self).__name__}(soft=False) to train it on hard pseudo-labels"
            )
        return reasons

    def _shares(self, rows: Rows, n_classes: int) -> np.ndarray | None:
        """The class shares the pseudo-labeled rows are balanced to (``balance="shares"``), else ``None``."""
        return None

    def _labeled_share(self) -> float:
        """Share of a student's rows that carry a trusted label (see :func:`labeled_repeats`)."""
        return 0.0

    def _rounds(self, trainer: SelfTrainer, rows: Rows, proba, model, trained) -> Outcome:
        """The rounds after the first teacher (``proba`` and ``model``); the last model, its probabilities, its rows."""
        previous, given_rows = None, np.flatnonzero(rows.given)
        shares = self._shares(rows, proba.shape[1])
        for rnd in range(1, self.max_iter + 1):
            # 2. The teacher, without noise, labels the rows; the confident ones are kept (balanced).
            selected, picked = select_pseudo_rows(
                proba, ~rows.given, threshold=self.threshold, balance=self.balance != "none", shares=shares
            )
            labels = np.where(selected, proba.argmax(1), -1)
            changed = None if previous is None else int(np.sum(labels != previous))
            copies = labeled_repeats(len(given_rows), len(picked), self._labeled_share())
            trainer.history_.append(
                {
                    "phase": "pseudo_label",
                    "round": rnd,
                    "n_selected": int(selected.sum()),
                    "changed": changed,
                    "labeled_copies": copies,
                }
            )
            if not selected.any() or changed == 0:
                trainer.termination_condition_ = "no_change"
                break
            # 3. A student learns them with the trusted labels (repeated), with training noise.
            targets = torch.from_numpy(student_targets(proba, rows.y_enc, rows.given, soft=self.soft))
            train_rows = np.concatenate([np.tile(given_rows, copies), picked])
            tag = {"phase": "student", "round": rnd}
            model = trainer._train_model(
                rows.Xt, targets, train_rows, width=self.student_width, soft=self.soft, gen=rows.generator, tag=tag
            )
            # 4. The student is the next teacher.
            proba, previous, trained = trainer._proba(model, rows.Xt), labels, selected | rows.given
            trainer.n_iter_ = rnd
        return model, proba, trained
