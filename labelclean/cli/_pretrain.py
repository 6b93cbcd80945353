"""``--pretrain``: learn features without labels before the estimator is fitted (all three subcommands)."""

from __future__ import annotations

from collections.abc import Callable

import click


def pretrain_option(func: Callable) -> Callable:
    """Add ``--pretrain none|contrastive``; the command passes it on as ``pretrain=``."""
    return click.option(
        "--pretrain",
        type=click.Choice(["none", "contrastive"]),
        default="none",
        show_default=True,
        help="'contrastive': first learn features from all rows without their labels (ContrastiveEncoder: "
        "SimCLR-style, augmentations for images, SCARF corruption for tabular rows), then fit on them. "
        "Encoder parameters: --param pretrain__max_epochs=10 and the like.",
    )(func)
