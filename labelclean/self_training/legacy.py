"""SelfTrainer's flat parameters from before the strategies, mapped onto them (deprecated; removed in a later release).

Each flat parameter defaults to the sentinel ``"deprecated"``. Set to anything else it still
works: ``SelfTrainer.fit`` turns the flat values into the strategy that fits the same as they
did (:func:`translate`, or :func:`merge` into an explicit ``strategy``) and warns with a
``FutureWarning`` that names it. A flat value that contradicts the ``strategy`` given is a
``ValueError``.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils._param_validation import Hidden

from .._compat import Interval, StrOptions
from .consistency import AUTO_CONSISTENCY_EPOCHS, AUTO_CONSISTENCY_MIN_LABELS, Consistency
from .noisy_student import AUTO_STUDENTS, NoisyStudent
from .relabel import Relabel
from .strategy import Strategy

if TYPE_CHECKING:
    from . import SelfTrainer

#: The default of every flat parameter: not given.
DEPRECATED = "deprecated"

#: Each flat parameter's default before the strategies.
OLD_DEFAULTS: dict[str, Any] = {
    "relabel": False,
    "soft": False,
    "threshold": 0.0,
    "balance": "auto",
    "labeled_share": 0.17,
    "max_iter": "auto",
    "student_width": 1.0,
    "guard": True,
    "n_folds": 2,
    "patience": 3,
    "max_teacher_epochs": 20,
    "consistency_epochs": "auto",
    "consistency_threshold": 0.95,
    "consistency_align": False,
    "consistency_ema": 0.999,
}
_UNIT = Interval(Real, 0.0, 1.0, closed="left")
_OLD_CONSTRAINTS: dict[str, list] = {
    "relabel": ["boolean"],
    "soft": ["boolean"],
    "threshold": [_UNIT],
    "balance": ["boolean", StrOptions({"auto"})],
    "labeled_share": [_UNIT],
    "max_iter": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
    "student_width": [Interval(Real, 1.0, None, closed="left")],
    "guard": ["boolean"],
    "n_folds": [Interval(Integral, 2, None, closed="left")],
    "patience": [Interval(Integral, 1, None, closed="left")],
    "max_teacher_epochs": [Interval(Integral, 1, None, closed="left")],
    "consistency_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
    "consistency_threshold": [_UNIT],
    "consistency_align": ["boolean"],
    "consistency_ema": [_UNIT],
}
#: The constraints of the flat parameters: as before, or the sentinel.
CONSTRAINTS = {name: [*c, Hidden(StrOptions({DEPRECATED}))] for name, c in _OLD_CONSTRAINTS.items()}

#: Flat name -> the parameter it became on each strategy ("consistency.x": x of NoisyStudent's ``consistency``).
TARGETS: dict[str, dict[type, str]] = {
    "soft": {NoisyStudent: "soft", Relabel: "soft"},
    "threshold": {NoisyStudent: "threshold", Relabel: "threshold"},
    "balance": {NoisyStudent: "balance", Relabel: "balance"},
    "labeled_share": {NoisyStudent: "labeled_share"},
    "max_iter": {NoisyStudent: "max_iter", Relabel: "max_iter"},
    "student_width": {NoisyStudent: "student_width", Relabel: "student_width"},
    "guard": {NoisyStudent: "guard"},
    "n_folds": {Relabel: "n_folds"},
    "patience": {Relabel: "patience"},
    "max_teacher_epochs": {Relabel: "max_teacher_epochs"},
    "consistency_epochs": {Consistency: "epochs", NoisyStudent: "consistency.epochs"},
    "consistency_threshold": {Consistency: "threshold", NoisyStudent: "consistency.threshold"},
    "consistency_align": {Consistency: "align", NoisyStudent: "consistency.align"},
    "consistency_ema": {Consistency: "ema", NoisyStudent: "consistency.ema"},
}
#: The flat ``balance`` values, per strategy ("auto" balanced to the labeled shares, except when relabeling).
_BALANCE = {NoisyStudent: {"auto": "shares", True: "equal", False: "none"}, Relabel: {"auto": "none", True: "equal"}}


def given(trainer: SelfTrainer) -> dict[str, Any]:
    """The flat parameters set to anything but the sentinel, in their order."""
    out = {}
    for name in OLD_DEFAULTS:
        value = getattr(trainer, name)
        if not (isinstance(value, str) and value == DEPRECATED):
            out[name] = value
    return out


def merge(strategy: Strategy, old: dict[str, Any]) -> Strategy:
    """``strategy`` with the flat values ``old`` set on it (a new object); a ``ValueError`` where they contradict it."""
    if "relabel" in old and bool(old["relabel"]) != strategy.relabels:
        raise ValueError(
            f"relabel={old['relabel']!r} contradicts strategy={_spelled(strategy)}; drop relabel (deprecated): "
            "strategy='relabel' relabels, the other strategies fill in -1 rows."
        )
    cls = type(strategy)
    result = cls(**strategy.get_params(deep=False))
    for name in (n for n in TARGETS if n in old):  # consistency_epochs before the other consistency_* values
        value, target = old[name], TARGETS[name].get(cls)
        if value == "auto" or (name == "max_iter" and cls is Consistency and value == 0):
            continue  # the strategy's own value (Consistency trains no students)
        if target is None:
            raise ValueError(f"{name}={value!r} does not apply to strategy={_spelled(strategy)}; drop it.")
        if name == "balance":
            value = _BALANCE[cls].get(value, "none")
        if name == "consistency_epochs" and cls is NoisyStudent:
            if value == 0:
                result = _set(result, "consistency", None, name)
            elif result.consistency is None:
                result.set_params(consistency=Consistency(epochs=value))
            else:
                result.set_params(consistency=_set(result.consistency, "epochs", value, name))
        elif name == "consistency_epochs" and value == 0:
            raise ValueError(f"consistency_epochs=0 contradicts strategy={_spelled(strategy)}; drop it.")
        elif target.startswith("consistency."):
            if result.consistency is None:
                raise ValueError(
                    f"{name}={value!r} applies to a consistency-trained first teacher, which "
                    f"strategy={_spelled(strategy)} does not train; pass NoisyStudent(consistency=Consistency(...))."
                )
            result.set_params(consistency=_set(result.consistency, target.partition(".")[2], value, name))
        else:
            result = _set(result, target, value, name)
    return result


def _set(strategy: Strategy, param: str, value: Any, name: str) -> Strategy:
    """A copy of ``strategy`` with ``param=value``, unless it holds another value than its default there."""
    current, default = getattr(strategy, param), type(strategy)().get_params(deep=False)[param]
    if current != default and current != value:
        raise ValueError(
            f"{name}={value!r} (deprecated) contradicts strategy={_spelled(strategy)}, which sets {param}={current!r}; "
            "set it on the strategy alone."
        )
    return type(strategy)(**{**strategy.get_params(deep=False), param: value})


def translate(old: dict[str, Any], trainer: SelfTrainer, y_enc: np.ndarray, labeled: np.ndarray):
    """The strategy the flat values ``old`` fitted with (``strategy="auto"``), and the flat names that did nothing.

    The rule of the flat parameters: relabel when ``relabel``; else a consistency-trained
    first teacher when ``consistency_epochs`` says so (``"auto"``: the networks, no
    ``teacher``, at least 50 labeled rows in every class), the final model when ``max_iter``
    is 0 (``"auto"``: 0 after consistency training, else 5), else Noisy Student's rounds.
    """
    values = {**OLD_DEFAULTS, **old}
    if values["relabel"]:
        base: Strategy = Relabel()
    else:
        passes = _old_passes(values["consistency_epochs"], trainer, y_enc, labeled)
        rounds = values["max_iter"]
        rounds = (0 if passes else AUTO_STUDENTS) if rounds == "auto" else rounds
        consistency = Consistency(epochs=passes) if passes else None
        base = consistency if consistency is not None and rounds == 0 else NoisyStudent(max_iter=rounds)
        if isinstance(base, NoisyStudent):
            base.set_params(consistency=consistency)
    used = {k: v for k, v in old.items() if k != "relabel" and _did_something(k, base, trainer)}
    return merge(base, used), [k for k in old if k != "relabel" and k not in used]


def _old_passes(epochs: Any, trainer: SelfTrainer, y_enc: np.ndarray, labeled: np.ndarray) -> int:
    """Passes of consistency training the flat parameters gave the first teacher (0: none)."""
    if trainer.backbone_ != "network" or trainer.teacher is not None or labeled.all():
        return 0
    if epochs != "auto":
        return int(epochs)
    per_class = np.bincount(y_enc[labeled], minlength=len(trainer.classes_))
    return AUTO_CONSISTENCY_EPOCHS if per_class.min() >= AUTO_CONSISTENCY_MIN_LABELS else 0


def _did_something(name: str, strategy: Strategy, trainer: SelfTrainer) -> bool:
    """Whether flat parameter ``name`` changed a fit of ``strategy`` on ``trainer``'s learner before the strategies."""
    network = trainer.backbone_ == "network"
    if isinstance(strategy, Relabel):
        if name in ("n_folds", "patience", "max_teacher_epochs"):
            return network and trainer.teacher is None
        return name in ("soft", "threshold", "balance", "max_iter") or (name == "student_width" and network)
    if isinstance(strategy, Consistency):
        return name == "max_iter" or name.startswith("consistency_")
    table = trainer.backbone_ == "table"
    if name == "consistency_epochs":  # it chose whether the first teacher is consistency-trained
        return network and trainer.teacher is None
    if name.startswith("consistency_"):
        return strategy.consistency is not None
    special = {"soft": not table, "student_width": network, "guard": table}
    return special.get(name, name in ("threshold", "balance", "labeled_share", "max_iter"))


def warning(old: dict[str, Any], strategy: Strategy, ignored: list[str]) -> str:
    """The ``FutureWarning`` for the flat values ``old``: the strategy to pass instead."""
    names = " and ".join([", ".join(list(old)[:-1]), list(old)[-1]] if len(old) > 1 else list(old))
    spelled = repr(strategy.name) if strategy == type(strategy)() else _spelled(strategy)
    text = f"{names} {'is' if len(old) == 1 else 'are'} deprecated; use strategy={spelled}"
    if ignored:
        text += f" ({', '.join(ignored)} had no effect here, and {'is' if len(ignored) == 1 else 'are'} dropped)"
    return text + "."


def _spelled(strategy: Strategy) -> str:
    """``repr(strategy)`` on one line."""
    return " ".join(repr(strategy).split())
