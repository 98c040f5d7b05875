"""Quantized GNN layers and models: aggregation, SMP/APPNP propagation, deep GCN, the registry."""

from qgnn_cli.nn.aggregate import QAggregate
from qgnn_cli.nn.energy import dirichlet_energy
from qgnn_cli.nn.features import SparseFeatures, maybe_sparse
from qgnn_cli.nn.gcn import DeepGCN, QGCNLayer
from qgnn_cli.nn.mlp import QMLP
from qgnn_cli.nn.models import MODELS, SMPModel, build_model
from qgnn_cli.nn.operator import GraphOperator
from qgnn_cli.nn.sites import SITE_GROUPS, SitePlan
from qgnn_cli.nn.smp import GRAD_MODES, PROP_MODES, SMPParams, SMPPropagation, smp_propagate, update_multipliers

__all__ = [
    "DeepGCN", "GRAD_MODES", "GraphOperator", "MODELS", "PROP_MODES", "QAggregate", "QGCNLayer", "QMLP",
    "SITE_GROUPS", "SMPModel", "SparseFeatures", "maybe_sparse", "SMPParams", "SMPPropagation", "SitePlan", "build_model", "dirichlet_energy",
    "smp_propagate", "update_multipliers",
]
