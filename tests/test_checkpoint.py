"""Loading weights from every accepted file layout, and saving checkpoints atomically."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from models import create_model
from tests.conftest import shared_or_skip
from utils.checkpoint import (
    CheckpointError,
    extract_state_dict,
    load_full,
    load_weights,
    read_checkpoint,
    save_atomic,
)

FIX = Path(__file__).parent / "fixtures"
MB_TINY = dict(dim_feat=32, dim_rep=32, depth=2, num_heads=4, mlp_ratio=2, num_classes=10, hidden_dim=2048)
PC_TINY = dict(in_channels=3, num_classes=5, base_channels=4, stage_blocks=(1, 1, 1))


class NotATensor:
    pass


def test_save_atomic_roundtrip_and_no_temp_left(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 2}
    save_atomic(state, tmp_path / "ck.pt")
    assert torch.equal(read_checkpoint(tmp_path / "ck.pt")["model"]["w"], torch.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_save_atomic_keeps_old_file_when_saving_fails(tmp_path):
    save_atomic({"epoch": 1}, tmp_path / "ck.pt")
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_atomic({"bad": lambda: 0}, tmp_path / "ck.pt")  # lambdas do not pickle
    assert read_checkpoint(tmp_path / "ck.pt") == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04broken zip"])
def test_corrupt_file_is_one_line_error(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    assert "bad.pth" in str(e.value) and "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")


def test_unsafe_file_needs_trust(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": NotATensor()}, tmp_path / "u.pt")
    with pytest.raises(CheckpointError, match="--trust_checkpoint"):
        read_checkpoint(tmp_path / "u.pt")
    assert "state_dict" in read_checkpoint(tmp_path / "u.pt", trusted=True)


def test_layouts_and_module_prefix():
    w = {"module.a": torch.zeros(1)}
    assert extract_state_dict({"meta": {}, "state_dict": {"a": torch.zeros(1)}}) == ({"a": torch.zeros(1)}, False)
    state, backbone = extract_state_dict({"model": w})
    assert list(state) == ["a"] and not backbone
    state, backbone = extract_state_dict({"model_pos": w, "epoch": 3})
    assert list(state) == ["a"] and backbone
    assert list(extract_state_dict(w)[0]) == ["a"]


def test_strict_load_lists_bad_keys_by_name():
    model = create_model("poseconv3d", **PC_TINY)
    state = dict(model.state_dict())
    state.pop("backbone.conv1.conv.weight")
    state["backbone.extra"] = torch.zeros(1)
    state["backbone.layer1.0.conv1.bn.weight"] = torch.zeros(99)
    with pytest.raises(CheckpointError) as e:
        load_full(model, state)
    msg = str(e.value)
    assert "missing backbone.conv1.conv.weight" in msg and "unexpected backbone.extra" in msg
    assert "mis-shaped backbone.layer1.0.conv1.bn.weight" in msg


def test_tune_from_other_class_count_gets_new_head(tmp_path):
    src = create_model("poseconv3d", **PC_TINY)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "src.pth")
    dst = create_model("poseconv3d", **{**PC_TINY, "num_classes": 7})
    report = load_weights(dst, tmp_path / "src.pth", backbone_only=False)
    assert "new classifier" in report and "cls_head.fc_cls.weight" in report
    for k, v in src.backbone.state_dict().items():
        assert torch.equal(v, dst.backbone.state_dict()[k])


def test_pretrained_backbone_from_whole_model_file(tmp_path):
    src = create_model("poseconv3d", **PC_TINY)
    torch.save({"meta": {}, "state_dict": src.state_dict()}, tmp_path / "src.pth")
    dst = create_model("poseconv3d", **{**PC_TINY, "num_classes": 3})
    report = load_weights(dst, tmp_path / "src.pth", backbone_only=True)
    n = len(dst.backbone.state_dict())
    assert f"loaded {n}/{n} backbone tensors" in report and "cls_head.fc_cls.weight" in report


def test_motionbert_pretrained_backbone_file():
    """MotionBERT's train.py layout ({'model_pos': module.*}) into our ActionNet's backbone."""
    model = create_model("motionbert", **MB_TINY).eval()
    report = load_weights(model, FIX / "motionbert" / "pretrained_backbone.bin", backbone_only=True)
    assert "loaded 110/110 backbone tensors" in report
    io = np.load(FIX / "motionbert" / "io_T16_cropped.npz")
    with torch.no_grad():
        rep = model.backbone.get_representation(torch.from_numpy(io["input_T16"][:2]))
    np.testing.assert_allclose(rep.numpy(), io["pretrained_rep_T16"], atol=1e-5)


def test_motionbert_release_checkpoint_logits():
    path = shared_or_skip("golden", "motionbert", "checkpoint_release_format.bin")
    io = np.load(path.parent / "io.npz")
    model = create_model("motionbert", **MB_TINY).eval()
    assert load_weights(model, path, backbone_only=False).endswith("loaded all 119 tensors")
    with torch.no_grad():
        logits = model(torch.from_numpy(io["input_T16"]))
    np.testing.assert_allclose(logits.numpy(), io["logits_T16"], atol=1e-5)


@pytest.mark.parametrize("channels", [17, 1])
def test_pyskl_checkpoint_logits(channels):
    path = shared_or_skip("golden", "poseconv3d", f"in{channels}", "checkpoint.pth")
    io = np.load(path.parent / "io.npz")
    model = create_model("poseconv3d", in_channels=channels).eval()
    assert "loaded all 260 tensors" in load_weights(model, path, backbone_only=False)
    with torch.no_grad():
        logits = model(torch.from_numpy(io["input"]))
    np.testing.assert_allclose(logits.numpy(), io["logits"], atol=1e-4)
