"""What the three subcommands share: options, progress bars, error handling, the closing summary."""

from __future__ import annotations

import errno
import json
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

_STAGES = {"reading": "reading", "training": "training (epochs)", "writing": "writing"}


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value == "auto":
        return value
    import torch

    try:
        torch.device(value)
    except (RuntimeError, TypeError):
        raise click.BadParameter(f"{value!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    return value


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


class ProgressBars:
    """``progress(stage, done, total)`` drawn as rich progress bars on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(_STAGES.get(stage, stage), total=total)
        self._progress.update(self._tasks[stage], completed=done, total=total)

    def __enter__(self) -> ProgressBars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


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
    show_progress = not quiet and sys.stderr.isatty()
    t0 = time.perf_counter()
    try:
        bars = ProgressBars() if show_progress else None
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
    except KeyboardInterrupt:
        click.echo("Error: interrupted; no output was written.", err=True)
        ctx.exit(130)
    except Exception as exc:
        if debug:
            raise
        code, message = _classify(exc)
        click.echo(f"Error: {message}", err=True)
        ctx.exit(code)
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
            head += f" ({s['filled']:,} filled)"
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
