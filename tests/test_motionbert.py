"""MotionBERT (DSTformer + ActionNet): upstream golden outputs, checkpoint keys, gradients, input checks."""

from pathlib import Path

import numpy as np
import pytest
import torch

from models import create_model
from models.motionbert import ActionNet, DSTformer, motionbert
from tests.conftest import shared_or_skip

FIX = Path(__file__).parent / "fixtures" / "motionbert"
# The golden tiny model (see ../shared/golden/README.md, motionbert/): hidden_dim 2048 reproduces upstream's
# 'class' head, which ignores the hidden_dim=64 it was given.
TINY = dict(dim_feat=32, dim_rep=32, depth=2, num_heads=4, mlp_ratio=2, num_classes=10, hidden_dim=2048)
TINY_BACKBONE = dict(dim_in=3, dim_out=3, dim_feat=32, dim_rep=32, depth=2, num_heads=4, mlp_ratio=2)


def read_keys(path: Path) -> list[tuple[str, list[int]]]:
    rows = [line.split("\t") for line in path.read_text().splitlines() if line]
    return [(name, [int(s) for s in shape.strip("[]").split(",") if s.strip()]) for name, shape, _ in rows]


def strip_module(state: dict) -> dict:
    return {k.removeprefix("module."): v for k, v in state.items()}


def state_keys_shapes(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


def test_tiny_keys_match_upstream():
    assert state_keys_shapes(motionbert(**TINY)) == read_keys(FIX / "keys.txt")


def test_full_keys_match_upstream_ntu60():
    with torch.device("meta"):  # 269 entries of the 43M-parameter model, without allocating it
        model = create_model("motionbert")
    assert state_keys_shapes(model) == read_keys(FIX / "keys_full.txt")


def test_pretrained_backbone_golden_rep_and_pose():
    """train.py-layout backbone file -> DSTformer: representation and 3-D pose head equal upstream's."""
    ckpt = torch.load(FIX / "pretrained_backbone.bin", map_location="cpu", weights_only=True)
    backbone = DSTformer(**TINY_BACKBONE).eval()
    backbone.load_state_dict(strip_module(ckpt["model_pos"]), strict=True)
    io = np.load(FIX / "io_T16_cropped.npz")
    x = torch.from_numpy(io["input_T16"])  # (4, 16, 17, 3)
    with torch.no_grad():
        rep = backbone.get_representation(x)
        pose = backbone(x)
    assert rep.shape == (4, 16, 17, 32)
    n = len(io["pretrained_rep_T16"])
    np.testing.assert_allclose(rep[:n].numpy(), io["pretrained_rep_T16"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(pose.numpy(), io["pretrained_pose_T16"], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def golden_model() -> ActionNet:
    path = shared_or_skip("golden", "motionbert", "checkpoint_release_format.bin")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = motionbert(**TINY).eval()
    model.load_state_dict(strip_module(ckpt["model"]), strict=True)
    return model


@pytest.mark.parametrize("t", [243, 16])
def test_release_checkpoint_golden_logits(golden_model, t):
    io = np.load(shared_or_skip("golden", "motionbert", "io.npz"))
    with torch.no_grad():
        logits = golden_model(torch.from_numpy(io[f"input_T{t}"]))
    np.testing.assert_allclose(logits.numpy(), io[f"logits_T{t}"], rtol=0, atol=1e-5)


def test_release_checkpoint_golden_rep_and_features(golden_model):
    io = np.load(shared_or_skip("golden", "motionbert", "io.npz"))
    x = torch.from_numpy(io["input_T16"])  # (2, 2, 16, 17, 3)
    with torch.no_grad():
        rep = golden_model.backbone.get_representation(x.reshape(4, 16, 17, 3))
        feats = golden_model.forward_features(x)
        logits = golden_model.head.classify(feats)
    np.testing.assert_allclose(rep.numpy(), io["rep_T16"], rtol=0, atol=1e-5)
    # pooled feature = mean over frames, then over persons, of the (J*dim_rep) flattened representation
    expected = io["rep_T16"].reshape(2, 2, 16, 17 * 32).mean(axis=2).mean(axis=1)
    np.testing.assert_allclose(feats.numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(logits.numpy(), io["logits_T16"], rtol=0, atol=1e-5)


def test_one_backward_reaches_every_trainable_parameter():
    torch.manual_seed(0)
    model = motionbert(**TINY, drop_path_rate=0.1).train()
    x = torch.randn(3, 2, 8, 17, 3)
    model(x).logsumexp(dim=1).sum().backward()
    # backbone.head is the 3-D pose regressor of pretraining: ActionNet never calls it, so it gets no grad.
    missing = [n for n, p in model.named_parameters() if p.grad is None and not n.startswith("backbone.head.")]
    assert missing == []
    assert all(p.grad is None for p in model.backbone.head.parameters())


def test_interface_and_reset_classifier():
    model = create_model("motionbert", **TINY).eval()
    assert model.num_classes == 10
    groups = model.param_groups()
    assert [id(p) for p in groups["backbone"] + groups["head"]] == [id(p) for p in model.parameters()]
    assert isinstance(model.backbone, DSTformer)
    x = torch.randn(2, 2, 5, 17, 3)
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, 17 * 32)
        model.reset_classifier(7)
        assert model.get_classifier() is model.head.fc2
        assert model(x).shape == (2, 7) and model.num_classes == 7


def test_drop_path_rates_are_linear():
    backbone = DSTformer(**TINY_BACKBONE | dict(depth=3), drop_path_rate=0.2)
    rates = [blk.drop_path.p for blk in backbone.blocks_st]
    assert rates == pytest.approx([0.0, 0.1, 0.2])
    assert [blk.drop_path.p for blk in backbone.blocks_ts] == rates


def test_init_follows_upstream():
    backbone = DSTformer(**TINY_BACKBONE)
    assert torch.all(backbone.ts_attn[0].weight == 0) and torch.all(backbone.ts_attn[0].bias == 0.5)
    assert torch.all(backbone.norm.weight == 1) and torch.all(backbone.norm.bias == 0)
    assert torch.all(backbone.blocks_st[0].attn_s.qkv.bias == 0)
    assert 0.01 < backbone.blocks_st[0].mlp_s.fc1.weight.std() < 0.03


def test_clip_longer_than_maxlen_raises():
    model = motionbert(**TINY | dict(maxlen=8))
    with pytest.raises(ValueError, match="at most maxlen=8.*--clip_len"):
        model(torch.zeros(1, 1, 9, 17, 3))
