"""The `qgnn` command: a thin Typer app. Each command group lives in its own module here and only
parses options, calls the library and prints; errors the user can fix print one line."""

from __future__ import annotations

import sys

import typer

from qgnn_cli import __version__
from qgnn_cli.cli import bench as bench_cmd
from qgnn_cli.cli import data as data_cmd
from qgnn_cli.cli import eval as eval_cmd
from qgnn_cli.cli import export as export_cmd
from qgnn_cli.cli import info as info_cmd
from qgnn_cli.cli import quantize as quantize_cmd
from qgnn_cli.cli import train as train_cmd
from qgnn_cli.cli.output import err_console
from qgnn_cli.errors import QgnnError

app = typer.Typer(
    name="qgnn",
    help="Low-bit (INT8/INT4/INT2) quantization-aware training and bit-packed inference for deep GNNs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_debug = {"on": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qgnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _debug["on"] = debug


# Command groups, in the order of the workflow (help lists them so).
app.add_typer(data_cmd.app, name="data")
app.command("train")(train_cmd.train)
app.command("quantize")(quantize_cmd.quantize)
app.command("export")(export_cmd.export)
app.command("eval")(eval_cmd.evaluate)
app.command("bench")(bench_cmd.bench)
app.command("info")(info_cmd.info)

def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 internal error, 2 usage or input error)."""
    args = sys.argv[1:] if argv is None else list(argv)
    _debug["on"] = "--debug" in args
    try:
        # Standalone mode: Typer prints usage errors itself and exits through SystemExit.
        app(args=args, prog_name="qgnn")
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except QgnnError as exc:
        if _debug["on"]:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence for users
        if _debug["on"]:
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        return 1


def entry_point() -> None:
    sys.exit(main())
