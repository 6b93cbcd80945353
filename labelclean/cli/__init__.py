"""The ``labelclean`` command line: ``labelclean filter|selftrain|pu DATA.parquet [options]``.

A thin shell over :mod:`labelclean.api`; one module per subcommand.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from . import consensus as _consensus
from . import filter as _filter
from . import pu as _pu
from . import selftrain as _selftrain
from ._common import EXIT_USAGE


class _App(click.Group):
    """A click group whose errors are one line on stderr (no usage block), with the exit status kept."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.exceptions.Abort:
            click.echo("Error: aborted; no output was written.", err=True)
            code = 130
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" See '{exc.ctx.command_path} --help'."
            click.echo(f"Error: {' '.join(exc.format_message().split())}{hint}", err=True)
            code = exc.exit_code if isinstance(exc, click.UsageError) else 1
            code = EXIT_USAGE if isinstance(exc, click.UsageError) else code
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(
    cls=_App,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  labelclean filter data.parquet                       # find wrong labels
  labelclean selftrain data.parquet                    # fill missing labels
  labelclean pu data.parquet --positive spam           # positives + unlabeled
  labelclean filter data.parquet --report report.html  # with an HTML report
""",
)
@click.version_option(package_name="labelclean")
def cli() -> None:
    """labelclean: find wrong labels, propose better ones, fill in missing ones.

    Each command reads a parquet file, a folder of parquet files, a glob, several paths or
    a CSV file as one dataset, detects the feature columns (numbers, numbers stored as text,
    lists of numbers, PNG/JPEG bytes, low-cardinality text), trains the matching estimator
    and writes a new parquet file: every input column unchanged plus is_clean, pseudo_label
    and label_quality. The input is never modified. Example files to try it on:
    python -m labelclean.examples write DIR.
    """


cli.add_command(_filter.command)
cli.add_command(_selftrain.command)
cli.add_command(_pu.command)
cli.add_command(_consensus.command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``labelclean`` script."""
    cli.main(argv, prog_name="labelclean")


__all__ = ["cli", "main"]
