import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def shared_or_skip(*parts: str) -> Path:
    """Path under ../shared, or skip the test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture
def eval_logits(monkeypatch) -> list:
    """The logits of every forward pass that `engine.evaluate.predict_probs` makes from now on, in order (a
    list that fills up as `main.py --evaluate` runs its sweep)."""
    import engine.evaluate as ev

    logits = []
    real = ev.predict_probs

    def spy(model, *a, **k):
        hook = model.register_forward_hook(lambda m, i, o: logits.append(o.detach().float()))
        try:
            return real(model, *a, **k)
        finally:
            hook.remove()

    monkeypatch.setattr(ev, "predict_probs", spy)
    return logits


def error_line(capsys, excinfo) -> str:
    """The one line a user error printed, as 'error: ...', after checking it exited with code 2
    (utils/errors.py) and printed nothing else on stderr."""
    assert excinfo.value.code == 2, excinfo.value.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], lines
    return "error: " + lines[0].split(": error: ", 1)[1]


def flip_tensor_byte(path: Path) -> Path:
    """Flip one byte in the middle of the largest weight of a torch checkpoint (of ckpt['model'] when it has
    one, else of any tensor): its record inside the zip archive is stored as is, and torch.load does not notice
    the change. Returns `path`."""
    import struct
    import zipfile

    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    tensors = ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt
    weight = max((t for t in tensors.values() if isinstance(t, torch.Tensor)), key=lambda t: t.nbytes)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:  # the record that holds the weight's bytes
        info = next(i for i in z.infolist() if "/data/" in i.filename and z.read(i) == weight.numpy().tobytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len  # the record's first byte, after its local header
    raw[start + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path
