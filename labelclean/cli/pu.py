"""``labelclean pu``: positive-unlabeled learning with PUClassifier."""

from __future__ import annotations

import click

from ._common import auto_or_number, common_options, run_task
from ._pretrain import pretrain_option


def _prior(value: str) -> float | str:
    return auto_or_number(
        value, float, lambda p: 0.0 < p < 1.0, expected="a number in (0, 1)", outside="outside (0, 1)"
    )


@click.command(
    "pu",
    epilog="""\b
Examples:
  labelclean pu data.parquet --positive spam
  labelclean pu data.parquet --positive 1 --negative 0 --method elkan_noto --report report.html
  labelclean pu data.parquet --positive spam --pretrain contrastive
""",
)
@click.option("--positive", required=True, metavar="VALUE", help="Label value of the labeled positive rows.")
@click.option(
    "--negative",
    default=None,
    metavar="VALUE",
    help="pseudo_label written for rows found negative [default: 0, false or 'negative'].",
)
@click.option(
    "--method",
    type=click.Choice(["nnpu", "upu", "elkan_noto", "spy"]),
    default="nnpu",
    show_default=True,
    help="nnPU (Kiryo et al. 2017), uPU, Elkan-Noto (2008) or spies (Liu et al. 2002).",
)
@click.option(
    "--prior",
    default="auto",
    show_default=True,
    callback=lambda ctx, param, value: _prior(value),
    help="Share of positives among all rows, or 'auto' to estimate it.",
)
@pretrain_option
@common_options
def command(positive: str, negative: str | None, method: str, prior: float | str, pretrain: str, **options) -> None:
    """Positive-unlabeled learning (PUClassifier): rows labeled VALUE are positives, all others unlabeled.

    pseudo_label is the positive value or the negative one for every row; the summary
    shows the estimated class prior.

    DATA is a parquet or CSV file, a folder of parquet files (Spark, Dask and hive-style
    key=value partitions included), a quoted glob or several paths, read as one table:
    a folder's or glob's files in sorted path order, several paths in the order given,
    rows in file order. The output is parquet (one file, or one per input part with
    --output-dir).
    """
    run_task(
        "pu",
        params={"method": method, "prior": prior},
        positive=positive,
        negative=negative,
        pretrain=pretrain,
        **options,
    )
