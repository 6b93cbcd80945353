"""``labelclean selftrain``: fill in missing labels with SelfTrainer."""

from __future__ import annotations

import click

from ._common import common_options, run_task


@click.command(
    "selftrain",
    epilog="""\b
Examples:
  labelclean selftrain data.parquet
  labelclean selftrain data.parquet --epochs 10 --report report.html
""",
)
@click.option("--method", default=None, help="SelfTrainer's method, when it has several.")
@common_options
def command(method: str | None, **options) -> None:
    """Fill missing labels (null or -1) by self-training (SelfTrainer); write DATA.clean.parquet.

    pseudo_label holds the given label where there is one and the inferred one elsewhere;
    is_clean and label_quality say how far each row's label can be trusted.
    """
    run_task("selftrain", params={"method": method}, **options)
