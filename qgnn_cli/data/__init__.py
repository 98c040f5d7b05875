"""Graphs and where they come from: loaders per file format, the dataset registry, splits,
GCN normalisation, synthetic graphs and summary statistics. Imports nothing else of qgnn's."""

from qgnn_cli.data.graph import CSR, Graph
from qgnn_cli.data.normalize import gcn_norm, gcn_norm_factors
from qgnn_cli.data.registry import DatasetInfo, list_datasets, load_graph
from qgnn_cli.data.splits import apply_split, random_split, select_split, split_digest
from qgnn_cli.data.stats import graph_stats
from qgnn_cli.data.synthetic import synthetic_power_law

__all__ = [
    "CSR",
    "DatasetInfo",
    "Graph",
    "apply_split",
    "gcn_norm",
    "gcn_norm_factors",
    "graph_stats",
    "list_datasets",
    "load_graph",
    "random_split",
    "select_split",
    "split_digest",
    "synthetic_power_law",
]
