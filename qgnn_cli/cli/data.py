"""`qgnn data list|show`: the known datasets and where they are found; a graph's statistics."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from qgnn_cli.cli.output import console, key_value_table, print_json
from qgnn_cli.data import apply_split, graph_stats, list_datasets, load_graph
from qgnn_cli.data.registry import resolve_data_root

app = typer.Typer(help="List the known datasets; show a graph's statistics.", no_args_is_help=True)

DATA_ROOT = typer.Option(
    None, "--data-root", envvar="QGNN_DATA", help="Folder laid out like shared/datasets (default: $QGNN_DATA)."
)
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


@app.command("list")
def list_cmd(data_root: Path | None = DATA_ROOT, json_out: bool = JSON) -> None:
    """Known datasets, their file format and where each is found (embedded, a path, or missing)."""
    infos = list_datasets(data_root)
    if json_out:
        print_json([{**info.__dict__, "found": info.found} for info in infos])
        return
    root = resolve_data_root(data_root)
    table = Table(title="datasets", title_justify="left", caption=f"data root: {root or 'none'}")
    for column in ("name", "format", "found", "description"):
        table.add_column(column)
    for info in infos:
        found = {None: "[red]missing[/]", "embedded": "embedded"}.get(info.location, "path")
        table.add_row(info.name, info.format, found, info.description)
    console.print(table)


def _rows(stats: dict) -> dict:
    """The stats formatted for reading: thousands separators, split sizes on one line."""
    rows = {k: f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else v for k, v in stats.items()}
    sizes = stats["split_sizes"]
    rows["split_sizes"] = " / ".join(f"{k} {v:,}" for k, v in sizes.items()) if sizes else "none stored"
    return rows


@app.command("show")
def show(
    name: str = typer.Argument(..., help="A dataset name (see `qgnn data list`) or a path to an .npz file."),
    data_root: Path | None = DATA_ROOT,
    split: str | None = typer.Option(
        None, "--split", help="public | random | N (the N-th stored split). Default: the masks as stored."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for --split random."),
    json_out: bool = JSON,
) -> None:
    """Nodes, directed edges, features, classes, isolated nodes, homophily, split sizes, density."""
    graph = load_graph(name, data_root)
    if split is not None:
        graph = apply_split(graph, split, seed)
    stats = graph_stats(graph)
    if json_out:
        print_json(stats)
        return
    console.print(key_value_table(graph.name, _rows(stats)))
