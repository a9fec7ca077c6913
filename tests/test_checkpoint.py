"""Loading weights from every accepted file layout, saving checkpoints atomically, and their checksums."""

import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models import create_model
from tests.conftest import flip_tensor_byte, shared_or_skip
from utils.checkpoint import (
    CHECKSUM,
    CheckpointError,
    content_digest,
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


def training_state() -> dict:
    """A checkpoint's kinds of entries: weights, an optimiser's state (tensors, ints, floats, lists, None),
    the RNG's bytes, and plain values."""
    model = torch.nn.Linear(64, 8)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 64)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng_torch": torch.get_rng_state(),
            "epoch": 3, "best": {"top1": 0.25, "epoch": -1}, "args": {"lr": 0.1, "name": "x", "flip": False,
            "model_cfg": {"stage_blocks": (1, 1)}, "resume": None}}  # fmt: skip


def test_a_saved_checkpoint_carries_its_checksum_and_loads_without_it(tmp_path):
    state = training_state()
    save_atomic(state, tmp_path / "ck.pt")
    raw = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert raw[CHECKSUM] == content_digest(state) and raw[CHECKSUM].startswith("sha256:")
    got = read_checkpoint(tmp_path / "ck.pt")
    assert CHECKSUM not in got and got.keys() == state.keys()
    assert content_digest(got) == content_digest(state)


def test_bytes_flipped_in_tensor_data_are_refused_in_one_line_naming_the_file(tmp_path):
    state = training_state()
    save_atomic(state, tmp_path / "ck.pt")
    flip_tensor_byte(tmp_path / "ck.pt")
    # torch itself loads the file silently, as another model: the checksum is what notices
    loaded = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert not torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(tmp_path / "ck.pt")
    msg = str(e.value)
    assert str(tmp_path / "ck.pt") in msg and "do not match the checksum" in msg and "\n" not in msg


def test_an_old_checkpoint_without_checksum_still_loads(tmp_path):
    state = training_state()
    torch.save(state, tmp_path / "old.pt")  # as save_atomic wrote them before checksums
    got = read_checkpoint(tmp_path / "old.pt")
    assert got.keys() == state.keys() and torch.equal(got["model"]["weight"], state["model"]["weight"])


def pickle_record(path) -> tuple[int, int]:
    """(offset, size) of the pickle (data.pkl) inside a torch zip file."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def test_no_single_byte_change_of_the_pickle_loads_as_other_contents(tmp_path, recwarn):
    """Every change of one byte of the pickle (keys, values, the digest, its key) is refused or loads the very
    same contents; never other ones (a renamed key, another number)."""
    state = {"model": {"w": torch.arange(4.0)}, "epoch": 3, "best": {"top1": 0.5}, "args": {"l": [1, 2], "n": "x"}}
    save_atomic(state, tmp_path / "ck.pt")
    raw, (start, size) = (tmp_path / "ck.pt").read_bytes(), pickle_record(tmp_path / "ck.pt")
    digest, changed = content_digest(state), tmp_path / "changed.pt"
    for i in range(start, start + size):
        changed.write_bytes(raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :])
        try:
            got = read_checkpoint(changed)
        except CheckpointError as e:
            assert "changed.pt" in str(e) and "\n" not in str(e)
            continue
        assert got.keys() == state.keys() and content_digest(got) == digest, f"byte {i - start} of the pickle"


def test_a_digest_under_another_key_is_refused(tmp_path):
    state = {"model": {"w": torch.zeros(2)}, "epoch": 1}
    torch.save({**state, "checksun": content_digest(state)}, tmp_path / "ck.pt")
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        read_checkpoint(tmp_path / "ck.pt")


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
