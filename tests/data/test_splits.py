import pytest
import torch

from qgnn_cli.data import apply_split, load_graph, random_split, select_split
from qgnn_cli.errors import DataError


@pytest.fixture(scope="module")
def cora():
    return load_graph("cora")


def test_random_split_sizes_and_disjointness(cora):
    g = random_split(cora, seed=3)
    assert [int((g.y[g.train_mask] == c).sum()) for c in range(7)] == [20] * 7
    assert (int(g.val_mask.sum()), int(g.test_mask.sum())) == (500, 1000)
    assert not (g.train_mask & g.val_mask).any()
    assert not ((g.train_mask | g.val_mask) & g.test_mask).any()
    assert not torch.equal(g.train_mask, cora.train_mask)  # not the public split


def test_random_split_is_seeded(cora):
    a, b, c = random_split(cora, 1), random_split(cora, 1), random_split(cora, 2)
    assert all(torch.equal(getattr(a, m), getattr(b, m)) for m in ("train_mask", "val_mask", "test_mask"))
    assert not torch.equal(a.train_mask, c.train_mask)


def test_random_split_rest_is_test_and_small_classes_give_all(cora):
    g = random_split(cora, 0, train_per_class=200, num_val=300, num_test=None)
    sizes = torch.bincount(cora.y, minlength=7)
    assert int(g.train_mask.sum()) == int(torch.clamp(sizes, max=200).sum())
    assert bool((g.train_mask | g.val_mask | g.test_mask).all())


def test_random_split_errors(cora):
    with pytest.raises(DataError, match="split asks for 500 validation \\+ 3000 test nodes but only 2568 remain"):
        random_split(cora, 0, num_test=3000)
    with pytest.raises(DataError, match="needs labels"):
        random_split(cora.__class__(**{**cora.__dict__, "y": None}), 0)


def test_select_split_of_stored_splits(shared_datasets):
    g = load_graph("cornell", shared_datasets)
    assert g.train_mask.shape == (10, 183)
    s = select_split(g, 7)
    assert s.train_mask.shape == (183,)
    assert torch.equal(s.val_mask, g.val_mask[7]) and torch.equal(s.test_mask, g.test_mask[7])
    assert not torch.equal(select_split(g, 0).train_mask, s.train_mask)
    with pytest.raises(DataError, match="split 10 requested but the file stores 10 \\(0..9\\)"):
        select_split(g, 10)


def test_select_split_on_single_and_missing_splits(cora):
    assert select_split(cora, 0) is cora
    with pytest.raises(DataError, match="split 1 requested but the file stores 1"):
        select_split(cora, 1)
    bare = cora.with_masks(None, None, None)
    with pytest.raises(DataError, match="no stored split"):
        select_split(bare, 0)


def test_apply_split_by_name(cora, shared_datasets):
    assert apply_split(cora, "public") is cora
    assert torch.equal(apply_split(cora, "random", seed=9).train_mask, random_split(cora, 9).train_mask)
    chameleon = load_graph("chameleon", shared_datasets)
    assert torch.equal(apply_split(chameleon, "2").test_mask, chameleon.test_mask[2])
    # "public" with several stored splits: the seed's turn, so that seeds cycle through them.
    stored = chameleon.test_mask.shape[0]
    assert torch.equal(apply_split(chameleon, "public", seed=stored + 3).test_mask, chameleon.test_mask[3])
    assert apply_split(cora, "public", seed=5) is cora
    with pytest.raises(DataError, match="ships no split: use --split random"):
        apply_split(cora.with_masks(None, None, None), "public")
    with pytest.raises(DataError, match="split 'first' is not 'public', 'random' or a split number"):
        apply_split(cora, "first")
