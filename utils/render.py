"""Render model inputs from keypoints, for a whole batch at once, on the training device.

Data workers hand over keypoints only; this module turns a batch of them into what the backbone
reads (DESIGN.md, "Keypoints on the CPU, pixels on the device"):
- per-joint heatmap volumes and per-limb heatmap volumes, equal to pyskl's `GeneratePoseTarget`
  (sigma, score scaling, the EPS = 1e-3 skip, the truncated 3-sigma window, max over persons, the
  point-to-segment distance of limbs and the short-limb case) to float32 rounding;
- a grayscale volume (all joint heatmaps of a frame summed into one channel);
- raw coordinates as input channels ("Skeleton").

Inputs, shared by every function:
    kp:    (N, M, T, V, 2) float, pixel x, y already in the target (H, W) frame
    score: (N, M, T, V) float, missing persons or joints have score 0 (and coordinates 0)
Outputs are float32 on kp.device, (N, C, T, H, W) like pyskl's `FormatShape('NCTHW_Heatmap')`.

How it is fast: a Gaussian with sigma 0.6 is non-zero on at most a 5x5 window, so instead of
evaluating every pixel of the (N, C, T, H, W) volume we evaluate each drawn joint's window only, all
of them as one (ky, kx, rows) tensor, and write them into a zeroed volume with `index_copy_`. Windows
are shifted to lie inside the frame (their pixels outside the true, clipped range get 0), so the
pixels of one window are distinct and the writes need no atomics. Windows of different persons that
overlap in a plane (rare) are maxed in afterwards, person by person (gather, max, write); missing
joints (value 0) are skipped. Limbs use the same scheme, one channel at a time, with a window as
large as that limb's largest box in the batch. On a CPU the cost is then mostly zeroing the volume:
pass a reused `out` buffer, since a fresh multi-hundred-MB allocation costs more in page faults than
the rendering itself.

Precision follows upstream under NumPy 1.x (see bench/render_loop.py, the loop reference): window
bounds are `int()`-truncated float64 values, the squared limb length is float64 (rounded to float32
where it meets the pixels), everything else is float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor

from datasets.layouts import COCO17, Layout

EPS = 1e-3  # pyskl skips joints and limbs whose value (score, or 1 without scores) is below this
_CHUNK = 1 << 20  # window pixels evaluated per step; bounds the temporaries (4 MB each)

# Canonical input-format names and their accepted aliases (matched case-insensitively).
_FORMATS = {
    "heatmap": "heatmap",
    "ncthw_heatmap": "heatmap",
    "joint": "heatmap",
    "limb": "limb",
    "grayscale": "grayscale",
    "skeleton": "skeleton",
}


def _check_inputs(kp: Tensor, score: Tensor) -> tuple[Tensor, Tensor]:
    if kp.dim() != 5 or kp.shape[-1] != 2:
        raise ValueError(f"kp must be (N, M, T, V, 2) pixel x, y; got shape {tuple(kp.shape)}")
    if score.shape != kp.shape[:-1]:
        raise ValueError(f"score must be (N, M, T, V) = {tuple(kp.shape[:-1])}; got {tuple(score.shape)}")
    return kp.float(), score.to(device=kp.device, dtype=torch.float32)


def _window_size(sigma: float) -> int:
    """Widest truncated 3-sigma window: int(mu + 3s) + 1 - int(mu - 3s) <= ceil(6s) + 1 pixels."""
    return math.ceil(6 * sigma + 1e-9) + 1


def _bounds(lo: Tensor, hi: Tensor, sigma: float, size: int) -> tuple[Tensor, Tensor]:
    """Window [start, end) per row, as pyskl: int() of float64 values (towards zero), clipped.

    lo, hi: (R,) float32 coordinate bounds of what is drawn. Returns two (R,) int64 tensors; the
    window is empty where end <= start.
    """
    start = (lo.double() - 3 * sigma).long().clamp_min(0)  # .long() truncates towards 0, as int()
    end = ((hi.double() + 3 * sigma).long() + 1).clamp_max(size)
    return start, end


def _axis(start: Tensor, end: Tensor, origin: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Pixels of k-wide windows beginning at `origin` (R,): their coordinates (k, R) float32 and the
    mask (k, R) of those inside the drawn range [start, end) (R,)."""
    pix = torch.arange(k, device=origin.device)[:, None] + origin  # (k, R)
    return pix.float(), (pix >= start) & (pix < end)


def _point_patches(
    window: tuple[Tensor, ...], value: Tensor, xy: Tensor, *, sigma: float, k: tuple[int, int]
) -> Tensor:
    """Windows of keypoint Gaussians, (ky, kx, R) float32.

    window: x0, x1, y0, y1, ox, oy (R,) int64, the drawn pixel ranges and the window origins;
    value: (R,) peak values; xy: (R, 2) float32 pixel centres.
    """
    x0, x1, y0, y1, ox, oy = window
    xf, in_x = _axis(x0, x1, ox, k[1])
    yf, in_y = _axis(y0, y1, oy, k[0])
    # An infinite distance outside the drawn range makes the Gaussian exactly 0 there.
    dx2 = torch.where(in_x, (xf - xy[:, 0]) ** 2, torch.inf)  # (kx, R)
    dy2 = torch.where(in_y, (yf - xy[:, 1]) ** 2, torch.inf)  # (ky, R)
    d2 = dy2[:, None, :] + dx2[None, :, :]  # (ky, kx, R)
    # Upstream's exp(-d2 / 2 / sigma^2) * value; -d2 / 2 is d2 * -0.5 exactly. In place: this is the
    # hot loop of the renderer.
    return d2.mul_(-0.5).div_(sigma**2).exp_().mul_(value)


def _limb_bounds(s: Tensor, e: Tensor, sigma: float, size: tuple[int, int]) -> tuple[Tensor, ...]:
    """Drawn pixel range of each limb (start s, end e: (..., 2) float32), as upstream.

    Returns x0, x1, y0, y1 (...,) int64 and the short-limb mask: a limb shorter than 1 px is drawn as
    its start joint, so it gets the start joint's range. That range lies inside the limb's box, which
    upstream checks first (an empty box draws nothing), so taking it directly is equivalent.
    """
    h, w = size
    sx, sy, ex, ey = s[..., 0], s[..., 1], e[..., 0], e[..., 1]
    # pyskl squares the float32 differences as scalars, i.e. in float64 under NumPy 1.x.
    short = (sx - ex).double() ** 2 + (sy - ey).double() ** 2 < 1
    x0, x1 = _bounds(
        torch.where(short, sx, torch.minimum(sx, ex)), torch.where(short, sx, torch.maximum(sx, ex)), sigma, w
    )
    y0, y1 = _bounds(
        torch.where(short, sy, torch.minimum(sy, ey)), torch.where(short, sy, torch.maximum(sy, ey)), sigma, h
    )
    return x0, x1, y0, y1, short


def _limb_patches(
    window: tuple[Tensor, ...], value: Tensor, s: Tensor, e: Tensor, short: Tensor, *, sigma: float, k: tuple[int, int]
) -> Tensor:
    """Windows of limb Gaussians, (ky, kx, R) float32.

    window, value: as `_point_patches`; s, e: (R, 2) float32 start and end joints; short: (R,) bool,
    limbs that upstream draws as their start joint alone (shorter than 1 px).
    """
    x0, x1, y0, y1, ox, oy = window
    xf, in_x = _axis(x0, x1, ox, k[1])
    yf, in_y = _axis(y0, y1, oy, k[0])
    # Moving a short limb's end onto its start makes the segment distance exactly the start distance.
    e = torch.where(short[:, None], s, e)
    d2_ab = ((s[:, 0] - e[:, 0]).double() ** 2 + (s[:, 1] - e[:, 1]).double() ** 2).float()  # as upstream
    d2_ab = torch.where(short, 1.0, d2_ab)  # (R,)

    xf, yf = xf[None, :, :], yf[:, None, :]  # (1, kx, R), (ky, 1, R)
    sx, sy, ex, ey = s[:, 0], s[:, 1], e[:, 0], e[:, 1]  # (R,)
    d2_start = (xf - sx) ** 2 + (yf - sy) ** 2  # (ky, kx, R)
    d2_end = (xf - ex) ** 2 + (yf - ey) ** 2
    # Foot of the perpendicular along the segment: 0 at the start joint, 1 at the end joint.
    coeff = (d2_start - d2_end + d2_ab) / 2 / d2_ab
    d2_line = (xf - (sx + coeff * (ex - sx))) ** 2 + (yf - (sy + coeff * (ey - sy))) ** 2
    d2 = torch.where(coeff <= 0, d2_start, torch.where(coeff >= 1, d2_end, d2_line))
    value_y = torch.where(in_y, value, 0)[:, None, :]  # (ky, 1, R): 0 outside the drawn range
    # Upstream's exp(-d2 / 2 / sigma^2) * value, in place (-d2 / 2 is d2 * -0.5 exactly).
    return d2.mul_(-0.5).div_(sigma**2).exp_().mul_(value_y).mul_(in_x[None, :, :])


def _splat(flat: Tensor, index: Tensor, patch: Tensor, first: bool) -> None:
    """flat[index] = max(flat[index], patch); no index repeats within one call.

    first: every target pixel is still 0 (the volume was zeroed and no other window covers it), so a
    plain assignment is the max (patches are >= 0).
    """
    index, patch = index.reshape(-1), patch.reshape(-1)  # (ky*kx*R,)
    # index_select / index_copy_ rather than flat[index]: advanced indexing is ~10x slower on CPU.
    if not first:
        patch = torch.maximum(flat.index_select(0, index), patch)
    flat.index_copy_(0, index, patch)


def _draw(
    flat: Tensor,
    strides: Sequence[int],
    plane: Tensor,
    size: tuple[int, int],
    k: tuple[int, int],
    bounds: tuple[Tensor, Tensor, Tensor, Tensor],
    value: Tensor,
    extra: tuple[Tensor, ...],
    patches: Callable[..., Tensor],
) -> None:
    """Evaluate and max the windows of M persons into planes of the volume.

    plane: (P,) storage offsets of the target planes. bounds: x0, x1, y0, y1 (P, M) int64, the drawn
    pixel ranges; value: (P, M) peak values, 0 for what is not drawn; extra: per-row inputs of
    `patches` (P, M, ...), called as patches(window, value, *extra) -> (ky, kx, R).

    Every drawn row gets a (ky, kx) window shifted to lie inside the frame, so its pixels are distinct
    and one `index_copy_` writes many windows without atomics. Windows that overlap no other person's
    in their plane (nearly all) are written directly, all persons at once, in storage order (the
    writes then sweep memory forwards, several times faster on a CPU). The rest are maxed in person
    by person (gather, max, write), after the first pass. Rows are evaluated in chunks of about
    _CHUNK window pixels, laid out (ky, kx, rows) so that every elementwise operation runs along the
    long rows axis.
    """
    h, w = size
    x0, x1, y0, y1 = bounds
    ox, oy = x0.clamp(max=w - k[1]), y0.clamp(max=h - k[0])  # x0, y0 >= 0 already
    drawn = (value > 0) & (x1 > x0) & (y1 > y0)  # (P, M)
    # Windows of persons i < j in the same plane overlap: j must be maxed in, not assigned.
    crowded = torch.zeros_like(drawn)
    for j in range(1, drawn.shape[1]):
        for i in range(j):
            near = ((ox[:, j] - ox[:, i]).abs() < k[1]) & ((oy[:, j] - oy[:, i]).abs() < k[0])
            crowded[:, j] |= near & drawn[:, i]
    crowded &= drawn
    s_h, s_w = strides[3], strides[4]
    arange = partial(torch.arange, device=plane.device)
    within = (arange(k[0])[:, None] * s_h + arange(k[1]) * s_w).reshape(-1, 1)  # (ky*kx, 1) window offsets
    step = max(1, _CHUNK // (k[0] * k[1]))
    rows = (x0, x1, y0, y1, ox, oy, value, *extra)
    m = drawn.shape[1]
    passes = [(drawn & ~crowded, True)]
    for j in range(1, m):
        only_j = torch.zeros_like(crowded)
        only_j[:, j] = crowded[:, j]
        passes.append((only_j, False))
    for select, first in passes:
        picked = select.reshape(-1).nonzero().squeeze(1)  # (R,) flat (plane, person) rows, storage order
        for r0 in range(0, picked.numel(), step):
            ids = picked[r0 : r0 + step]
            x0r, x1r, y0r, y1r, oxr, oyr, val, *ext = (r.flatten(0, 1).index_select(0, ids) for r in rows)
            patch = patches((x0r, x1r, y0r, y1r, oxr, oyr), val, *ext)
            base = plane.index_select(0, ids // m) + oyr * s_h + oxr * s_w  # (R,)
            # out= is ~10x faster than an int64 add that allocates its result (torch 2.13, CPU).
            index = torch.add(within, base, out=within.new_empty(within.shape[0], base.shape[0]))  # (ky*kx, R)
            _splat(flat, index, patch, first)


def _render_into(
    flat: Tensor,
    strides: Sequence[int],
    kp: Tensor,
    value: Tensor,
    size: tuple[int, int],
    sigma: float,
    limbs: Sequence[tuple[int, int]] | None,
) -> None:
    """Max the Gaussians of every person into a zeroed volume.

    flat: 1-D view of the storage of the target volume (N, C, T, H, W), whose element strides are
    `strides` (the target can be a strided view, e.g. the even samples of a `double` buffer).
    kp: (N, M, T, V, 2) float32; value: (N, M, T, V) float32, already 0 where a joint is skipped.
    limbs: None for one channel per joint.
    """
    n, m, t, v, _ = kp.shape
    h, w = size
    dev = kp.device
    s_n, s_c, s_t = strides[:3]
    arange = partial(torch.arange, device=dev)
    if limbs is None:
        k = _window_size(sigma)
        k = (min(k, h), min(k, w))
        # Rows are the output planes in storage order (N, V, T), with the persons side by side.
        plane = (arange(n)[:, None, None] * s_n + arange(v)[:, None] * s_c + arange(t) * s_t).reshape(-1)
        xy = kp.permute(0, 3, 2, 1, 4).reshape(-1, m, 2)  # (N*V*T, M, 2)
        value = value.permute(0, 3, 2, 1).reshape(-1, m)  # (N*V*T, M)
        x0, x1 = _bounds(xy[..., 0], xy[..., 0], sigma, w)
        y0, y1 = _bounds(xy[..., 1], xy[..., 1], sigma, h)
        patches = partial(_point_patches, sigma=sigma, k=k)
        _draw(flat, strides, plane, size, k, (x0, x1, y0, y1), value, (xy,), patches)
        return
    kp, value = kp.permute(0, 2, 1, 3, 4), value.permute(0, 2, 1, 3)  # (N, T, M, V, 2), (N, T, M, V)
    plane = (arange(n)[:, None] * s_n + arange(t) * s_t).reshape(-1)  # (N*T,) planes of channel 0
    a = torch.tensor([pair[0] for pair in limbs], device=dev)
    b = torch.tensor([pair[1] for pair in limbs], device=dev)
    start, end = kp[..., a, :], kp[..., b, :]  # (N, T, M, L, 2)
    v_start, v_end = value[..., a], value[..., b]  # (N, T, M, L)
    x0, x1, y0, y1, short = _limb_bounds(start, end, sigma, size)  # (N, T, M, L) each
    # A short limb is drawn as its start joint, with the start's value (if both values pass EPS).
    value = torch.where(short, v_start, torch.minimum(v_start, v_end)) * (torch.minimum(v_start, v_end) > 0)
    # Each limb channel gets a window as large as its largest drawn box in the batch: limb lengths
    # differ a lot between channels (eye-ear vs thigh), so one window for all would mostly hold zeros.
    drawn = (value > 0) & (x1 > x0) & (y1 > y0)
    ky = torch.where(drawn, y1 - y0, 0).amax(dim=(0, 1, 2))  # (L,)
    kx = torch.where(drawn, x1 - x0, 0).amax(dim=(0, 1, 2))
    for c, (wy, wx) in enumerate(torch.stack([ky, kx], dim=1).tolist()):  # one host sync per batch
        if wy == 0 or wx == 0:  # nothing of this limb is drawn
            continue
        per_row = [x[:, :, :, c].flatten(0, 1) for x in (x0, x1, y0, y1, value, start, end, short)]  # (N*T, M, ...)
        patches = partial(_limb_patches, sigma=sigma, k=(wy, wx))
        _draw(flat, strides, plane + c * s_c, size, (wy, wx), per_row[:4], per_row[4], per_row[5:], patches)


def _values(score: Tensor, use_score: bool) -> Tensor:
    """Peak value per joint: the score (or 1), set to 0 below EPS so that nothing is drawn."""
    value = score if use_score else torch.ones_like(score)
    return torch.where(value >= EPS, value, 0)


def _output(out: Tensor | None, shape: tuple[int, ...], device: torch.device) -> Tensor:
    """A zeroed float32 volume: `out` when given (reused), else a new one."""
    if out is None:
        return torch.zeros(shape, dtype=torch.float32, device=device)
    if tuple(out.shape) != shape or out.dtype != torch.float32 or out.device != device:
        raise ValueError(f"out must be float32 {shape} on {device}; got {out.dtype} {tuple(out.shape)} on {out.device}")
    if not out.is_contiguous():
        raise ValueError("out must be contiguous")
    return out.zero_()


def render_joint_heatmaps(
    kp: Tensor,
    score: Tensor,
    size: tuple[int, int],
    sigma: float = 0.6,
    use_score: bool = True,
    *,
    out: Tensor | None = None,
) -> Tensor:
    """One Gaussian heatmap channel per joint, max over persons (pyskl `with_kp=True`).

    kp: (N, M, T, V, 2) pixel x, y; score: (N, M, T, V); size: (H, W) in pixels; sigma in pixels.
    use_score: scale each Gaussian by the joint's score (else peak 1 for every joint, including
    missing ones at (0, 0), as upstream). out: optional contiguous float32 (N, V, T, H, W) buffer to
    reuse (it is zeroed first, and returned); reusing one avoids the page faults of a fresh
    allocation on CPU. A leading slice `buf[:N]` of a larger buffer is contiguous, so one buffer
    serves a smaller last batch too. The result aliases `out`: the next call overwrites it.
    Returns (N, V, T, H, W) float32 on kp.device.
    """
    kp, score = _check_inputs(kp, score)
    n, _, t, v, _ = kp.shape
    vol = _output(out, (n, v, t, *size), kp.device)
    _render_into(vol.view(-1), vol.stride(), kp, _values(score, use_score), size, sigma, None)
    return vol


def render_limb_heatmaps(
    kp: Tensor,
    score: Tensor,
    size: tuple[int, int],
    limbs: Sequence[tuple[int, int]],
    sigma: float = 0.6,
    use_score: bool = True,
    *,
    out: Tensor | None = None,
) -> Tensor:
    """One heatmap channel per limb (joint pair), max over persons (pyskl `with_limb=True`).

    The value at a pixel is exp(-d^2 / 2 sigma^2) * min(score_a, score_b), d its distance to the
    segment; limbs shorter than 1 px are drawn as the start joint with its own score.
    kp, score, size, sigma, use_score, out: as `render_joint_heatmaps` (out is (N, L, T, H, W)).
    Returns (N, L, T, H, W) float32 on kp.device, L = len(limbs).
    """
    kp, score = _check_inputs(kp, score)
    n, _, t, _, _ = kp.shape
    vol = _output(out, (n, len(limbs), t, *size), kp.device)
    _render_into(vol.view(-1), vol.stride(), kp, _values(score, use_score), size, sigma, limbs)
    return vol


def render_grayscale(
    kp: Tensor, score: Tensor, size: tuple[int, int], sigma: float = 0.6, use_score: bool = True
) -> Tensor:
    """All joint heatmaps of a frame summed into one channel: (N, 1, T, H, W) float32.

    The sum runs over the per-joint volume of `render_joint_heatmaps` (already max over persons), so
    values can exceed 1 where joints overlap.
    """
    return render_joint_heatmaps(kp, score, size, sigma, use_score).sum(dim=1, keepdim=True)


def render_skeleton(kp: Tensor, score: Tensor, size: tuple[int, int]) -> Tensor:
    """Coordinates as input channels: (N, M*V*2, T, 1, 1) float32.

    Channel order is (M, V, xy) flattened: channel (m * V + v) * 2 + 0 is x of joint v of person m,
    + 1 its y. x and y are mapped from [0, W] and [0, H] pixels to [-1, 1] (2 x / W - 1), so a
    horizontal flip (x -> W - x) negates x. Missing joints (score 0, or both coordinates 0) are 0.
    """
    kp, score = _check_inputs(kp, score)
    n, m, t, v, _ = kp.shape
    h, w = size
    scale = torch.tensor([2 / w, 2 / h], dtype=torch.float32, device=kp.device)
    coords = kp * scale - 1  # (N, M, T, V, 2)
    missing = (score <= 0) | (kp == 0).all(dim=-1)  # (N, M, T, V)
    coords = coords.masked_fill(missing[..., None], 0)
    return coords.permute(0, 1, 3, 4, 2).reshape(n, m * v * 2, t, 1, 1)  # (N, M*V*2, T, 1, 1)


def flip_keypoints(kp: Tensor, score: Tensor, width: int, flip_order: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Horizontal flip of keypoints, as pyskl's `Flip`: x -> width - x where x != 0, then joints swapped.

    kp: (..., V, 2) pixels; score: (..., V); flip_order: joint permutation (`Layout.flip_order()`).
    Returns new tensors (the inputs are not modified). x == 0 marks a missing joint and stays 0.
    """
    x = kp[..., 0]
    x = torch.where(x != 0, width - x, x)
    flipped = torch.stack([x, kp[..., 1]], dim=-1)
    order = torch.as_tensor(list(flip_order), device=kp.device)
    return flipped[..., order, :], score[..., order]


def limb_flip_order(layout: Layout) -> list[int]:
    """Limb permutation of a horizontal flip: limb (a, b) goes to the limb joining the flipped a, b.

    For COCO17 this is pyskl's left_limb/right_limb pairing.
    """
    joint = layout.flip_order()
    where = {frozenset(pair): i for i, pair in enumerate(layout.limbs)}
    order = []
    for a, b in layout.limbs:
        pair = frozenset((joint[a], joint[b]))
        if pair not in where:
            raise ValueError(f"layout {layout.name}: the mirror of limb {(a, b)} is not a limb")
        order.append(where[pair])
    return order


def _canonical(input_format: str) -> str:
    name = _FORMATS.get(input_format.lower())
    if name is None:
        valid = "Heatmap (aliases NCTHW_Heatmap, joint), Limb, Grayscale, Skeleton"
        raise ValueError(f"unknown input format {input_format!r}; valid (case-insensitive): {valid}")
    return name


def input_channels(input_format: str, num_persons: int, layout: Layout = COCO17) -> int:
    """Channel count C of `render(input_format, ...)` for `num_persons` persons of `layout`."""
    name = _canonical(input_format)
    if name == "heatmap":
        return layout.num_joints
    if name == "limb":
        return len(layout.limbs)
    if name == "grayscale":
        return 1
    return num_persons * layout.num_joints * 2


def render(
    input_format: str,
    kp: Tensor,
    score: Tensor,
    size: tuple[int, int],
    *,
    sigma: float = 0.6,
    use_score: bool = True,
    layout: Layout = COCO17,
    double: bool = False,
    out: Tensor | None = None,
) -> Tensor:
    """Render the backbone input named `input_format` for a batch.

    input_format: 'Heatmap' (aliases 'NCTHW_Heatmap', 'joint'), 'Limb', 'Grayscale' or 'Skeleton',
    case-insensitive. kp (N, M, T, V, 2) pixels, score (N, M, T, V), size (H, W).
    double: test-time flip as pyskl's `GeneratePoseTarget(double=True)`: each sample is followed by its
    mirrored view, [x0, flip(x0), x1, flip(x1), ...], so `.view(N, 2, ...)` groups a sample's views.
    For heatmaps the mirror is the rendered volume flipped along W with left/right channels swapped
    (as upstream; this is not the same as rendering flipped keypoints, whose windows truncate
    differently); for Skeleton it is `flip_keypoints` with the frame width.
    out: optional contiguous float32 buffer of the output shape to reuse (heatmap and limb formats).
    Returns (N or 2N, C, T, H, W) float32 on kp.device ((..., 1, 1) for Skeleton), C from
    `input_channels`.
    """
    name = _canonical(input_format)
    if kp.dim() != 5 or kp.shape[-1] != 2:
        raise ValueError(f"kp must be (N, M, T, V, 2) pixel x, y; got shape {tuple(kp.shape)}")
    if kp.shape[3] != layout.num_joints:
        raise ValueError(f"kp has {kp.shape[3]} joints but layout {layout.name} has {layout.num_joints}")
    if out is not None and name not in ("heatmap", "limb"):
        raise ValueError(f"out= is only supported for Heatmap and Limb, not {input_format!r}")
    if name == "skeleton":
        x = render_skeleton(kp, score, size)
        if not double:
            return x
        flipped = render_skeleton(*flip_keypoints(kp, score, size[1], layout.flip_order()), size)
        return torch.stack([x, flipped], dim=1).flatten(0, 1)  # (2N, C, T, 1, 1)
    if name == "grayscale":
        x = render_grayscale(kp, score, size, sigma, use_score)
        if not double:
            return x
        return torch.stack([x, x.flip(-1)], dim=1).flatten(0, 1)  # (2N, 1, T, H, W)

    limbs = None if name == "heatmap" else layout.limbs
    if not double:
        if limbs is None:
            return render_joint_heatmaps(kp, score, size, sigma, use_score, out=out)
        return render_limb_heatmaps(kp, score, size, limbs, sigma, use_score, out=out)
    kp, score = _check_inputs(kp, score)
    n, _, t, v, _ = kp.shape
    c = v if limbs is None else len(limbs)
    vol = _output(out, (2 * n, c, t, *size), kp.device)
    pairs = vol.view(n, 2, c, t, *size)  # (N, 2, C, T, H, W)
    # Render the originals straight into the even samples, then mirror them into the odd ones.
    _render_into(vol.view(-1), pairs[:, 0].stride(), kp, _values(score, use_score), size, sigma, limbs)
    order = layout.flip_order() if limbs is None else limb_flip_order(layout)
    mirror = pairs[:, 0].index_select(1, torch.as_tensor(order, device=kp.device)).flip(-1)
    pairs[:, 1].copy_(mirror)
    return vol
