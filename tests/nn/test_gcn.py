"""The deep GCN stack's sites (nn/gcn.py)."""

from __future__ import annotations

from qgnn_cli.nn.gcn import DeepGCN
from qgnn_cli.nn.sites import SitePlan


def test_only_the_class_scores_stay_float():
    """lin_out's output is what the model returns: off, as the last SMP step's results are; every other
    site gets the plan's width."""
    model = DeepGCN(12, 8, 3, layers=2, dropout=0.5, plan=SitePlan(2, "bt*"))
    off = [n for n, q in model.sites() if not q.enabled]
    assert off == ["lin_out.output"]
    assert all(q.bits == 2 and q.bt == "bt*" for n, q in model.sites() if n not in off)
