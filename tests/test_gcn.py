"""Skeleton GCN graphs of any layout against pyskl's (../shared/golden/gcn/models, skipped when absent) and by hand."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.store.layouts import COCO17, NTU25, Layout
from models.gcn_graph import adjacency, inward_edges
from tests.conftest import shared_or_skip

GOLDEN = ("golden", "gcn", "models")
PYSKL_LAYOUTS = {"coco": COCO17, "nturgb+d": NTU25}  # pyskl's graph layout names -> ours


# ---------------------------------------------------------------------------------------------------
# graphs


@pytest.mark.parametrize("pyskl_layout", sorted(PYSKL_LAYOUTS))
@pytest.mark.parametrize("mode", ["spatial", "stgcn_spatial"])
def test_graph_matches_pyskl(pyskl_layout: str, mode: str) -> None:
    graphs = np.load(shared_or_skip(*GOLDEN, "graphs.npz"))
    expected = graphs[f"{pyskl_layout}.{mode}"]
    np.testing.assert_allclose(adjacency(PYSKL_LAYOUTS[pyskl_layout], mode), expected, atol=1e-6, rtol=0)


def test_tree_edges_are_pyskls() -> None:
    # NTU-25's limbs are the Kinect tree, child first, as pyskl's inward edges; the root is the spine shoulder.
    edges, root = inward_edges(NTU25)
    assert set(edges) == set(NTU25.limbs) and len(edges) == 24 and root == 20
    # COCO-17's limbs are parent first and include the hip-hip limb, which pyskl's tree (rooted at the nose) lacks.
    edges, root = inward_edges(COCO17)
    assert set(edges) == {(b, a) for a, b in COCO17.limbs if (a, b) != (11, 12)} and len(edges) == 16 and root == 0


def test_graph_of_a_chain_by_hand() -> None:
    # 0 - 1 - 2: joint 1 has the most limbs, so it is the root and the centre.
    chain = Layout(name="chain3", num_joints=3, left=(), right=(), limbs=((0, 1), (1, 2)))
    inward = np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0]])  # [j, i]: joint j (the parent) feeds joint i
    outward = np.array([[0, 0.5, 0], [0, 0, 0], [0, 0.5, 0]])  # joint 1's two children, column-normalised
    np.testing.assert_allclose(adjacency(chain, "spatial"), np.stack([np.eye(3), inward, outward]))
    # ST-GCN: the 1-hop neighbourhood normalised per column (degrees 2, 3, 2), split into the joint itself,
    # the neighbours no nearer the centre (1 -> its children) and the nearer ones (children -> 1).
    third = 1 / 3
    root = np.diag([0.5, third, 0.5])
    close = np.array([[0, third, 0], [0, 0, 0], [0, third, 0]])
    further = np.array([[0, 0, 0], [0.5, 0, 0.5], [0, 0, 0]])
    np.testing.assert_allclose(adjacency(chain, "stgcn_spatial"), np.stack([root, close, further]))


def test_graph_rejects_unknown_modes_and_loose_joints() -> None:
    with pytest.raises(ValueError, match="graph mode"):
        adjacency(NTU25, "uniform")
    loose = Layout(name="loose", num_joints=3, left=(), right=(), limbs=((0, 1),))
    with pytest.raises(ValueError, match="connect every joint"):
        adjacency(loose)
