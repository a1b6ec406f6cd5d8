"""The ``mobiledr`` command line: one Typer app, one module of commands per pipeline stage."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.logging import RichHandler

from mobiledr import __version__
from mobiledr.cli import bench, data, demo, evaluate, explain, export, models, parity, train
from mobiledr.errors import MobiledrError

app = typer.Typer(
    name="mobiledr",
    help="Retinal-screening classifiers from training to a smartphone.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models.register(app)
data.register(app)
train.register(app)
evaluate.register(app)
explain.register(app)
export.register(app)
parity.register(app)
bench.register(app)
demo.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mobiledr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug messages."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Show warnings and errors only."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)


def main() -> None:
    """Entry point: user-facing errors become one line on stderr and exit code 1."""
    try:
        app()
    except MobiledrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
