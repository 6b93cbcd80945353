"""``labelclean consensus``: one consensus label per row from several annotators' votes (AnnotatorConsensus)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ._common import fail


def _default_output(data: str) -> Path:
    p = Path(data)
    return p.with_name(p.stem + ".consensus.parquet")


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def _check_target(path: Path, data: Path, force: bool, option: str) -> None:
    if path.resolve() == data.resolve():
        raise click.UsageError(f"{option} '{path}' is the input file; the input is never overwritten.")
    if path.exists() and not force:
        raise click.UsageError(f"{option} '{path}' exists; pass --force to overwrite it.")
    if not path.parent.exists():
        raise click.UsageError(f"{option}: folder '{path.parent}' does not exist.")


@click.command(
    "consensus",
    epilog="""\b
Examples:
  labelclean consensus votes.parquet --annotators a1,a2,a3
  labelclean consensus votes.parquet --annotators a1,a2,a3 --method majority --json
  labelclean consensus votes.parquet --annotators a1,a2,a3 --features emb -o out.parquet --report r.html
""",
)
@click.argument("data", metavar="DATA", type=str)
@click.option(
    "--annotators", required=True, metavar="COL1,COL2,...", help="The vote columns, one per annotator (two or more)."
)
@click.option(
    "--method",
    type=click.Choice(["auto", "majority", "dawid_skene", "model"]),
    default="auto",
    show_default=True,
    help="Majority vote, Dawid-Skene (1979) EM, or the votes with a model of the features; "
    "'auto': model with --features, else dawid_skene.",
)
@click.option(
    "--features",
    default=None,
    metavar="COL1,COL2,...",
    help="Feature columns for a model of the data to join the votes [default: none, the votes only].",
)
@click.option("--allow-empty", is_flag=True, help="Rows without any vote get a null consensus instead of an error.")
@click.option(
    "-o", "--output", default=None, metavar="FILE", help="Output parquet file [default: DATA.consensus.parquet]."
)
@click.option("--drop", is_flag=True, help="Write only the rows whose consensus is trusted (is_clean).")
@click.option("--report", default=None, metavar="FILE.html", help="Also write a small self-contained HTML report.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Random seed, for a reproducible run.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
@click.option("-f", "--force", is_flag=True, help="Overwrite the output (and report) if they exist.")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def command(
    data: str,
    annotators: str,
    method: str,
    features: str | None,
    allow_empty: bool,
    output: str | None,
    drop: bool,
    report: str | None,
    seed: int | None,
    as_json: bool,
    quiet: bool,
    force: bool,
    debug: bool,
) -> None:
    """Consensus of several annotators (AnnotatorConsensus): one label per row, its quality, each annotator's accuracy.

    DATA is a parquet file with one vote column per annotator (--annotators); a missing vote
    is null, NaN or -1. The output has every input column plus consensus_label,
    label_quality, is_clean, n_votes and agreement; the per-annotator quality table is
    printed. The input is never modified.
    """
    ctx = click.get_current_context()
    names = _split(annotators) or []
    if len(names) < 2:
        raise click.UsageError(
            "--annotators needs two or more columns; for one label column use 'labelclean filter'.",
            ctx=ctx,
        )
    data_path = Path(data)
    if not data_path.exists():
        raise click.UsageError(f"'{data}' does not exist.", ctx=ctx)
    out_path = Path(output) if output is not None else _default_output(data)
    _check_target(out_path, data_path, force, "--output")
    report_path = Path(report) if report is not None else None
    if report_path is not None:
        _check_target(report_path, data_path, force, "--report")
        if report_path.resolve() == out_path.resolve():
            raise click.UsageError("--report and --output name the same file.", ctx=ctx)
    t0 = time.perf_counter()
    try:
        from ..consensus import consensus_labels, report_html
        from ..io import as_source, atomic_path, write_with_columns

        source = as_source(str(data_path))
        params = {"method": method, "allow_empty": allow_empty}
        if seed is not None:
            params["random_state"] = seed
        added, est = consensus_labels(source, names, features=_split(features), **params)
        keep = est.clean_mask_ if drop else None
        written = write_with_columns(source, out_path, added, keep=keep)
        if report_path is not None:
            with atomic_path(report_path) as tmp:
                tmp.write_text(report_html(est), encoding="utf-8")
    except (KeyboardInterrupt, Exception) as exc:
        fail(ctx, exc, debug)
    table = est.annotator_table()
    voted = est.n_votes_ > 0
    flagged = int((~est.clean_mask_ & voted).sum())
    summary = {
        "task": "consensus",
        "method": est.method_,
        "rows": int(len(est.n_votes_)),
        "rows_without_votes": int((~voted).sum()),
        "flagged": flagged,
        "flagged_fraction": flagged / max(1, int(voted.sum())),
        "classes": [c.item() if hasattr(c, "item") else c for c in est.classes_],
        "annotators": {
            str(name): {"votes": int(r.votes), "accuracy": float(r.accuracy), "agreement": float(r.agreement)}
            for name, r in table.iterrows()
        },
        "output": str(out_path),
        "rows_written": int(written),
        "report": None if report_path is None else str(report_path),
        "seconds": time.perf_counter() - t0,
    }
    if as_json:
        click.echo(json.dumps(summary, default=str))
    elif not quiet:
        click.echo(format_summary(summary))


def format_summary(s: dict) -> str:
    """The closing summary: counts, then one line per annotator."""
    lines = [
        f"labelclean consensus ({s['method']}): {s['rows']:,} rows, {s['flagged']:,} consensus labels not trusted "
        f"({s['flagged_fraction']:.1%})"
        + (f", {s['rows_without_votes']:,} rows without votes" if s["rows_without_votes"] else "")
    ]
    width = max(9, *(len(n) for n in s["annotators"]))
    lines.append(f"{'annotator':<{width}}  {'votes':>8}  {'accuracy':>8}  {'agreement':>9}")
    for name, a in s["annotators"].items():
        lines.append(f"{name:<{width}}  {a['votes']:>8,}  {a['accuracy']:>8.3f}  {a['agreement']:>9.3f}")
    lines.append(f"wrote {s['output']} ({s['rows_written']:,} rows) in {s['seconds']:.1f} s")
    if s.get("report"):
        lines.append(f"report: {s['report']}")
    return "\n".join(lines)


__all__ = ["command"]
