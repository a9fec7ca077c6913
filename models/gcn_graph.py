"""The graph of a skeleton GCN: the (K=3, V, V) adjacency of any joint layout, as pyskl's `Graph(layout, mode).A`.

The edges come from the layout's tree (`datasets.batch.streams.parents`): every joint but the root points
inward to its parent, and the root (the joint that is its own parent) is the centre. This reproduces pyskl's
hand-written 'nturgb+d' and 'coco' graphs (`pyskl/utils/graph.py`): for NTU-25 the limbs are a tree rooted at
the spine shoulder; for COCO-17 the tree drops the hip-hip limb (11, 12), which pyskl's graph does not have
either, and is rooted at the nose.

Two modes, both with K = 3 subsets. `A[k, i, j]` is the weight with which joint i feeds joint j (the GCNs
compute `out[..., j] = sum_i x[..., i] * A[k, i, j]`); every column of a normalised matrix sums to 1 or 0.
- 'spatial' (ST-GCN++, CTR-GCN, AAGCN): identity; inward edges (parent -> child), column-normalised;
  outward edges (child -> parent), column-normalised.
- 'stgcn_spatial' (ST-GCN): ST-GCN's partition of the 1-hop neighbourhood, normalised as a whole: the root
  (the joint itself), the neighbours no closer to the centre, the neighbours closer to it. Distances to the
  centre are hop distances truncated at `max_hop` (farther is infinite), exactly as upstream, so beyond one
  hop of the centre every neighbour falls in the middle subset.
"""

from __future__ import annotations

import numpy as np

from datasets.batch.streams import parents
from datasets.store.layouts import Layout

MODES = ("spatial", "stgcn_spatial")


def inward_edges(layout: Layout) -> tuple[list[tuple[int, int]], int]:
    """(edges (joint, parent) for every joint but the root, the root). Raises ValueError unless the layout's
    limbs connect every joint (a joint that no limb reaches would also be its own parent)."""
    parent = parents(layout)
    roots = [v for v, p in enumerate(parent) if v == p]
    if len(roots) != 1:
        raise ValueError(
            f"layout {layout.name!r}: the limbs must connect every joint to build a GCN graph; "
            f"joints that are their own parent: {roots}"
        )
    return [(v, p) for v, p in enumerate(parent) if v != p], roots[0]


def _edge_matrix(edges: list[tuple[int, int]], num_joints: int) -> np.ndarray:
    """(V, V) with a 1 at [j, i] for every edge (i, j): joint j feeds joint i."""
    a = np.zeros((num_joints, num_joints))
    for i, j in edges:
        a[j, i] = 1.0
    return a


def normalize_columns(a: np.ndarray) -> np.ndarray:
    """(V, V) -> (V, V) with every non-zero column divided by its sum (pyskl's `normalize_digraph`)."""
    degree = a.sum(axis=0)
    scale = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    return a * scale[None, :]


def hop_distance(num_joints: int, edges: list[tuple[int, int]], max_hop: int = 1) -> np.ndarray:
    """(V, V) hop distances along undirected `edges`, up to `max_hop`; inf beyond it."""
    a = np.eye(num_joints)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    dist = np.full((num_joints, num_joints), np.inf)
    reach = [np.linalg.matrix_power(a, d) > 0 for d in range(max_hop + 1)]
    for d in range(max_hop, -1, -1):  # the smallest d that reaches wins
        dist[reach[d]] = d
    return dist


def _stgcn_partition(num_joints: int, edges: list[tuple[int, int]], center: int, max_hop: int) -> np.ndarray:
    """ST-GCN's 'spatial' partition: (1 + 2 * max_hop, V, V), root, then (closer-or-equal, further) per hop."""
    dist = hop_distance(num_joints, edges, max_hop)
    norm = normalize_columns((dist <= max_hop).astype(float))
    # [j, i] pairs: i's neighbour j is "close" when j is no nearer the centre than i (upstream's naming)
    close_side = dist[:, center][:, None] >= dist[:, center][None, :]
    subsets = []
    for hop in range(max_hop + 1):
        at_hop = dist == hop
        subsets.append(np.where(at_hop & close_side, norm, 0.0))
        if hop > 0:
            subsets.append(np.where(at_hop & ~close_side, norm, 0.0))
    return np.stack(subsets)


def adjacency(layout: Layout, mode: str = "spatial", max_hop: int = 1) -> np.ndarray:
    """The adjacency of `layout`: float64 (3, V, V) (module docstring for the modes).

    max_hop: the neighbourhood of 'stgcn_spatial' (1 in every pyskl config; K = 1 + 2 * max_hop).
    Raises ValueError for an unknown mode or a layout whose limbs leave a joint unconnected.
    """
    if mode not in MODES:
        raise ValueError(f"unknown graph mode {mode!r}; choose one of {', '.join(MODES)}")
    edges, center = inward_edges(layout)
    v = layout.num_joints
    if mode == "stgcn_spatial":
        return _stgcn_partition(v, edges, center, max_hop)
    outward = [(j, i) for i, j in edges]
    return np.stack([np.eye(v), normalize_columns(_edge_matrix(edges, v)), normalize_columns(_edge_matrix(outward, v))])
