"""Checkpoints: atomic saving with a checksum of the contents, safe and verified loading, and weights from the
upstream file layouts.

Accepted layouts (all with or without DataParallel's `module.` prefix):
- pyskl / mmcv:            {'meta': ..., 'state_dict': {'backbone.*', 'cls_head.*'}}
- MotionBERT action model: {'model': {'backbone.*', 'head.*'}, 'epoch', 'lr', ...}
- MotionBERT pretraining:  {'model_pos': {DSTformer keys}}  (a backbone only)
- ours:                    {'model': state_dict, 'model_name', 'model_cfg', ...}
- a plain state dict.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from utils.atomic import atomic_write
from utils.errors import UserError


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message says what to do."""


CHECKSUM = "checksum"  # the entry of a saved checkpoint that holds "sha256:" + the hex digest of the others
_DIGEST = "sha256:"


def _write(obj: dict, f) -> None:
    """The write of save_atomic (a seam for tests that simulate a full disk)."""
    torch.save(obj, f)


def save_atomic(obj: dict, path: str | Path) -> None:
    """torch.save `obj` with its checksum (`content_digest`, under CHECKSUM) through utils/atomic.atomic_write:
    a crash or a full disk never leaves half a file, and the previous file stays as it was.

    Raises WriteError (one line) when the disk is full or the folder cannot be written."""
    with atomic_write(path, "wb") as f:
        _write({**obj, CHECKSUM: content_digest(obj)}, f)


def content_digest(obj: dict) -> str:
    """'sha256:' + the SHA-256 of a canonical serialisation of a checkpoint's contents, every entry but
    CHECKSUM: each tensor's dtype, shape and bytes, and the plain values (None, bool, int, float, str,
    bytes, lists and tuples alike, dicts by sorted key). It is computed on what torch.save
    is given and on what torch.load returns, so it checks the model a file loads as, whatever bytes of the
    zip archive (headers, padding) torch ignores. Other objects count by their type's name only."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in obj.items() if k != CHECKSUM})
    return _DIGEST + h.hexdigest()


def _feed(h, x) -> None:
    """Add `x` to the hash `h`: a tag, then its contents, each length-prefixed so no two values collide."""

    def put(tag: bytes, data: bytes = b"") -> None:
        h.update(tag + len(data).to_bytes(8, "little") + data)

    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().resolve_conj().resolve_neg()
        put(b"T", f"{t.dtype} {tuple(t.shape)} {t.layout}".encode())
        if t.layout == torch.strided and not t.is_quantized:
            data = t.contiguous().reshape(-1).view(torch.uint8).numpy()  # (bytes,), no copy when contiguous
            h.update(b"B" + data.nbytes.to_bytes(8, "little"))
            h.update(memoryview(data))
    elif isinstance(x, dict):
        put(b"D", str(len(x)).encode())
        for k in sorted(x, key=lambda k: (type(k).__name__, repr(k))):
            _feed(h, k)
            _feed(h, x[k])
    elif isinstance(x, (list, tuple)):  # torch.Size too
        put(b"L", str(len(x)).encode())
        for v in x:
            _feed(h, v)
    elif x is None or isinstance(x, (bool, int, str)):
        put(b"P", f"{type(x).__name__} {x}".encode())
    elif isinstance(x, float):
        put(b"F", x.hex().encode())
    elif isinstance(x, bytes):
        put(b"Y", x)
    elif isinstance(x, (torch.dtype, torch.device)):
        put(b"P", f"{type(x).__name__} {x}".encode())
    else:  # a Python object of a trusted file: its repr may hold an address, so only its type counts
        put(b"O", f"{type(x).__module__}.{type(x).__qualname__}".encode())


def verify_checksum(obj: dict, path: Path, hint: str) -> dict:
    """`obj` (a loaded checkpoint) without its CHECKSUM entry, once its contents are shown to match it.
    A file without one (older checkpoints, upstream ones) passes unchecked; a digest under another name (its
    key's bytes changed) does not. Raises CheckpointError (one line) naming `path` when the contents differ:
    bytes changed after the file was written."""
    held = [k for k, v in obj.items() if isinstance(v, str) and (k == CHECKSUM or v.startswith(_DIGEST))]
    if not held:  # none, or an entry of another program's
        return obj
    if held != [CHECKSUM] or obj[CHECKSUM] != content_digest(obj):
        raise CheckpointError(
            f"{path} is damaged: its contents do not match the checksum stored in it (bytes changed after it was "
            f"written, or it was edited and saved without utils/checkpoint.save_atomic): {hint}"
        )
    return {k: v for k, v in obj.items() if k != CHECKSUM}


def _is_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (torch >= 1.6; it starts with a local file header, even when cut
    short) or, in the legacy format, a pickle whose first byte is the protocol opcode 0x80; random bytes,
    text or an empty file are neither."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80" or zipfile.is_zipfile(path)


def read_checkpoint(path: str | Path, trusted: bool = False, hint: str | None = None) -> dict:
    """Load a checkpoint file on the CPU, with weights_only=True unless `trusted`, and verify its checksum
    (`verify_checksum`; none in older and upstream files). Returns its contents without the checksum.

    hint: what to do when the file is damaged (default: write or copy it again). Raises CheckpointError
    with one line for missing, damaged, foreign or unsafe files.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; give a .pt file in it (e.g. {path / 'best.pt'})")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    hint = hint or "it was cut short or is not a checkpoint; copy or write it again, or give another file"
    if not _is_torch_file(path):
        raise CheckpointError(f"{path} is not a torch checkpoint (neither a zip archive nor a pickle): {hint}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):  # a damaged pickle, not an unsafe one
            raise CheckpointError(f"{path} is damaged ({_first_line(e)}): {hint}") from e
        if not trusted:
            raise CheckpointError(
                f"{path} holds Python objects beyond tensors and plain values, so it cannot be loaded safely; "
                "pass --trust_checkpoint if you trust its source"
            ) from e
        obj = _load_untrusted(path)
    except Exception as e:
        raise CheckpointError(f"{path} is damaged ({type(e).__name__}: {_first_line(e)}): {hint}") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, expected a dict or state dict")
    return verify_checksum(obj, path, hint)


def _first_line(e: BaseException) -> str:
    """The first sentence of an exception's message (torch's go on with generic advice)."""
    line = (str(e).strip().splitlines() or ["no detail"])[0]
    return line.split(". ", 1)[0].rstrip(".")[:160]


def _load_untrusted(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: {_first_line(e)})") from e


def _strip(state: dict, prefix: str) -> dict:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def extract_state_dict(ckpt: dict) -> tuple[dict[str, torch.Tensor], bool]:
    """The model weights of any accepted layout; returns (state dict, is_backbone_only)."""
    if "state_dict" in ckpt:
        state, backbone_only = ckpt["state_dict"], False
    elif "model" in ckpt and isinstance(ckpt["model"], dict):
        state, backbone_only = ckpt["model"], False
    elif "model_pos" in ckpt:
        state, backbone_only = ckpt["model_pos"], True
    else:
        state, backbone_only = ckpt, False
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("the checkpoint's weights are not a dict of tensors")
    return _strip(dict(state), "module."), backbone_only


def _classifier_prefix(model: nn.Module) -> str:
    clf = model.get_classifier()
    for name, mod in model.named_modules():
        if mod is clf:
            return name + "."
    raise CheckpointError("the model's classifier is not one of its modules")


def _describe(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_full(model: nn.Module, state: dict[str, torch.Tensor], new_head_ok: bool = False) -> str:
    """Load a whole model strictly; returns a one-line report.

    new_head_ok: if the classifier's shape differs (another class count), keep the model's freshly
    initialised head instead of failing (--tune_from). Any other missing, unexpected or mis-shaped key
    is an error that lists them by name.
    """
    own = model.state_dict()
    head = _classifier_prefix(model)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    skipped = []
    if new_head_ok:
        skipped = [k for k in misshaped if k.startswith(head)]
        misshaped = [k for k in misshaped if k not in skipped]
    problems = []
    if missing:
        problems.append(f"missing {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected {_describe(unexpected)}")
    if misshaped:
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in misshaped]
        problems.append(f"mis-shaped {_describe(shapes)}")
    if problems:
        raise CheckpointError(
            "checkpoint does not fit the model: " + "; ".join(problems) + " (check --model_type and --model_cfg)"
        )
    model.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=not skipped)
    report = f"loaded all {len(own)} tensors"
    if skipped:
        report += f"; new classifier ({_describe(skipped)} differ in shape, left at initialisation)"
    return report


def load_backbone(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """Load pretrained backbone weights for fine-tuning; returns a report of what was and was not loaded.

    Keys may be the backbone's own (`conv1.conv.weight`) or the whole model's (`backbone.conv1...`);
    classifier and other non-backbone keys are skipped. Only names and shapes that match are loaded.
    """
    backbone = model.backbone
    if any(k.startswith("backbone.") for k in state):  # a whole model's file: its non-backbone keys go unused
        state = {k[len("backbone.") :] if k.startswith("backbone.") else k: v for k, v in state.items()}
    own = backbone.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not loaded:
        raise CheckpointError("no tensor of the file matches the backbone by name and shape; wrong --model_type?")
    skipped = [k for k in state if k not in loaded]
    left = [k for k in own if k not in loaded]
    backbone.load_state_dict(loaded, strict=False)
    report = f"loaded {len(loaded)}/{len(own)} backbone tensors"
    if left:
        report += f"; left at initialisation: {_describe(left)}"
    if skipped:
        report += f"; not used from the file: {_describe(skipped)}"
    return report


def load_weights(
    model: nn.Module, path: str | Path, *, backbone_only: bool, trusted: bool = False, ckpt: dict | None = None
) -> str:
    """--pretrained (backbone_only=True) and --tune_from (whole model, new head if needed); `ckpt`: the
    file's contents when already read. Returns a one-line report."""
    state, file_is_backbone = extract_state_dict(ckpt if ckpt is not None else read_checkpoint(path, trusted))
    if backbone_only or file_is_backbone:
        return f"{path}: " + load_backbone(model, state)
    return f"{path}: " + load_full(model, state, new_head_ok=True)
