"""``labelclean filter``: find wrong labels with CoTeachingFilter."""

from __future__ import annotations

import click

from .._distributed import is_main
from ._common import auto_or_number, common_options, run_task
from ._pretrain import pretrain_option


def _noise_rate(value: str | None) -> float | str | None:
    return auto_or_number(
        value, float, lambda r: 0.0 <= r < 1.0, expected="a number in [0, 1)", outside="outside [0, 1)"
    )


@click.command(
    "filter",
    epilog="""\b
Examples:
  labelclean filter data.parquet
  labelclean filter data.parquet --noise-rate 0.2 --epochs 10 --report report.html
  labelclean filter data.parquet --features emb --label-column y --drop -o kept.parquet
  labelclean filter data.parquet --pretrain contrastive   # clean on label-free features
  labelclean filter parts/ --output-dir cleaned/         # a partitioned folder, one output per part
  labelclean filter 'runs/*.parquet' -o all.parquet      # a glob (quoted), one output file
  labelclean filter data.csv                             # CSV in, data.clean.parquet out
""",
)
@click.option(
    "--method",
    type=click.Choice(["coteaching", "coteaching+", "jocor"]),
    default="coteaching",
    show_default=True,
    help="Co-teaching (Han et al. 2018), Co-teaching+ (Yu et al. 2019) or JoCoR (Wei et al. 2020).",
)
@click.option(
    "--noise-rate",
    default="auto",
    show_default=True,
    callback=lambda ctx, param, value: _noise_rate(value),
    help="Share of wrong labels expected (the forget rate), or 'auto' to estimate it.",
)
@click.option(
    "--pred-probs",
    "pred_probs",
    default=None,
    metavar="COLUMN",
    help="Skip training: a list column of your own model's out-of-sample class probabilities "
    "(one number per label value, in sorted order) decides the output.",
)
@click.option(
    "--pred-probs-columns",
    "pred_probs_columns",
    default=None,
    metavar="P1,P2,...",
    help="Skip training: one probability column per label value, in the sorted order of the values.",
)
@pretrain_option
@common_options
def command(
    method: str,
    noise_rate: float | str,
    pretrain: str,
    pred_probs: str | None,
    pred_probs_columns: str | None,
    **options,
) -> None:
    """Find wrong labels (CoTeachingFilter) and write DATA.clean.parquet.

    Every input column is kept unchanged; is_clean, pseudo_label (a corrected label where
    the given one looks wrong) and label_quality (0-1, higher = more trustworthy) are added.

    DATA is a parquet or CSV file, a folder of parquet files (Spark, Dask and hive-style
    key=value partitions included), a quoted glob or several paths, read as one table:
    a folder's or glob's files in sorted path order, several paths in the order given,
    rows in file order. The output is parquet (one file, or one per input part with
    --output-dir).
    """
    if pred_probs is not None and pred_probs_columns is not None:
        raise click.UsageError("--pred-probs (one list column) and --pred-probs-columns exclude each other.")
    columns = None if pred_probs_columns is None else [c.strip() for c in pred_probs_columns.split(",") if c.strip()]
    probs = pred_probs if pred_probs is not None else columns
    if probs is not None and pretrain not in (None, "none"):
        raise click.UsageError("--pred-probs skips training; --pretrain has nothing to pretrain for.")
    params = {} if probs is not None else {"method": method, "forget_rate": noise_rate}
    task_kwargs = {} if probs is None else {"pred_probs": probs}
    if not is_main():  # under torchrun every process trains its share; rank 0 shows progress and the summary
        options.update(quiet=True, as_json=False)
    run_task("filter", params=params, pretrain=pretrain, **task_kwargs, **options)
