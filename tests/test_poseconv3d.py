"""PoseConv3D: pyskl checkpoint compatibility, golden outputs, init, gradients and the model interface."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from models.poseconv3d import Bottleneck3d, PoseConv3D, average_clips
from models.registry import create_model
from tests.conftest import FIXTURES, shared_or_skip

TINY = dict(base_channels=8, stage_blocks=(1, 1, 1))


def _upstream_keys() -> list[tuple[str, list[int], str]]:
    rows = []
    for line in (FIXTURES / "poseconv3d" / "keys_full.txt").read_text().splitlines():
        name, shape, dtype = line.split("\t")
        rows.append((name, json.loads(shape), dtype))
    return rows


def _entries(model: torch.nn.Module) -> list[tuple[str, list[int], str]]:
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]


@pytest.mark.parametrize("in_channels", [17, 1])
def test_full_size_state_dict_matches_pyskl(in_channels: int) -> None:
    with torch.device("meta"):
        model = PoseConv3D(in_channels=in_channels)
    expected = _upstream_keys()
    assert len(expected) == 260
    # Upstream documents that only the stem conv depends on in_channels.
    expected[0] = (expected[0][0], [32, in_channels, 1, 7, 7], expected[0][2])
    assert expected[0][0] == "backbone.conv1.conv.weight"
    assert _entries(model) == expected


@pytest.mark.parametrize("case", ["in17", "in1"])
def test_golden_pyskl_checkpoint(case: str) -> None:
    ckpt = torch.load(shared_or_skip("golden", "poseconv3d", case, "checkpoint.pth"), weights_only=True)
    io = np.load(shared_or_skip("golden", "poseconv3d", case, "io.npz"))
    model = PoseConv3D(in_channels=ckpt["meta"]["in_channels"], num_classes=ckpt["meta"]["num_classes"])
    model.load_state_dict(ckpt["state_dict"], strict=True)
    model.eval()
    x = torch.from_numpy(io["input"])
    with torch.no_grad():
        feat = model.extract_feat(x)
        logits = model(x)
        probs = average_clips(logits, num_clips=2)
    np.testing.assert_allclose(feat.numpy(), io["feat"], atol=5e-3, rtol=1e-4)
    np.testing.assert_allclose(logits.numpy(), io["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(probs.numpy(), io["test_probs"], atol=1e-5, rtol=0)


def test_init_matches_pyskl() -> None:
    model = PoseConv3D()
    for name, m in model.named_modules():
        if isinstance(m, Bottleneck3d):
            # Zero-init residual: every block starts as the identity.
            assert torch.all(m.conv3.bn.weight == 0), name
            for bn in (m.conv1.bn, m.conv2.bn):
                assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0), name
        if isinstance(m, torch.nn.BatchNorm3d):
            assert torch.all(m.bias == 0), name
    for name in ["backbone.conv1.bn", "backbone.layer1.0.downsample.bn"]:
        assert torch.all(model.get_submodule(name).weight == 1), name
    # Kaiming normal, fan-out, ReLU gain: std = sqrt(2 / (out_channels * kernel volume)).
    w = model.backbone.layer3[0].conv1.conv.weight  # (128, 256, 3, 1, 1): fan-out 384, fan-in 768
    assert w.std().item() == pytest.approx(math.sqrt(2 / 384), rel=0.03)
    assert w.mean().abs().item() < 0.002
    fc = model.get_classifier()
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.03)
    assert torch.all(fc.bias == 0)


def test_init_weights_uses_given_generator() -> None:
    a, b = PoseConv3D(**TINY), PoseConv3D(**TINY)
    a.backbone.init_weights(torch.Generator().manual_seed(0))
    b.backbone.init_weights(torch.Generator().manual_seed(0))
    pairs = zip(a.backbone.parameters(), b.backbone.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)


def test_every_parameter_gets_a_gradient() -> None:
    model = PoseConv3D(**TINY).train()
    # With the zero-init gammas every conv inside a block would get an exactly-zero gradient; set them to 1
    # so that a detached branch shows up as a zero gradient.
    for m in model.modules():
        if isinstance(m, Bottleneck3d):
            torch.nn.init.ones_(m.conv3.bn.weight)
    x = torch.rand(2, 17, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    model(x).logsumexp(dim=1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_interface_shapes_and_consistency() -> None:
    model = PoseConv3D(num_classes=5, **TINY).eval()
    assert model.num_classes == 5
    groups = model.param_groups()
    assert [id(p) for p in groups["backbone"] + groups["head"]] == [id(p) for p in model.parameters()]
    x = torch.rand(3, 17, 12, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fmap = model.extract_feat(x)
        feats = model.forward_features(x)
        logits = model(x)
    assert fmap.shape == (3, 128, 6, 4, 4)  # 4 * 8 * 2**2 channels; strides (1,2,2)(1,2,2)(2,2,2)
    assert feats.shape == (3, 128)
    torch.testing.assert_close(feats, fmap.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(logits, model.get_classifier()(feats))
    assert logits.shape == (3, 5)


def test_channels_last_matches_contiguous() -> None:
    model = PoseConv3D(**TINY).eval()
    for m in model.modules():  # non-trivial BN so that the comparison means something
        if isinstance(m, torch.nn.BatchNorm3d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    x = torch.rand(2, 17, 8, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last_3d)
        out = model(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_reset_classifier() -> None:
    model = PoseConv3D(**TINY).eval()
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.reset_classifier(7)
    assert model.num_classes == 7
    fc = model.get_classifier()
    assert fc.weight.shape == (7, 128) and torch.all(fc.bias == 0)
    assert model(torch.rand(2, 17, 4, 16, 16)).shape == (2, 7)
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, backbone_before[k]), k
    with pytest.raises(ValueError):
        model.reset_classifier(0)


def test_average_clips_hand_computed() -> None:
    # Two videos x two clips, video-major.
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [1.0, 1.0], [0.0, math.log(4.0)]])
    expected = torch.tensor([[(0.5 + 0.75) / 2, (0.5 + 0.25) / 2], [(0.5 + 0.2) / 2, (0.5 + 0.8) / 2]])
    torch.testing.assert_close(average_clips(logits, 2), expected)
    torch.testing.assert_close(average_clips(logits, 1), logits.softmax(dim=1))
    with pytest.raises(ValueError):
        average_clips(logits, 3)


def test_registry() -> None:
    model = create_model("poseconv3d", in_channels=1, num_classes=10, dropout=0.0, **TINY)
    assert isinstance(model, PoseConv3D)
    assert model.backbone.conv1.conv.weight.shape == (8, 1, 1, 7, 7) and model.num_classes == 10
    with pytest.raises(TypeError, match="unknown argument"):
        create_model("poseconv3d", depth=50)


def test_invalid_configs_fail() -> None:
    with pytest.raises(ValueError, match="spatial_strides"):
        PoseConv3D(spatial_strides=(2, 2), **TINY)
    with pytest.raises(ValueError, match="out_indices"):
        PoseConv3D(out_indices=(3,), **TINY)
    with pytest.raises(ValueError, match="out_indices"):
        PoseConv3D(out_indices=(1, 2), **TINY)
    with pytest.raises(ValueError, match="inflate"):
        PoseConv3D(inflate=(0, 1), **TINY)
