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
joints (value 0) are skipped. Limbs are drawn on their boxes (of very different shapes), with
windows of a few shapes chosen per batch, all limb channels at once (`_render_limbs`). On a CPU the
cost is then mostly zeroing the volume and the cache misses of the scattered writes: pass a reused
`out` buffer, since a fresh multi-hundred-MB allocation costs more in page faults than the rendering
itself.

Precision follows upstream under NumPy 1.x (see bench/render_loop.py, the loop reference): window
bounds are `int()`-truncated float64 values, the squared limb length is float64 (rounded to float32
where it meets the pixels), everything else is float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from torch import Tensor

from datasets.batch.streams import joint_stream, parents
from datasets.store.layouts import COCO17, Layout

EPS = 1e-3  # pyskl skips joints and limbs whose value (score, or 1 without scores) is below this
_CHUNK = 1 << 20  # window pixels evaluated per step; bounds the temporaries (4 MB each)
_LIMB_CHUNK = 1 << 17  # the same for limbs (0.5 MB temporaries; larger steps are no faster on a CPU)
_BUCKET_COST = 32768  # window pixels one more limb window shape must save to pay for its ~30 small ops
_MAX_CANDIDATES = 256  # limb box shapes searched as they are; more are rounded (see `_window_shapes`)
_MAX_SHAPES = 32  # limb window shapes per batch at most
_EXP_FLOOR = -87.0  # exp() of less is subnormal or 0 in float32 (and ~20x slower in torch's CPU kernel)
_EXP_ZERO = 2e-38  # > exp(_EXP_FLOOR): limb Gaussians up to this are set to 0 (upstream: < 2e-38)

# Canonical input-format names and their accepted aliases (matched case-insensitively).
_FORMATS = {
    "heatmap": "heatmap",
    "ncthw_heatmap": "heatmap",
    "joint": "heatmap",
    "limb": "limb",
    "grayscale": "grayscale",
    "skeleton": "skeleton",
}


def _check_inputs(kp: Tensor, score: Tensor, channels: tuple[int, ...] = (2,)) -> tuple[Tensor, Tensor]:
    if kp.dim() != 5 or kp.shape[-1] not in channels:
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


def _limb_patches(u: Tensor, v: Tensor, d2_u: Tensor, d2_v: Tensor, row: Tensor, *, sigma: float) -> Tensor:
    """Windows of limb Gaussians, (ku, kv, R) float32, with upstream's float32 operations and roundings.

    A window's axes are u and v, (y, x) or (x, y) per row. u: (ku, 1, R) and v: (1, kv, R) pixel
    coordinates; d2_u: (2, ku, 1, R) squared u distances to the start and the end joint, d2_v:
    (2, 1, kv, R) the same along v; row: (9, R) per-row start u, end u, start v, end v,
    end u - start u, end v - start v, squared length, twice that, and peak value.

    Upstream's formula, with the same float32 roundings, but without its two `where`s (several times
    slower than arithmetic on a CPU): clamping the foot parameter to [0, 1] gives the start joint's
    distance exactly where upstream takes it (start + 0 * (end - start) is the start), and
    lerp(d2_line, d2_end, floor(coeff)) takes d2_end exactly where coeff >= 1 (lerp with weight 0
    or 1 returns an end point exactly, on every device). So the squared distances are upstream's bit
    for bit; only exp() may differ in the last bit between NumPy and torch.
    """
    su, _, sv, _, du, dv, d2_ab, d2_ab2, peak = row
    d2_start = d2_u[0] + d2_v[0]  # (ku, kv, R)
    d2_end = d2_u[1] + d2_v[1]
    # Foot of the perpendicular along the segment: 0 at the start joint, 1 at the end joint.
    # (d2_start - d2_end + d2_ab) / 2 / d2_ab; dividing by 2 * d2_ab is the same float32 result.
    coeff = torch.sub(d2_start, d2_end).add_(d2_ab).div_(d2_ab2).clamp_(0, 1)
    at_end = torch.floor(coeff)  # 1 where upstream takes d2_end, else 0
    d2_line = torch.mul(coeff, du).add_(su)  # foot u: start u + coeff * (end u - start u)
    d2_line = torch.sub(u, d2_line, out=d2_line).square_()
    foot_v = torch.mul(coeff, dv).add_(sv)
    d2_line.add_(torch.sub(v, foot_v, out=foot_v).square_())
    d2 = d2_line.lerp_(d2_end, at_end)
    # Upstream's exp(-d2 / 2 / sigma^2) * value: -d2 / 2 / s is d2 / (-2 s) in float32 too. exp() of
    # anything below _EXP_FLOOR (a subnormal or 0 result, < 2e-38) takes a ~20x slower path in torch's
    # CPU kernel, so it is clamped there and those values are set to exactly 0 after.
    gauss = d2.div_(-2 * sigma**2).clamp_min_(_EXP_FLOOR).exp_()
    return torch.nn.functional.threshold_(gauss, _EXP_ZERO, 0.0).mul_(peak)


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


def _window_shapes(hist: np.ndarray, cost: float) -> tuple[np.ndarray, np.ndarray]:
    """A few window shapes for boxes of many shapes: a greedy cover, on the host.

    hist: (A, B) counts of the boxes whose long side is a and short side b pixels. Returns the
    shapes (S, 2) int64 (long, short sides) and, for every (a, b), the index of the smallest shape
    that covers it, (A, B) int64 (0 where hist is 0).

    Every window is padded to its shape, and every shape costs a fixed number of small tensor
    operations, worth about `cost` window pixels. The first shape covers every box; then the shape
    that saves the most padded pixels is added while it saves more than `cost` (at most
    _MAX_SHAPES). The candidates are the box shapes present; when there are many (boxes of every
    size, or frames much larger than 64 px), the search runs on them rounded up to 3 significant
    bits, which bounds its cost.
    """
    cells = np.argwhere(hist > 0)  # (K, 2) box shapes present
    count = hist[cells[:, 0], cells[:, 1]].astype(np.float32)  # (K,); float32 is 2x faster and enough
    if len(cells) > _MAX_CANDIDATES:
        shift = np.maximum(np.log2(cells).astype(np.int64) - 2, 0)  # sides are >= 1
        rounded, where = np.unique(-(-cells >> shift) << shift, axis=0, return_inverse=True)
        count = np.bincount(where.reshape(-1), weights=count).astype(np.float32)
    else:
        rounded = cells
    candidates = np.concatenate([rounded.max(axis=0)[None], rounded])  # (C, 2), the first covers all
    covers = (candidates[:, None] >= rounded[None]).all(axis=2)  # (C, K')
    area = np.where(covers, candidates.prod(axis=1)[:, None], np.inf).astype(np.float32)  # (C, K')
    chosen, best = [0], area[0]  # best: (K',) window pixels per box of each shape, so far
    while len(chosen) < _MAX_SHAPES:
        saving = np.maximum(best - area, 0) @ count  # (C,) pixels saved by adding each candidate
        i = int(saving.argmax())
        if saving[i] <= cost:
            break
        chosen.append(i)
        best = np.minimum(best, area[i])
    shapes = candidates[chosen]  # (S, 2)
    covers = (shapes[:, None] >= cells[None]).all(axis=2)  # (S, K)
    table = np.zeros(hist.shape, dtype=np.int64)
    table[cells[:, 0], cells[:, 1]] = np.where(covers, shapes.prod(axis=1)[:, None], np.inf).argmin(axis=0)
    return shapes, table


def _limb_rows(
    kp: Tensor, value: Tensor, limbs: Sequence[tuple[int, int]], sigma: float, size: tuple[int, int]
) -> tuple[Tensor, Tensor] | None:
    """The limbs to draw ("rows"), in the storage order of their output planes (N, L, T, M).

    kp: (N, M, T, V, 2) float32; value: (N, M, T, V), 0 where a joint is skipped. Returns None when
    nothing is drawn, else rows (R,) int64, the drawn limbs' indices into the flattened (N, L, T, M)
    grid, and their data (10, R) float32, as upstream computes it:
        sx, sy, ex, ey: start and end joint; a limb shorter than 1 px is drawn as its start joint
            alone (upstream's short-limb case), so its end is moved onto its start;
        d2_ab: squared length, 1 for a short limb (which then gives exactly the start distance);
        peak: peak value, min(v_start, v_end), or v_start for a short limb (0: not drawn);
        x0, x1, y0, y1: drawn pixel ranges [x0, x1) and [y0, y1) (small integers, exact in float32).
    Selections use lerp(a, b, mask) rather than where(): lerp with weight 0 or 1 returns a or b
    exactly, and where() is ~30x slower on a CPU.
    """
    kp = kp.permute(4, 0, 3, 2, 1).contiguous()  # (2, N, V, T, M): x, y
    value = value.permute(0, 3, 2, 1).contiguous()  # (N, V, T, M)
    a = torch.tensor([pair[0] for pair in limbs], device=kp.device)
    b = torch.tensor([pair[1] for pair in limbs], device=kp.device)
    s, e = kp.index_select(2, a).view(2, -1), kp.index_select(2, b).view(2, -1)  # (2, N*L*T*M) each: x, y
    v = torch.stack([value.index_select(1, a).view(-1), value.index_select(1, b).view(-1)])  # (2, N*L*T*M)
    # pyskl squares the float32 differences as scalars, i.e. in float64 under NumPy 1.x.
    d2_ab = (s[0] - e[0]).double() ** 2 + (s[1] - e[1]).double() ** 2
    short = (d2_ab < 1).float()
    # Box: the segment's bounding box, or the start joint's window for a short limb. That window lies
    # inside the box, which upstream checks first (an empty box draws nothing), so taking it directly
    # is equivalent.
    lo = torch.lerp(torch.minimum(s, e), s, short)  # (2, N*L*T*M)
    hi = torch.lerp(torch.maximum(s, e), s, short)
    x0, x1 = _bounds(lo[0], hi[0], sigma, size[1])
    y0, y1 = _bounds(lo[1], hi[1], sigma, size[0])
    v_min = torch.minimum(v[0], v[1])
    peak = torch.lerp(v_min, v[0], short).mul_(v_min > 0)
    rows = ((peak > 0) & (x1 > x0) & (y1 > y0)).nonzero().squeeze(1)  # (R,), one host sync
    if rows.numel() == 0:
        return None
    e = torch.lerp(e, s, short)  # a short limb's end on its start
    d2_ab = d2_ab.float().clamp_min_(1)  # 1 for a short limb, the others are >= 1 already
    data = torch.stack([s[0], s[1], e[0], e[1], d2_ab, peak, x0.float(), x1.float(), y0.float(), y1.float()])
    return rows, data.index_select(1, rows)


def _crowded(plane: Tensor, x0: Tensor, x1: Tensor, y0: Tensor, y1: Tensor, m: int) -> Tensor:
    """(R,) bool: rows whose box overlaps another person's box in the same plane (both are maxed in).
    Rows of one plane are adjacent (persons are the fastest axis), so each is compared with the d-th
    row before it, d < m persons."""
    crowded = torch.zeros_like(plane, dtype=torch.bool)
    for d in range(1, m):
        overlap = (plane[d:] == plane[:-d]) & (x0[d:] < x1[:-d]) & (x0[:-d] < x1[d:])
        overlap &= (y0[d:] < y1[:-d]) & (y0[:-d] < y1[d:])
        crowded[d:] |= overlap
        crowded[:-d] |= overlap
    return crowded


def _draw_limb_windows(flat: Tensor, shapes: list, counts: list[int], row: Tensor, plane: Tensor, sigma: float) -> None:
    """Evaluate and scatter the windows of every shape group (see `_render_limbs`).

    shapes: [(ku, kv)] window shapes; counts: free and crowded rows of each shape, in that order;
    row: (15, R) per-row inputs sorted by (shape, crowded); plane: (R,) storage offset of each row's plane.
    """
    arange = partial(torch.arange, device=row.device)
    pos = 0
    for g, (ku, kv) in enumerate(shapes):
        n_free, n_crowded = counts[2 * g], counts[2 * g + 1]
        cols = slice(pos, pos + n_free + n_crowded)
        pos = cols.stop
        if cols.start == cols.stop:
            continue
        f = row[:, cols]  # (15, R_g)
        u_first, u_last, v_first, v_last, stride_u, stride_v = f[9:]  # (R_g,) each
        # Pixel coordinates, clamped onto the box: (ku, R_g), (kv, R_g).
        u = torch.minimum(arange(ku, dtype=torch.float32)[:, None] + u_first, u_last)
        v = torch.minimum(arange(kv, dtype=torch.float32)[:, None] + v_first, v_last)
        # Storage offsets of the window's pixels along u (with the plane's) and along v; float64 keeps
        # the products exact for any frame size.
        at_u = torch.mul(u.double(), stride_u).long().add_(plane[cols])[:, None]  # (ku, 1, R_g)
        at_v = torch.mul(v.double(), stride_v).long()[None]  # (1, kv, R_g)
        d2_u = (u - f[0:2, None]).square_()[:, :, None]  # (2, ku, 1, R_g): to start u, end u
        d2_v = (v - f[2:4, None]).square_()[:, None]  # (2, 1, kv, R_g)
        u, v = u[:, None], v[None]  # (ku, 1, R_g), (1, kv, R_g)
        step = max(1, _LIMB_CHUNK // (ku * kv))
        for part, assign in ((range(0, n_free), True), (range(n_free, n_free + n_crowded), False)):
            for r0 in range(part.start, part.stop, step):
                r = slice(r0, min(r0 + step, part.stop))
                patch = _limb_patches(u[..., r], v[..., r], d2_u[..., r], d2_v[..., r], f[:9, r], sigma=sigma)
                index = (at_u[..., r] + at_v[..., r]).view(-1)  # (ku*kv*R,)
                if assign:
                    flat.scatter_(0, index, patch.view(-1))
                else:
                    flat.scatter_reduce_(0, index, patch.view(-1), "amax")


def _limb_planes(rows: Tensor, strides: Sequence[int], grid: tuple[int, int, int, int]) -> Tensor:
    """Storage offset of the output plane of every row, (R,) int64.

    rows: (R,) indices into the flattened grid of shape `grid` = (N, L, T, M) (`_limb_rows`), whose M
    persons of one plane share its offset; strides: element strides of the volume (N, L, T, H, W).
    """
    n, num_limbs, t, m = grid
    s_n, s_c, s_t = strides[:3]
    arange = partial(torch.arange, device=rows.device)
    plane = (arange(n)[:, None, None] * s_n + arange(num_limbs)[:, None] * s_c + arange(t) * s_t).view(-1, 1)
    return plane.expand(-1, m).reshape(-1).index_select(0, rows)  # (N*L*T, 1) -> (N*L*T*M,) -> (R,)


def _limb_window_shapes(long: Tensor, short: Tensor, size: tuple[int, int]) -> tuple[np.ndarray, Tensor]:
    """Window shapes for this batch's limb boxes, from the histogram of their shapes (one host sync).

    long, short: (R,) float32 whole-pixel sides of every row's box (u1 - u0, v1 - v0); size: (H, W).
    Returns the shapes (S, 2) int64 (long, short sides; `_window_shapes`) and the index (R,) int64 of
    the smallest one that covers each row's box.
    """
    sides = min(size) + 1  # a short side is <= min(h, w)
    cell = (long * sides + short).long()  # (R,)
    hist = torch.bincount(cell).cpu().numpy()
    shapes, table = _window_shapes(np.pad(hist, (0, -len(hist) % sides)).reshape(-1, sides), _BUCKET_COST)
    return shapes, torch.from_numpy(table.reshape(-1)).to(long.device).index_select(0, cell)  # (S, 2), (R,)


def _render_limbs(
    flat: Tensor,
    strides: Sequence[int],
    kp: Tensor,
    value: Tensor,
    size: tuple[int, int],
    sigma: float,
    limbs: Sequence[tuple[int, int]],
) -> None:
    """Max the limb Gaussians of every person into a zeroed volume; arguments as `_render_into`.

    Limb boxes vary a lot in shape (an eye-ear limb spans a few pixels, a thigh a tenth of the
    frame, standing or lying), and one window for all would hold mostly padding. So:
    - every drawn limb ("row") gets a window of one of a few shapes chosen for this batch
      (`_window_shapes`), at least as large as its box; a box wider than tall is evaluated
      transposed (window axes u, v = x, y instead of y, x: upstream's arithmetic is symmetric in x
      and y), so one shape serves standing and lying limbs alike;
    - a window starts at its box's corner, and its pixels beyond the box are clamped onto the box's
      last row or column: they compute that pixel's value again and write it again, so a window
      writes exactly its box (like upstream) and touches no other memory;
    - rows are sorted by window shape; each shape is evaluated in chunks of about _LIMB_CHUNK
      window pixels, laid out (ku, kv, rows) so that elementwise operations run along the long rows
      axis, and scattered into the volume. Boxes that overlap no other person's box in their plane
      (most) are assigned with `scatter_`; those that do are maxed in with `scatter_reduce_(amax)`,
      which also handles their overlaps with each other (patches >= 0, the volume is zeroed, and no
      assigned box touches their pixels). Repeated pixels carry equal values, so either is exact,
      in any order, on any device.
    """
    limb_rows = _limb_rows(kp, value, limbs, sigma, size)
    if limb_rows is None:
        return
    rows, (sx, sy, ex, ey, d2_ab, peak, x0, x1, y0, y1) = limb_rows
    n, m, t = kp.shape[:3]
    s_h, s_w = strides[3:]
    plane = _limb_planes(rows, strides, (n, len(limbs), t, m))  # (R,) offset of each row's plane

    crowded = _crowded(plane, x0, x1, y0, y1, m)

    # Orientation: u is the box's long side, v its short side. Small integers are exact in float32,
    # and selections are lerp()s (see `_limb_rows`).
    wide = (x1 - x0 > y1 - y0).float()  # 1: u = x, v = y; 0: u = y, v = x
    u0, u1, v0, v1 = torch.lerp(torch.stack([y0, y1, x0, x1]), torch.stack([x0, x1, y0, y1]), wide)
    shapes, shape = _limb_window_shapes(u1 - u0, v1 - v0, size)

    # Per-row inputs of `_limb_patches` and of the window pixels, sorted by (window shape, crowded).
    key = shape * 2 + crowded
    order = torch.argsort(key, stable=True)
    counts = torch.bincount(key, minlength=2 * len(shapes)).tolist()  # one host sync
    s_u, s_v, e_u, e_v = torch.lerp(torch.stack([sy, sx, ey, ex]), torch.stack([sx, sy, ex, ey]), wide)
    stride_u = s_h + (s_w - s_h) * wide
    stride_v = s_w + (s_h - s_w) * wide
    row = [s_u, e_u, s_v, e_v, e_u - s_u, e_v - s_v, d2_ab, 2 * d2_ab, peak]  # as `_limb_patches` reads them
    row += [u0, u1 - 1, v0, v1 - 1, stride_u, stride_v]  # window pixels
    row = torch.stack(row).index_select(1, order)  # (15, R)
    plane = plane.index_select(0, order)

    _draw_limb_windows(flat, shapes.tolist(), counts, row, plane, sigma)


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
    _render_limbs(flat, strides, kp, value, size, sigma, limbs)


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


def render_skeleton(
    kp: Tensor,
    score: Tensor,
    size: tuple[int, int],
    stream: str = "joint",
    layout: Layout = COCO17,
    visibility: bool = False,
) -> Tensor:
    """Coordinates as input channels: (N, M*V*C, T, 1, 1) float32, C = 2, or 3 with a depth channel.

    Channel order is (M, V, C) flattened: channel (m * V + v) * C + 0 is x of joint v of person m,
    + 1 its y (+ 2 its depth). x and y are mapped from [0, W] and [0, H] pixels to [-1, 1] (2 x / W - 1), so a
    horizontal flip (x -> W - x) negates x; a depth channel (3D clips, datasets/pipeline/clips.project_3d) is
    normalised already and passes unchanged. Missing joints (score 0, or all coordinates 0) are 0.
    stream: 'joint', or the bones / motions of the mapped coordinates with the layout's parents
    (datasets/batch/streams.py; 0 wherever a joint they need is missing). visibility: one more channel per
    joint, 1 where it is seen and 0 where it is missing (C + 1 channels per joint).
    """
    kp, score = _check_inputs(kp, score, channels=(2, 3))
    n, m, t, v, c = kp.shape
    h, w = size
    scale = torch.tensor([2 / w, 2 / h, 1.0][:c], dtype=torch.float32, device=kp.device)
    shift = torch.tensor([1.0, 1.0, 0.0][:c], dtype=torch.float32, device=kp.device)
    coords = kp * scale - shift  # (N, M, T, V, C)
    missing = (score <= 0) | (kp == 0).all(dim=-1)  # (N, M, T, V)
    coords = coords.masked_fill(missing[..., None], 0)
    if stream != "joint":
        coords = joint_stream(coords, stream, parents(layout), missing)  # (N, M, T, V, C)
    if visibility:
        coords = torch.cat([coords, (~missing)[..., None].float()], dim=-1)  # (N, M, T, V, C + 1)
        c += 1
    return coords.permute(0, 1, 3, 4, 2).reshape(n, m * v * c, t, 1, 1)  # (N, M*V*C, T, 1, 1)


def flip_keypoints(kp: Tensor, score: Tensor, width: int, flip_order: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Horizontal flip of keypoints, as pyskl's `Flip`: x -> width - x where x != 0, then joints swapped.

    kp: (..., V, 2) pixels; score: (..., V); flip_order: joint permutation (`Layout.flip_order()`).
    Returns new tensors (the inputs are not modified). x == 0 marks a missing joint and stays 0.
    """
    x = kp[..., 0]
    x = torch.where(x != 0, width - x, x)
    flipped = torch.cat([x[..., None], kp[..., 1:]], dim=-1)  # a depth channel stays
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


def input_channels(
    input_format: str, num_persons: int, layout: Layout = COCO17, depth: bool = False, visibility: bool = False
) -> int:
    """Channel count C of `render(input_format, ...)` for `num_persons` persons of `layout` (Skeleton: with
    a depth channel per joint when `depth`, a seen / missing one when `visibility`)."""
    name = _canonical(input_format)
    if name == "heatmap":
        return layout.num_joints
    if name == "limb":
        return len(layout.limbs)
    if name == "grayscale":
        return 1
    return num_persons * layout.num_joints * ((3 if depth else 2) + int(visibility))


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
    stream: str = "joint",
    visibility: bool = False,
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
    stream: 'joint', or for Skeleton the bone / motion stream of datasets/batch/streams.py (of the flipped
    keypoints for the mirrored view). visibility: Skeleton's seen / missing channel per joint.
    Returns (N or 2N, C, T, H, W) float32 on kp.device ((..., 1, 1) for Skeleton), C from
    `input_channels`.
    """
    name = _canonical(input_format)
    _check_request(input_format, name, kp, layout, out, stream)
    if name == "skeleton":
        x = render_skeleton(kp, score, size, stream, layout, visibility)
        if not double:
            return x
        flipped = render_skeleton(*flip_keypoints(kp, score, size[1], layout.flip_order()), size, stream, layout,
                                  visibility)  # fmt: skip
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
    return _render_doubled(kp, score, size, sigma, use_score, layout, limbs, out)


def _check_request(input_format: str, name: str, kp: Tensor, layout: Layout, out: Tensor | None, stream: str) -> None:
    """Fail with a one-line ValueError when `render`'s arguments do not fit together.

    name: the canonical format of `input_format`; kp: (N, M, T, V, 2) with V the layout's joint count;
    out only for heatmap and limb volumes, a stream other than 'joint' only for Skeleton.
    """
    channels = (2, 3) if name == "skeleton" else (2,)  # Skeleton also takes a depth channel
    if kp.dim() != 5 or kp.shape[-1] not in channels:
        raise ValueError(f"kp must be (N, M, T, V, 2) pixel x, y; got shape {tuple(kp.shape)}")
    if kp.shape[3] != layout.num_joints:
        raise ValueError(f"kp has {kp.shape[3]} joints but layout {layout.name} has {layout.num_joints}")
    if out is not None and name not in ("heatmap", "limb"):
        raise ValueError(f"out= is only supported for Heatmap and Limb, not {input_format!r}")
    if stream != "joint" and name != "skeleton":
        raise ValueError(f"stream {stream!r} is for coordinate inputs (Skeleton), not {input_format!r}")


def _render_doubled(
    kp: Tensor,
    score: Tensor,
    size: tuple[int, int],
    sigma: float,
    use_score: bool,
    layout: Layout,
    limbs: Sequence[tuple[int, int]] | None,
    out: Tensor | None,
) -> Tensor:
    """Joint (limbs None) or limb heatmaps of every sample followed by its mirror, as `render(double=True)`.

    kp: (N, M, T, V, 2) pixels; score: (N, M, T, V); out: optional float32 (2N, C, T, H, W) buffer.
    Returns (2N, C, T, H, W) float32 on kp.device: [x0, flip(x0), x1, flip(x1), ...], where the mirror
    is the rendered volume flipped along W with the layout's left/right joints or limbs exchanged.
    """
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
