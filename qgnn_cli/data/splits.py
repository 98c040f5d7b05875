"""Train/validation/test masks: seeded random splits and picking one of several stored splits."""

from __future__ import annotations

import hashlib

import torch

from qgnn_cli.data.graph import Graph
from qgnn_cli.errors import DataError


def index_mask(index, num_nodes: int) -> torch.Tensor:
    """A bool (N,) mask that is True at ``index`` (an int array or tensor of node ids)."""
    mask = torch.zeros(num_nodes, dtype=torch.bool)
    mask[torch.as_tensor(index, dtype=torch.int64)] = True
    return mask


def random_split(
    graph: Graph,
    seed: int,
    train_per_class: int = 20,
    num_val: int = 500,
    num_test: int | None = 1000,
) -> Graph:
    """``graph`` with fresh (N,) masks, like PyG's ``RandomNodeSplit(split="random")``.

    ``train_per_class`` random nodes of each class (all of a smaller class) train; of the rest,
    ``num_val`` random nodes validate and the next ``num_test`` test (``None``: all remaining).
    The same seed gives the same split.
    """
    if graph.y is None:
        raise DataError(f"{graph.name}: a random split needs labels and this graph has none")
    n = graph.num_nodes
    gen = torch.Generator().manual_seed(seed)
    train = torch.zeros(n, dtype=torch.bool)
    for c in range(graph.num_classes):
        members = (graph.y == c).nonzero().view(-1)
        train[members[torch.randperm(members.numel(), generator=gen)[:train_per_class]]] = True
    rest = (~train).nonzero().view(-1)
    rest = rest[torch.randperm(rest.numel(), generator=gen)]
    wanted = num_val + (num_test or 0)
    if wanted > rest.numel():
        raise DataError(
            f"{graph.name}: split asks for {num_val} validation + {num_test} test nodes but only"
            f" {rest.numel()} remain after {int(train.sum())} training nodes"
        )
    val = torch.zeros(n, dtype=torch.bool)
    val[rest[:num_val]] = True
    test = torch.zeros(n, dtype=torch.bool)
    test[rest[num_val:] if num_test is None else rest[num_val:wanted]] = True
    return graph.with_masks(train, val, test)


def num_stored_splits(graph: Graph) -> int:
    """How many splits the masks hold: 0 (none), 1 ((N,) masks) or S ((S, N) masks)."""
    if graph.train_mask is None:
        return 0
    return 1 if graph.train_mask.dim() == 1 else int(graph.train_mask.shape[0])


def select_split(graph: Graph, index: int) -> Graph:
    """``graph`` with the ``index``-th of its stored (S, N) masks as (N,) masks."""
    count = num_stored_splits(graph)
    if count == 0:
        raise DataError(f"{graph.name}: no stored split to select (use a random split)")
    if not 0 <= index < count:
        raise DataError(f"{graph.name}: split {index} requested but the file stores {count} (0..{count - 1})")
    if graph.train_mask.dim() == 1:
        return graph
    masks = (graph.train_mask, graph.val_mask, graph.test_mask)
    if any(m is None or m.shape != graph.train_mask.shape for m in masks):
        raise DataError(f"{graph.name}: train/val/test masks differ in shape")
    return graph.with_masks(*(m[index].clone() for m in masks))


def apply_split(graph: Graph, spec: str, seed: int = 0) -> Graph:
    """Masks chosen by name: ``"public"`` (the stored split; of S stored ones, number ``seed mod S``, so
    that consecutive seeds cycle through them as they re-draw random splits), ``"random"``
    (:func:`random_split` with ``seed``) or an integer (that stored split)."""
    if spec == "public":
        stored = num_stored_splits(graph)
        if stored == 0:
            raise DataError(f"{graph.name} ships no split: use --split random")
        return select_split(graph, seed % stored)
    if spec == "random":
        return random_split(graph, seed)
    try:
        index = int(spec)
    except ValueError:
        raise DataError(f"split '{spec}' is not 'public', 'random' or a split number") from None
    return select_split(graph, index)


def split_digest(graph: Graph) -> str:
    """A fingerprint of the (N,) train/validation/test masks: equal digests, the same nodes in each part.
    Model files record it, so that a run reusing another's predictions can check both used one split."""
    h = hashlib.sha256()
    for mask in (graph.train_mask, graph.val_mask, graph.test_mask):
        h.update(b"none;" if mask is None else mask.to(torch.bool).contiguous().numpy().tobytes() + b";")
    return h.hexdigest()[:32]
