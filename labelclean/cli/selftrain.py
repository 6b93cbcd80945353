"""``labelclean selftrain``: fill in missing labels with SelfTrainer."""

from __future__ import annotations

from typing import Any

import click

from ._common import auto_or_number, common_options, run_task
from ._pretrain import pretrain_option


def _count_or_auto(value: str | None) -> int | str | None:
    return auto_or_number(value, int, lambda n: n >= 0, expected="a whole number >= 0", outside="below 0")


@click.command(
    "selftrain",
    epilog="""\b
Examples:
  labelclean selftrain data.parquet
  labelclean selftrain data.parquet --epochs 10 --threshold 0.8 --report report.html
  labelclean selftrain data.parquet --relabel        # every label may be wrong
  labelclean selftrain data.parquet --pretrain contrastive
""",
)
@click.option(
    "--relabel",
    is_flag=True,
    help="Treat every given label as possibly wrong: teacher-student relabeling (strategy 'relabel').",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=None,
    help="Minimum teacher confidence for a row to get a pseudo-label in the student rounds [default: 0].",
)
@click.option(
    "--max-iter",
    callback=lambda ctx, param, value: _count_or_auto(value),
    default=None,
    help="Teacher-student rounds (Noisy Student, or the relabeling's); 'auto': SelfTrainer's own choice, "
    "which trains no students after consistency training, else 5 [default: auto].",
)
@click.option(
    "--consistency-epochs",
    callback=lambda ctx, param, value: _count_or_auto(value),
    default=None,
    help="Passes of consistency training (FixMatch-style) of the first network over the unlabeled rows; "
    "0 trains it on the labeled rows alone; 'auto': SelfTrainer's own choice, 20 when every class has 50 "
    "labeled rows or more and no other option asks for student rounds, else 0 [default: auto].",
)
@pretrain_option
@common_options
def command(
    relabel: bool,
    threshold: float | None,
    max_iter: int | str | None,
    consistency_epochs: int | str | None,
    pretrain: str,
    **options,
) -> None:
    """Fill missing labels (null or -1) by self-training (SelfTrainer); write DATA.clean.parquet.

    pseudo_label holds the given label where there is one and the inferred one elsewhere;
    is_clean and label_quality say how far each row's label can be trusted.

    DATA is a parquet or CSV file, a folder of parquet files (Spark, Dask and hive-style
    key=value partitions included), a quoted glob or several paths, read as one table:
    a folder's or glob's files in sorted path order, several paths in the order given,
    rows in file order. The output is parquet (one file, or one per input part with
    --output-dir).
    """
    params = {"strategy": strategy_for(relabel, threshold, max_iter, consistency_epochs)}
    run_task("selftrain", params=params, pretrain=pretrain, **options)


def strategy_for(relabel: bool, threshold: float | None, max_iter: Any, consistency_epochs: Any) -> Any:
    """The ``SelfTrainer`` strategy the options ask for, or ``None`` for its own choice (``strategy="auto"``).

    ``--relabel``: :class:`~labelclean.Relabel`; ``--consistency-epochs N`` (N > 0):
    :class:`~labelclean.Consistency`, followed by Noisy Student rounds with ``--max-iter``;
    ``--max-iter`` or ``--threshold`` otherwise (or ``--consistency-epochs 0``):
    :class:`~labelclean.NoisyStudent`. The classes are imported only when an option names one.
    """
    rounds = {"max_iter": max_iter, "threshold": threshold}
    rounds = {k: v for k, v in rounds.items() if v is not None and v != "auto"}
    if relabel and consistency_epochs not in (None, "auto"):
        raise click.UsageError("--consistency-epochs does not apply with --relabel: relabeling trains no consistency.")
    if relabel:
        from ..self_training import Relabel

        return Relabel(**rounds) if rounds else "relabel"
    if consistency_epochs in (None, "auto", 0):
        if not rounds and consistency_epochs != 0:
            return None
        from ..self_training import NoisyStudent

        return NoisyStudent(**rounds)
    from ..self_training import Consistency, NoisyStudent

    if rounds.get("max_iter", 0) == 0:
        if "threshold" in rounds:
            raise click.UsageError(
                "--threshold sets the student rounds' pseudo-labels; after --consistency-epochs add "
                "--max-iter N (N > 0) to train students."
            )
        return Consistency(epochs=consistency_epochs)
    return NoisyStudent(consistency=Consistency(epochs=consistency_epochs), **rounds)
