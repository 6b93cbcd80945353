"""Progress of the training loops: phases with a known total, reported by the loops to whoever listens.

The loops announce each phase of a fit (:func:`phase`, with its total of optimizer steps, folds or
fits) and hand over what they did (:func:`advance`, or a :class:`Beat` in a mini-batch loop, which
reports at most every :data:`INTERVAL` seconds). A listener (:func:`reporting`) receives them as
:class:`Event` objects. When nothing listens, every call returns at once: a fit pays one context
variable lookup per epoch. Progress never draws random numbers and never changes what the loops do.

The same phases are timed: inside a :func:`timing` block (every estimator's ``fit`` opens one, and
keeps what it measured as ``phase_seconds_``) each phase adds its wall-clock seconds under its name,
which costs two clock reads per phase (never per step) and needs no listener.

Examples
--------
>>> events = []
>>> with reporting(events.append):
...     with phase("demo", total=4, unit="steps"):
...         advance(3, rows=30, loss=0.5)
...         advance(1, rows=10, loss=0.25)
>>> [(e.kind, e.done, e.total) for e in events]
[('start', 0, 4), ('advance', 3, 4), ('advance', 4, 4), ('end', 4, 4)]
>>> advance(1)  # nobody listens: nothing happens
>>> with timing() as seconds:
...     with phase("outer", total=1):
...         with phase("inner", total=1):  # counted toward "outer"
...             pass
>>> list(seconds), seconds["outer"] >= 0
(['outer'], True)
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: Seconds between two reports of a mini-batch loop (:meth:`Beat.step`).
INTERVAL = 0.2


@dataclass(frozen=True)
class Event:
    """What a listener is told: a phase started, advanced or ended.

    Attributes
    ----------
    kind : {"start", "advance", "end"}
    phase : str
        Name of the phase, e.g. ``"co-teaching"``.
    total : int
        Steps (``unit``) the phase will take; lowered when a loop stops early.
    unit : str
        What is counted: ``"steps"`` (optimizer steps), ``"folds"``, ``"fits"``.
    done : int
        Steps done so far in the phase.
    steps : int
        Steps this event adds (0 for ``"start"`` and ``"end"``).
    rows : int
        Rows processed so far in the phase.
    loss : float or None
        The latest training loss the loop reported (the running mean of the current epoch), if any.
    seconds : float
        Time since the phase started.
    """

    kind: str
    phase: str
    total: int
    unit: str
    done: int
    steps: int
    rows: int
    loss: float | None
    seconds: float

    @property
    def rows_per_second(self) -> float | None:
        """Rows processed per second so far (None before any time has passed)."""
        return self.rows / self.seconds if self.seconds > 0 else None

    @property
    def seconds_left(self) -> float | None:
        """Time the phase still needs at its pace so far (None before the first step)."""
        if self.done <= 0 or self.seconds <= 0:
            return None
        return max(self.total - self.done, 0) * self.seconds / self.done


Listener = Callable[[Event], None]


class _Phase:
    """The state of one open phase."""

    __slots__ = ("name", "total", "unit", "done", "rows", "loss", "t0")

    def __init__(self, name: str, total: int, unit: str) -> None:
        self.name, self.total, self.unit = name, int(total), unit
        self.done, self.rows, self.loss = 0, 0, None
        self.t0 = time.perf_counter()

    def event(self, kind: str, steps: int = 0) -> Event:
        return Event(
            kind,
            self.name,
            self.total,
            self.unit,
            self.done,
            steps,
            self.rows,
            self.loss,
            time.perf_counter() - self.t0,
        )


class _Reporter:
    """The listener of a :func:`reporting` block and the stack of phases open in it."""

    __slots__ = ("listener", "phases")

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.phases: list[_Phase] = []

    def advance(self, steps: int, rows: int, loss: float | None) -> None:
        if not self.phases:
            return
        p = self.phases[-1]
        p.done += int(steps)
        p.rows += int(rows)
        if loss is not None:
            p.loss = float(loss)
        self.listener(p.event("advance", int(steps)))


_ACTIVE: contextvars.ContextVar[_Reporter | None] = contextvars.ContextVar("labelclean_progress", default=None)


class _Clock:
    """The seconds of the outermost phases of one :func:`timing` block, and the clock of the block around it."""

    __slots__ = ("seconds", "parent", "depth", "t0")

    def __init__(self, parent: _Clock | None) -> None:
        self.seconds: dict[str, float] = {}
        self.parent = parent
        self.depth = 0
        self.t0 = 0.0

    def enter(self) -> None:
        if self.depth == 0:
            self.t0 = time.perf_counter()
        self.depth += 1

    def leave(self, name: str) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.seconds[name] = self.seconds.get(name, 0.0) + (time.perf_counter() - self.t0)

    def chain(self) -> Iterator[_Clock]:
        """This clock and the clocks of the blocks around it, innermost first."""
        clock: _Clock | None = self
        while clock is not None:
            yield clock
            clock = clock.parent


_CLOCK: contextvars.ContextVar[_Clock | None] = contextvars.ContextVar("labelclean_phase_clock", default=None)


@contextlib.contextmanager
def reporting(listener: Listener | None) -> Iterator[None]:
    """Send the progress of the fits run inside the ``with`` block to ``listener`` (nothing when None).

    Parameters
    ----------
    listener : callable or None
        ``listener(event)`` with an :class:`Event`; called from the thread that runs the fit.
    """
    if listener is None:
        yield
        return
    token = _ACTIVE.set(_Reporter(listener))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def listening() -> bool:
    """Whether a listener is waiting for progress (work done only for progress can be skipped otherwise)."""
    return _ACTIVE.get() is not None


@contextlib.contextmanager
def timing() -> Iterator[dict[str, float]]:
    """Time the phases run inside the ``with`` block; yields the dict ``{phase name: seconds}`` it fills.

    Only the outermost phases of the block are entered, in the order they first start; a
    phase opened inside another (a classifier fitted within a phase) counts toward the outer
    one, so the values never overlap and their sum is at most the block's wall-clock time. A
    phase that runs more than once (or ends by an exception) adds up. Blocks may nest (an
    estimator fitted inside another's ``fit``): a phase counts in every block around it, at
    that block's own outermost level. Timing needs no listener and changes nothing a fit does.
    """
    clock = _Clock(_CLOCK.get())
    token = _CLOCK.set(clock)
    try:
        yield clock.seconds
    finally:
        _CLOCK.reset(token)


@contextlib.contextmanager
def phase(name: str, total: int, unit: str = "steps") -> Iterator[None]:
    """Announce a phase of ``total`` steps (``unit``) for the ``with`` block; it ends when the block does.

    Phases may nest (a classifier fitted inside a phase opens its own); :func:`advance` counts
    for the innermost one. A phase left by an exception reports no end. Inside a :func:`timing`
    block the phase's seconds are added to it.
    """
    reporter, clock = _ACTIVE.get(), _CLOCK.get()
    if reporter is None and clock is None:
        yield
        return
    clocks = list(clock.chain()) if clock is not None else []
    for c in clocks:
        c.enter()
    try:
        if reporter is None:
            yield
            return
        p = _Phase(name, total, unit)
        reporter.phases.append(p)
        reporter.listener(p.event("start"))
        try:
            yield
        except BaseException:
            reporter.phases.remove(p)
            raise
        reporter.phases.remove(p)
        reporter.listener(p.event("end"))
    finally:
        for c in clocks:
            c.leave(name)


def advance(steps: int = 1, *, rows: int = 0, loss: float | None = None) -> None:
    """Report ``steps`` more steps of the current phase, on ``rows`` rows, with the latest ``loss``."""
    reporter = _ACTIVE.get()
    if reporter is not None:
        reporter.advance(steps, rows, loss)


def skip(steps: int) -> None:
    """Lower the total of the current phase by ``steps`` that will not run (e.g. after an early stop)."""
    reporter = _ACTIVE.get()
    if reporter is None or not reporter.phases or steps <= 0:
        return
    p = reporter.phases[-1]
    p.total = max(p.done, p.total - int(steps))
    reporter.listener(p.event("advance"))


class Beat:
    """A mini-batch loop's handle on the current phase: counts steps and reports them in groups.

    ``step(rows)`` after every optimizer step returns True when a report is due (at most every
    :data:`INTERVAL` seconds); the loop then reads its loss (if it can without waiting for the
    device) and calls ``report(loss)``. Call ``report`` once more at the end of the loop.
    """

    __slots__ = ("_reporter", "_steps", "_rows", "_next")

    def __init__(self, reporter: _Reporter) -> None:
        self._reporter = reporter
        self._steps = 0
        self._rows = 0
        self._next = time.perf_counter() + INTERVAL

    def step(self, rows: int) -> bool:
        """Count one step on ``rows`` rows; True when the listener is due a report."""
        self._steps += 1
        self._rows += rows
        return time.perf_counter() >= self._next

    def report(self, loss: float | None = None) -> None:
        """Hand the steps counted since the last report to the listener, with the latest ``loss``."""
        if self._steps or loss is not None:
            self._reporter.advance(self._steps, self._rows, loss)
        self._steps = self._rows = 0
        self._next = time.perf_counter() + INTERVAL


def beat() -> Beat | None:
    """A :class:`Beat` on the current phase, or None when nothing listens (or no phase is open)."""
    reporter = _ACTIVE.get()
    if reporter is None or not reporter.phases:
        return None
    return Beat(reporter)
