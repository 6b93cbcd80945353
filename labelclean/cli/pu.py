"""``labelclean pu``: positive-unlabeled learning with PUClassifier."""

from __future__ import annotations

import click

from ._common import common_options, run_task


@click.command(
    "pu",
    epilog="""\b
Examples:
  labelclean pu data.parquet --positive spam
  labelclean pu data.parquet --positive 1 --negative 0 --report report.html
""",
)
@click.option("--positive", required=True, metavar="VALUE", help="Label value of the labeled positive rows.")
@click.option(
    "--negative", default=None, metavar="VALUE",
    help="pseudo_label written for rows found negative [default: 0, false or 'negative'].",
)
@click.option("--method", default=None, help="PUClassifier's method (e.g. nnpu), when it has several.")
@common_options
def command(positive: str, negative: str | None, method: str | None, **options) -> None:
    """Positive-unlabeled learning (PUClassifier): rows labeled VALUE are positives, all others unlabeled.

    pseudo_label is the positive value or the negative one for every row; the summary
    shows the estimated class prior.
    """
    run_task("pu", params={"method": method}, positive=positive, negative=negative, **options)
