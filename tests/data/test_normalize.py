import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qgnn_cli.data import CSR, gcn_norm, gcn_norm_factors, load_graph
from tests.conftest import requires_pyg


def csr_from_coo(rows, cols, n, values=None) -> CSR:
    order = torch.argsort(rows * n + cols)
    rows, cols = rows[order], cols[order]
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return CSR(indptr, cols, None if values is None else values[order], n)


def as_coo(adj: CSR):
    return adj.row_index(), adj.indices, adj.values


def dense(adj: CSR) -> torch.Tensor:
    return adj.to_torch_sparse().to_dense()


def random_csr(n: int, density: float, seed: int, weighted: bool = False) -> CSR:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, n, generator=gen) < density  # may include self-loops, on purpose
    rows, cols = mask.nonzero().T
    values = torch.rand(rows.numel(), generator=gen) + 0.5 if weighted else None
    return csr_from_coo(rows, cols, n, values)


def test_small_graph_by_hand():
    # Path 0 - 1 - 2 plus isolated node 3: degrees with self-loops 2, 3, 2, 1.
    rows = torch.tensor([0, 1, 1, 2])
    cols = torch.tensor([1, 0, 2, 1])
    a_hat = gcn_norm(csr_from_coo(rows, cols, 4))
    d = torch.tensor([2.0, 3.0, 2.0, 1.0])
    expected = (torch.eye(4) + torch.zeros(4, 4).index_put_((rows, cols), torch.ones(4))) / torch.sqrt(
        d[:, None] * d[None, :]
    )
    assert a_hat.values.dtype == torch.float32
    assert torch.allclose(dense(a_hat), expected)
    assert a_hat.indptr.tolist() == [0, 2, 5, 7, 8]


def test_without_self_loops_isolated_nodes_get_zero_not_inf():
    adj = csr_from_coo(torch.tensor([0, 1]), torch.tensor([1, 0]), 3)
    out = gcn_norm(adj, add_self_loops=False)
    assert out.nnz == 2 and torch.equal(out.values, torch.ones(2))
    _, dinv = gcn_norm_factors(adj)
    assert torch.allclose(dinv, torch.tensor([2**-0.5, 2**-0.5, 1.0]))


def test_existing_self_loop_keeps_its_weight():
    adj = csr_from_coo(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]), 2, torch.tensor([3.0, 1.0, 1.0]))
    out = gcn_norm(adj)
    assert out.nnz == 4  # the loop at 0 is not doubled
    # deg(0) = 3 + 1, deg(1) = 1 + 1
    assert torch.allclose(dense(out), torch.tensor([[3 / 4, 1 / 8**0.5], [1 / 8**0.5, 1 / 2]]))


@given(n=st.integers(1, 30), density=st.floats(0.0, 0.5), seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_factors_rebuild_gcn_norm(n, density, seed):
    adj = random_csr(n, density, seed)
    a_hat = gcn_norm(adj)
    structure, dinv = gcn_norm_factors(adj)
    assert structure.values is None
    assert torch.equal(structure.indptr, a_hat.indptr) and torch.equal(structure.indices, a_hat.indices)
    rows = structure.row_index()
    assert torch.allclose(dinv[rows] * dinv[structure.indices], a_hat.values, rtol=1e-6)
    assert bool((structure.row_index() == structure.indices).sum() == n)  # exactly one loop per node
    for r in range(n):  # sorted within rows
        seg = structure.indices[structure.indptr[r] : structure.indptr[r + 1]]
        assert torch.equal(seg, seg.sort().values)


def test_factors_reject_weighted_adjacency():
    with pytest.raises(ValueError):
        gcn_norm_factors(random_csr(5, 0.5, 0, weighted=True))


def _pyg_gcn_norm_as_csr(adj: CSR, add_self_loops: bool) -> CSR:
    from torch_geometric.nn.conv.gcn_conv import gcn_norm as pyg_gcn_norm

    rows, cols, values = as_coo(adj)
    edge_index = torch.stack([cols, rows])  # [source, target]; our rows are targets
    ei, w = pyg_gcn_norm(edge_index, values, adj.num_nodes, add_self_loops=add_self_loops)
    return csr_from_coo(ei[1], ei[0], adj.num_nodes, w)


@requires_pyg
@pytest.mark.parametrize("add_self_loops", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_pyg_on_random_graphs(add_self_loops, weighted):
    for seed in range(5):
        adj = random_csr(40, 0.15, seed, weighted)
        ours, theirs = gcn_norm(adj, add_self_loops), _pyg_gcn_norm_as_csr(adj, add_self_loops)
        assert torch.equal(ours.indptr, theirs.indptr)
        assert torch.equal(ours.indices, theirs.indices)
        if weighted:  # degree sums run in another order, so the last bit may differ
            assert torch.allclose(ours.values, theirs.values, rtol=1e-6, atol=0)
        else:
            assert torch.equal(ours.values, theirs.values)


@requires_pyg
def test_matches_pyg_on_cora():
    adj = load_graph("cora").adj
    ours, theirs = gcn_norm(adj), _pyg_gcn_norm_as_csr(adj, True)
    assert ours.nnz == 10556 + 2708
    assert torch.equal(ours.indices, theirs.indices)
    assert torch.equal(ours.values, theirs.values)
