"""What the three subcommands share: options, progress bars, error handling, the closing summary."""

from __future__ import annotations

import errno
import json
import re
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import click

from ..io import DataError, OptionError

#: Exit status for usage errors (bad arguments, missing file, output exists) and data errors.
EXIT_USAGE = 2
EXIT_DATA = 1

#: What ``--device`` accepts: a torch device type, optionally with an index (checked without importing torch).
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu|hpu|npu|meta)(:\d+)?")


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value == "auto" or _DEVICE.fullmatch(value):
        return value
    raise click.BadParameter(f"{value!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def auto_or_number(
    value: str | None, convert: Callable[[str], Any], valid: Callable[[Any], bool], *, expected: str, outside: str
) -> Any:
    """An option that takes ``"auto"`` or a number: ``"auto"`` (and ``None``, not given) as it is, else
    ``convert(value)``, which ``valid`` must accept; a clear usage error otherwise."""
    if value is None or value == "auto":
        return value
    try:
        number = convert(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither 'auto' nor {expected}") from None
    if not valid(number):
        raise click.BadParameter(f"{number} is {outside}")
    return number


def _check_n_jobs(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value == 0:
        raise click.BadParameter("0 is not a thread count; use a positive number or -1 for all cores")
    return value


def common_options(func: Callable) -> Callable:
    """The argument and options every subcommand takes."""
    options = [
        click.argument("data", metavar="DATA...", nargs=-1, required=True, type=str),
        click.option("--label-column", default="label", show_default=True, help="Column holding the labels."),
        click.option(
            "--features",
            default=None,
            metavar="COL1,COL2,...",
            help="Feature columns (default: every other usable column: numbers, lists of numbers, "
            "PNG/JPEG bytes, low-cardinality text).",
        ),
        click.option(
            "-o",
            "--output",
            default=None,
            metavar="FILE",
            help="Output parquet file, also for a CSV input [default: DATA.clean.parquet; for a folder "
            "DIR.clean.parquet beside it; several paths or a glob need -o or --output-dir].",
        ),
        click.option(
            "--output-dir",
            default=None,
            metavar="DIR",
            help="Write one parquet file per input part into DIR, under the part's own name (a CSV part's "
            "ending becomes .parquet), instead of one output file.",
        ),
        click.option("--drop", is_flag=True, help="Write only the rows kept (is_clean), not every row."),
        click.option("--report", default=None, metavar="FILE.html", help="Also write a self-contained HTML report."),
        click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs (max_epochs)."),
        click.option(
            "--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Random seed, for a reproducible run."
        ),
        click.option(
            "--device",
            default="auto",
            show_default=True,
            callback=_check_device,
            help="'auto', 'cpu', 'cuda' or 'cuda:N'.",
        ),
        click.option(
            "--n-jobs",
            type=int,
            default=None,
            callback=_check_n_jobs,
            help="Torch threads (-1: all cores) [default: torch's setting, which follows OMP_NUM_THREADS].",
        ),
        click.option(
            "--param",
            "extra_params",
            multiple=True,
            metavar="NAME=VALUE",
            help="Any other estimator parameter, e.g. --param batch_size=256 (repeatable).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bars and no summary."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."),
        click.option("-f", "--force", is_flag=True, help="Overwrite the output (and report) if they exist."),
        click.option("--debug", is_flag=True, help="Show the full traceback on errors."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def parse_value(text: str) -> Any:
    """``'3'`` → 3, ``'0.5'`` → 0.5, ``'true'`` → True, ``'none'`` → None, ``'[64, 64]'`` → [64, 64], else the text."""
    low = text.strip().lower()
    if low in {"true", "false"}:
        return low == "true"
    if low in {"none", "null"}:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="'--param'")
        out[name.strip()] = parse_value(value)
    return out


def _duration(seconds: float) -> str:
    """``1.9 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _rate(rows: int, seconds: float) -> str:
    """``5,300 rows/s``, or ``""`` when there is nothing to tell."""
    return f"{rows / seconds:,.0f} rows/s" if rows > 0 and seconds > 0 else ""


def _loss(loss: float | None) -> str:
    return "" if loss is None else f"loss {loss:.3f}"


def _left(done: int, total: int | None, seconds: float) -> str:
    """The time a stage still needs at its pace so far: ``3 min 10 s left``."""
    if total is None or done <= 0 or seconds <= 0 or done >= total:
        return ""
    return f"{_duration((total - done) * seconds / done)} left"


def _count(done: int, total: int | None, unit: str) -> str:
    return f"{done:,}/{total:,} {unit}" if total is not None else f"{done:,} {unit}"


class ProgressBars:
    """Progress drawn as rich progress bars on stderr, one per stage and per phase of training.

    ``bars(stage, done, total)`` reports rows read or written; ``bars.on_event(stage, event)``
    a training phase (:class:`labelclean._progress.Event`). Each bar shows what is done of the
    total, rows per second, the current loss, the time elapsed and the time left.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            console=Console(stderr=True),
        )
        self._tasks: dict[str, Any] = {}
        self._started: dict[str, float] = {}

    def _show(self, key: str, done: int, total: int | None, unit: str, rows: int, seconds: float, loss) -> None:
        fields = {
            "count": _count(done, total, unit),
            "rate": _rate(rows, seconds),
            "loss": _loss(loss),
            "left": _left(done, total, seconds),
        }
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(key, total=total, **fields)
        self._progress.update(self._tasks[key], completed=done, total=total, **fields)

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        seconds = time.perf_counter() - self._started.setdefault(stage, time.perf_counter())
        self._show(stage, done, total, "rows", done, seconds, None)

    def on_event(self, stage: str, event: Any) -> None:
        """Draw one :class:`labelclean._progress.Event` of a training phase of ``stage``."""
        key = f"{stage}: {event.phase}"
        if event.kind == "start":
            self._tasks.pop(key, None)  # a phase of the same name again (another fit): a new bar
        total = event.done if event.kind == "end" else event.total
        self._show(key, event.done, total, event.unit, event.rows, event.seconds, event.loss)

    def __enter__(self) -> ProgressBars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


class ProgressLog:
    """Progress as plain lines on stderr, for logs (stderr is not a terminal).

    A training phase gets a line when it starts (with its total) and one when it ends (time,
    rows per second, loss), and a line a minute in between while it runs; reading and writing
    get a line at their end when they took a second or more.
    """

    #: Seconds between two lines of one running phase.
    every = 60.0

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._last: dict[str, float] = {}

    @staticmethod
    def _line(*parts: str) -> None:
        click.echo(", ".join(p for p in parts if p), err=True)

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.perf_counter()
        t0 = self._started.setdefault(stage, now)
        if total is not None and done >= total and stage not in self._last:
            self._last[stage] = now
            if now - t0 >= 1.0:
                self._line(f"{stage}: {done:,} rows", _duration(now - t0), _rate(done, now - t0))

    def on_event(self, stage: str, event: Any) -> None:
        """Log one :class:`labelclean._progress.Event` of a training phase of ``stage``."""
        key = f"{stage}: {event.phase}"
        now = time.perf_counter()
        if event.kind == "start":
            self._last[key] = now
            self._line(f"{key} {event.total:,} {event.unit} ...")
        elif event.kind == "end":
            self._line(
                f"{key} {event.done:,} {event.unit}",
                _duration(event.seconds),
                _rate(event.rows, event.seconds),
                _loss(event.loss),
            )
        elif now - self._last.get(key, now) >= self.every:
            self._last[key] = now
            self._line(
                f"{key} {_count(event.done, event.total, event.unit)}",
                _duration(event.seconds),
                _rate(event.rows, event.seconds),
                _loss(event.loss),
                _left(event.done, event.total, event.seconds),
            )

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _classify(exc: BaseException) -> tuple[int, str]:
    """Exit status and one-line message for an exception."""
    names = {c.__name__ for c in type(exc).__mro__}
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (OptionError, FileNotFoundError)) or "InvalidParameterError" in names:
        return EXIT_USAGE, text
    if isinstance(exc, DataError):
        return EXIT_DATA, text
    if isinstance(exc, (ValueError, TypeError)):
        return EXIT_DATA, text
    if isinstance(exc, MemoryError):
        return EXIT_DATA, "out of memory; use fewer rows or feature columns, or a machine with more memory."
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" while writing '{exc.filename}'" if exc.filename else ""
        return EXIT_DATA, f"no space left on the device{where}; free some space or write elsewhere with -o."
    if isinstance(exc, PermissionError):
        where = f" on '{exc.filename}'" if exc.filename else ""
        return EXIT_DATA, f"permission denied{where}; check the file's and its folder's permissions, or use -o."
    if isinstance(exc, OSError):
        return EXIT_DATA, f"{text}; check the paths and permissions."
    return EXIT_DATA, f"unexpected {type(exc).__name__}: {text}; rerun with --debug for the traceback."


def fail(ctx: click.Context, exc: BaseException, debug: bool) -> None:
    """End the command on ``exc``: one ``Error:`` line on stderr and the exit status for its kind.

    Ctrl-C exits 130; with ``--debug`` any other exception is raised again, traceback and all.
    """
    if isinstance(exc, KeyboardInterrupt):
        click.echo("Error: interrupted; no output was written.", err=True)
        ctx.exit(130)
    if debug:
        raise exc
    code, message = _classify(exc)
    click.echo(f"Error: {message}", err=True)
    ctx.exit(code)


def run_task(
    task: str,
    *,
    data: tuple[str, ...],
    label_column: str,
    features: str | None,
    output: str | None,
    output_dir: str | None,
    drop: bool,
    report: str | None,
    epochs: int | None,
    seed: int | None,
    device: str,
    n_jobs: int | None,
    extra_params: tuple[str, ...],
    quiet: bool,
    as_json: bool,
    force: bool,
    debug: bool,
    params: dict[str, Any],
    **task_kwargs: Any,
) -> None:
    """Run one subcommand: call :func:`labelclean.api.clean_file`, show progress, print the summary."""
    from ..api import clean_file

    ctx = click.get_current_context()
    all_params = {k: v for k, v in params.items() if v is not None}
    if epochs is not None:
        all_params["max_epochs"] = epochs
    if seed is not None:
        all_params["random_state"] = seed
    all_params["device"] = device
    if n_jobs is not None:
        all_params["n_jobs"] = n_jobs
    all_params.update(parse_params(extra_params))
    feature_list = None if features is None else [c.strip() for c in features.split(",") if c.strip()]
    progress_display = None if quiet else ProgressBars if sys.stderr.isatty() else ProgressLog
    t0 = time.perf_counter()
    try:
        bars = progress_display() if progress_display is not None else None
        with warnings.catch_warnings(record=True) as caught, bars if bars is not None else _nullcontext():
            warnings.simplefilter("always")
            summary = clean_file(
                task,
                data[0] if len(data) == 1 else list(data),
                output,
                output_dir=output_dir,
                label=label_column,
                features=feature_list,
                drop=drop,
                force=force,
                report=report,
                progress=bars,
                **task_kwargs,
                **all_params,
            )
    except (KeyboardInterrupt, Exception) as exc:
        fail(ctx, exc, debug)
    summary["seconds"] = time.perf_counter() - t0
    summary["warnings"] = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    if not quiet and not as_json:
        for message in summary["warnings"]:
            click.echo(f"Warning: {message}", err=True)
    if as_json:
        click.echo(json.dumps(summary, default=str))
    elif not quiet:
        click.echo(format_summary(summary))


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def format_summary(s: dict[str, Any]) -> str:
    """The closing summary, a few lines for people."""
    head = f"labelclean {s['task']}: {s['rows']:,} rows, {s['flagged']:,} flagged ({s['flagged_fraction']:.1%})"
    if s.get("noise_rate") is not None:
        head += f", estimated noise rate {s['noise_rate']:.3f}"
    if s.get("class_prior") is not None:
        head += f", estimated class prior {s['class_prior']:.3f}"
    if s.get("unlabeled"):
        head += f", {s['unlabeled']:,} unlabeled"
        if s.get("filled") is not None:
            trusted = s.get("filled_trusted")
            head += f" ({s['filled']:,} filled" + (f", {trusted:,} trusted)" if trusted is not None else ")")
    lines = []
    if len(s.get("inputs") or ()) > 1:
        lines.append(f"read {len(s['inputs'])} files as one table (sorted path order)")
    lines += [head, f"features: {', '.join(s['features'])} (row shape {tuple(s['feature_shape'])})"]
    if s.get("read_as_numbers"):
        lines.append("read as numbers: " + ", ".join(f"{name} (text)" for name in s["read_as_numbers"]))
    skipped = s.get("skipped") or {k: {"reason": v, "include_with": None} for k, v in s["skipped_columns"].items()}
    if skipped:
        items = []
        for name, why in skipped.items():
            hint = f"; to use it: {why['include_with']}" if why.get("include_with") else ""
            items.append(f"{name} ({why['reason']}{hint})")
        lines.append("skipped: " + "; ".join(items))
    if s.get("outputs") is not None:
        lines.append(
            f"wrote {len(s['outputs'])} files to {s['output']} ({s['rows_written']:,} rows) in {s['seconds']:.1f} s"
        )
    else:
        lines.append(f"wrote {s['output']} ({s['rows_written']:,} rows) in {s['seconds']:.1f} s")
    lines += [f"note: {note}" for note in s.get("notes") or ()]
    if s.get("report"):
        lines.append(f"report: {s['report']}")
    return "\n".join(lines)


def command_epilog(examples: str) -> str:
    return "\b\nExamples:\n" + examples
