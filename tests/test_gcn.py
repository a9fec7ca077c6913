"""Skeleton GCNs (ST-GCN, ST-GCN++, CTR-GCN, AAGCN): the graphs of any layout, pyskl checkpoints and golden
outputs (../shared/golden/gcn/models, skipped when absent), and the model interface on tiny CPU variants."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from datasets.store.layouts import COCO17, NTU25, Layout, get_layout
from models import create_model, model_spec
from models.gcn_graph import adjacency, inward_edges
from models.poseconv3d import average_clips
from tests.conftest import shared_or_skip

ARCHS = ("stgcn", "stgcnpp", "ctrgcn", "aagcn")
GOLDEN = ("golden", "gcn", "models")
FOLDERS = [f"{arch}_{data}" for arch in ARCHS for data in ("coco", "ntu")]
PYSKL_LAYOUTS = {"coco": COCO17, "nturgb+d": NTU25}  # pyskl's graph layout names -> ours
TINY = dict(base_channels=8)  # wide enough for a channel in each of ST-GCN++'s six temporal branches

# A 5-joint skeleton declared as a run configuration carries it (Layout.to_dict()).
TOY = {
    "name": "toy5",
    "joints": ["hip", "spine", "head", "left_hand", "right_hand"],
    "pairs": [["left_hand", "right_hand"]],
    "limbs": [["hip", "spine"], ["spine", "head"], ["spine", "left_hand"], ["spine", "right_hand"]],
    "parts": {"trunk": ["hip", "spine", "head"], "arms": ["left_hand", "right_hand"]},
}


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _entries(model: torch.nn.Module) -> list[tuple[str, list[int], str]]:
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]


def _key_file(folder: str, name: str) -> list[tuple[str, list[int], str]]:
    rows = []
    for line in shared_or_skip(*GOLDEN, folder, name).read_text().splitlines():
        key, shape, dtype = line.split("\t")
        rows.append((key, json.loads(shape), dtype))
    return rows


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


# ---------------------------------------------------------------------------------------------------
# pyskl checkpoints and golden outputs


def _golden_model(folder: str) -> tuple[torch.nn.Module, dict, torch.Tensor]:
    """The model of `folder` with its pyskl checkpoint loaded strictly, the checkpoint, and the graph the
    model was built with (read before loading: ST-GCN++ learns it, and the checkpoint's buffers overwrite it)."""
    ckpt = torch.load(shared_or_skip(*GOLDEN, folder, "checkpoint.pth"), weights_only=True)
    meta = ckpt["meta"]
    layout = PYSKL_LAYOUTS[meta["layout"]]
    model = create_model(
        meta["arch"],
        num_classes=meta["num_classes"],
        num_joints=layout.num_joints,
        layout=layout.name,
        in_channels=meta["in_channels"],
        base_channels=meta["base_channels"],
    )
    backbone = model.backbone
    graph = (backbone.A if hasattr(backbone, "A") else backbone.gcn[0].gcn.A).detach().clone()
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.eval(), ckpt, graph


@pytest.mark.parametrize("folder", FOLDERS)
def test_golden_pyskl_checkpoint(folder: str) -> None:
    model, ckpt, graph = _golden_model(folder)
    io = np.load(shared_or_skip(*GOLDEN, folder, "io.npz"))
    assert _entries(model) == _key_file(folder, "keys.txt")
    np.testing.assert_allclose(graph.numpy(), io["A"], atol=1e-6, rtol=0)
    x = torch.from_numpy(io["input"])
    with torch.no_grad():
        feat = model.extract_feat(x)
        logits = model(x)
        train_logits = copy.deepcopy(model).train()(x)
        model.reset_classifier(10)
        head = torch.load(shared_or_skip(*GOLDEN, folder, "head_c10.pth"), weights_only=True)
        model.load_state_dict({**ckpt["state_dict"], **head}, strict=True)
        logits_c10 = model(x)
    np.testing.assert_allclose(feat.numpy(), io["feat"], atol=2e-3, rtol=0)
    np.testing.assert_allclose(logits.numpy(), io["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(train_logits.numpy(), io["logits_train"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits_c10.numpy(), io["logits_c10"], atol=1e-4, rtol=0)
    # pyskl's test: the N samples as N clips of one video, softmax then mean
    probs = average_clips(logits, num_clips=logits.shape[0])
    np.testing.assert_allclose(probs.numpy(), io["test_probs"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("folder", FOLDERS)
def test_full_size_state_dict_matches_pyskl(folder: str) -> None:
    expected = _key_file(folder, "keys_full.txt")
    summary = json.loads(shared_or_skip(*GOLDEN, "models.json").read_text())["models"][folder]
    layout = PYSKL_LAYOUTS[summary["layout"]]
    model = create_model(summary["arch"], num_classes=60, num_joints=layout.num_joints, layout=layout.name)
    assert _entries(model) == expected
    assert sum(p.numel() for p in model.parameters()) == summary["num_params_full_config"]


# ---------------------------------------------------------------------------------------------------
# tiny CPU variants: shapes, gradients, declared layouts, the model interface


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_interface(arch: str) -> None:
    model = create_model(arch, num_classes=5, num_joints=17, layout="coco17", **TINY).eval()
    assert model.num_classes == 5 and model.num_features == 32
    groups = model.param_groups()
    assert [id(p) for p in groups["backbone"] + groups["head"]] == [id(p) for p in model.parameters()]
    x = _randn(3, 2, 10, 17, 3)
    with torch.no_grad():
        fmap = model.extract_feat(x)
        feats = model.forward_features(x)
        logits = model(x)
    assert fmap.shape == (3, 2, 32, 3, 17)  # 4 * base_channels; T 10 -> 5 -> 3
    torch.testing.assert_close(feats, fmap.mean(dim=(3, 4)).mean(dim=1))
    torch.testing.assert_close(logits, model.get_classifier()(feats))
    assert logits.shape == (3, 5)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_parameter_gets_a_gradient(arch: str) -> None:
    # A fixed initialisation: at this width AAGCN's channel attention has 4 hidden ReLUs, which some draws
    # leave dead for the whole batch (no gradient to fc1c, fc2c).
    torch.manual_seed(0)
    model = create_model(arch, num_classes=4, num_joints=25, **TINY).train()
    # pyskl starts with alpha = 0 and some zero weights (AAGCN's attention), which would cut branches off the
    # gradient; move every parameter off those values so that a detached branch shows up as a zero gradient.
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.add_(0.1 * _randn(*p.shape, seed=i))
    model(_randn(2, 2, 8, 25, 3)).logsumexp(dim=1).sum().backward()
    # Every conv feeds a train-mode BatchNorm, whose batch mean cancels the conv's bias: those get a gradient
    # of rounding size only, so they are checked for being finite.
    conv_biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d)}
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert id(p) in conv_biases or p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("arch", ARCHS)
def test_declared_layout_builds_its_graph_and_trains(arch: str) -> None:
    model = create_model(arch, num_classes=3, num_joints=5, layout=TOY, **TINY).train()
    graph = torch.tensor(adjacency(get_layout("toy5", TOY), "stgcn_spatial" if arch == "stgcn" else "spatial"))
    gcn = model.backbone.net[0].gcn1 if arch == "ctrgcn" else model.backbone.gcn[0].gcn
    torch.testing.assert_close(gcn.A.detach(), graph.float())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(_randn(4, 2, 12, 5, 3)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize("arch", ARCHS)
def test_registry_contract_and_bad_arguments(arch: str) -> None:
    spec = model_spec(arch)
    assert (spec.reads, spec.clip_len, spec.optimizer, spec.size_arg) == ("joints", 100, "sgd", "num_joints")
    assert spec.default("dropout") == 0.0 and spec.default("layout") == "ntu25"
    with pytest.raises(ValueError, match="num_joints=17 but layout 'ntu25' has 25"):
        create_model(arch, num_joints=17, **TINY)
    with pytest.raises(TypeError, match="unknown argument"):
        create_model(arch, graph_cfg={"layout": "coco"})
    model = create_model(arch, num_joints=25, **TINY)
    with pytest.raises(ValueError, match=r"\(N, M, T, V, C\)"):
        model(_randn(2, 8, 25, 3))
    if arch in ("ctrgcn", "aagcn"):  # 'MVC' data_bn: one feature per person
        with pytest.raises(ValueError, match="data_bn"):
            model(_randn(2, 1, 8, 25, 3))


def test_head_dropout_and_reset_classifier() -> None:
    model = create_model("stgcnpp", num_classes=6, dropout=0.5, num_joints=25, **TINY)
    assert isinstance(model.cls_head.dropout, torch.nn.Dropout) and model.cls_head.dropout.p == 0.5
    backbone = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.reset_classifier(7)
    fc = model.get_classifier()
    assert model.num_classes == 7 and fc.weight.shape == (7, 32) and torch.all(fc.bias == 0)
    assert model.eval()(_randn(2, 2, 8, 25, 3)).shape == (2, 7)
    assert all(torch.equal(v, backbone[k]) for k, v in model.backbone.state_dict().items())
    with pytest.raises(ValueError):
        model.reset_classifier(0)
