"""Keypoint transforms with pyskl's semantics, run in the Dataset workers (numpy only).

Every transform reads and writes a `results` dict as pyskl's pipelines do:
    keypoint        float32 (M, T, V, 2): x, y in pixels of the current frame; (0, 0) marks a missing joint
    keypoint_score  float32 (M, T, V): detection confidence in [0, 1]
    img_shape       (h, w) ints: the current frame size in pixels
    total_frames    int: frame count of the stored clip
    frame_inds      int64 (num_clips * clip_len,): frames picked by `UniformSampleFrames`
    test_mode       bool: deterministic sampling when true

A transform is called as `t(results, rng)` with an explicit `np.random.Generator` and returns the same dict.
Input arrays are never modified in place (the Dataset may hand in views of its shared store).

The reference is pyskl at commit 3f6795f (`pyskl/datasets/pipelines/{sampling,pose_related,augmentations}.py`)
with mmcv 1.7 and NumPy 1.x; `tests/test_transforms.py` checks the test pipeline against its outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from datasets.store.layouts import COCO17, Layout

Results = dict[str, Any]


def _need_rng(rng: np.random.Generator | None, name: str) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"{name} is random in training mode: pass an np.random.Generator as `rng`")
    return rng


def _pair(x: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"expected a number or a pair, got {x!r}")
        return (x[0], x[1])
    return (x, x)


class UniformSampleFrames:
    """Split the clip into `clip_len` equal segments and pick one frame in each (pyskl semantics).

    Reads `total_frames`, `test_mode` (default False), `start_index` (default 0).
    Writes `frame_inds` int64 (num_clips * clip_len,) clip after clip, taken modulo `total_frames`
    (short clips loop), plus `clip_len` and `num_clips`.

    Training draws from `rng`. Test mode is deterministic: pyskl reseeds NumPy's global RNG with `seed`
    at every call; we replay the same legacy stream with a local `np.random.RandomState(seed)`, so the
    indices are bit-identical to pyskl's without touching global state.
    `p_interval` (a, b) first keeps a random sub-segment of ratio U(a, b) of the clip (1 = whole clip).
    """

    def __init__(
        self, clip_len: int, num_clips: int = 1, p_interval: float | Sequence[float] = 1, seed: int = 255
    ) -> None:
        if clip_len < 1 or num_clips < 1:
            raise ValueError(f"clip_len and num_clips must be >= 1, got {clip_len}, {num_clips}")
        self.clip_len = clip_len
        self.num_clips = num_clips
        self.p_interval = _pair(p_interval)
        self.seed = seed

    def _sample(self, num_frames: int, rand, randint, choice, test_mode: bool) -> np.ndarray:
        """One pass of pyskl's `_get_{train,test}_clips`, with the random calls in upstream order."""
        clip_len = self.clip_len
        lo, hi = self.p_interval
        all_inds = []
        for i in range(self.num_clips):
            ratio = rand() * (hi - lo) + lo
            sub_frames = int(ratio * num_frames)
            off = randint(num_frames - sub_frames + 1)
            if sub_frames < clip_len:
                # Too short: take consecutive frames (looped later by the modulo).
                if test_mode:
                    # Spread the clips' starts over the video, as pyskl does.
                    start = i if sub_frames < self.num_clips else i * sub_frames // self.num_clips
                else:
                    start = randint(sub_frames)
                inds = np.arange(start, start + clip_len)
            elif sub_frames < 2 * clip_len:
                # Between 1x and 2x: every frame once, plus (sub_frames - clip_len) skips at random places.
                skips = choice(clip_len + 1, sub_frames - clip_len)
                offset = np.zeros(clip_len + 1, dtype=np.int64)
                offset[skips] = 1
                inds = np.arange(clip_len) + np.cumsum(offset)[:-1]
            else:
                # Segment boundaries, then one random frame inside each segment.
                bids = np.array([k * sub_frames // clip_len for k in range(clip_len + 1)])
                inds = bids[:clip_len] + randint(np.diff(bids))
            all_inds.append(inds + off)
        return np.concatenate(all_inds)

    def __call__(self, results: Results, rng: np.random.Generator | None = None) -> Results:
        num_frames = int(results["total_frames"])
        if num_frames < 1:
            raise ValueError(f"UniformSampleFrames needs total_frames >= 1, got {num_frames}")
        test_mode = bool(results.get("test_mode", False))
        if test_mode:
            legacy = np.random.RandomState(self.seed)
            inds = self._sample(
                num_frames,
                rand=legacy.rand,
                randint=legacy.randint,
                choice=lambda n, k: legacy.choice(n, k, replace=False),
                test_mode=True,
            )
        else:
            gen = _need_rng(rng, "UniformSampleFrames")
            inds = self._sample(
                num_frames,
                rand=gen.random,
                randint=gen.integers,
                choice=lambda n, k: gen.choice(n, k, replace=False),
                test_mode=False,
            )
        # pyskl also snaps indices next to a change in person count to integers; ours are integers
        # already, so that step is a no-op and is left out.
        results["frame_inds"] = (np.mod(inds, num_frames) + results.get("start_index", 0)).astype(np.int64)
        results["clip_len"] = self.clip_len
        results["num_clips"] = self.num_clips
        return results

    def __repr__(self) -> str:
        return (
            f"UniformSampleFrames(clip_len={self.clip_len}, num_clips={self.num_clips}, "
            f"p_interval={self.p_interval}, seed={self.seed})"
        )


class PoseDecode:
    """Gather the sampled frames.

    Reads `frame_inds` (default: every frame), `keypoint` (M, F, V, C), `keypoint_score` (M, F, V).
    Writes `keypoint` float32 (M, T, V, C) and `keypoint_score` float32 (M, T, V), T = len(frame_inds).
    """

    def __call__(self, results: Results, rng: np.random.Generator | None = None) -> Results:
        if "frame_inds" not in results:
            results["frame_inds"] = np.arange(results["total_frames"])
        inds = np.asarray(results["frame_inds"]).reshape(-1) + results.get("offset", 0)  # (T,)
        results["frame_inds"] = np.asarray(results["frame_inds"]).reshape(-1)
        for key in ("keypoint", "keypoint_score"):
            if key in results:
                results[key] = np.asarray(results[key])[:, inds].astype(np.float32)
        return results

    def __repr__(self) -> str:
        return "PoseDecode()"


class PoseCompact:
    """Crop the frame to the box around every non-zero coordinate of the clip, padded (pyskl semantics).

    Reads `keypoint` (M, T, V, 2) pixels, `img_shape` (h, w), `crop_quadruple` (optional).
    Writes `keypoint` float32 shifted into the new frame, `img_shape` (h', w'), and `crop_quadruple`
    (x, y, w, h of the crop relative to the original frame; may extend past [0, 1] when padding).

    A zero coordinate means missing: it is left at zero, and x and y are tested separately, as upstream.
    NaNs become 0. If the box is under `threshold` pixels on either side the results pass unchanged.
    `hw_ratio` (h/w, w/h lower bounds) widens the box to that aspect ratio; `allow_imgpad=False` clips
    the box to the frame instead of letting it extend past the edges.
    """

    def __init__(
        self,
        padding: float = 0.25,
        threshold: float = 10,
        hw_ratio: float | Sequence[float] | None = None,
        allow_imgpad: bool = True,
    ) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = padding
        self.threshold = threshold
        self.hw_ratio = None if hw_ratio is None else _pair(hw_ratio)
        self.allow_imgpad = allow_imgpad

    def __call__(self, results: Results, rng: np.random.Generator | None = None) -> Results:
        h, w = results["img_shape"]
        kp = np.array(results["keypoint"], dtype=np.float32)  # a copy: edited in place below
        kp[np.isnan(kp)] = 0.0
        kp_x, kp_y = kp[..., 0], kp[..., 1]  # views into kp
        xs, ys = kp_x[kp_x != 0], kp_y[kp_y != 0]
        inf = np.float32(np.inf)
        min_x, max_x = (xs.min(), xs.max()) if xs.size else (inf, -inf)
        min_y, max_y = (ys.min(), ys.max()) if ys.size else (inf, -inf)

        # Differences and sums in float32, the rest in float64: what NumPy 1.x did with upstream's
        # float32 scalars and Python numbers. The int() truncations below depend on it.
        if max_x - min_x < self.threshold or max_y - min_y < self.threshold:
            return results
        center_x, center_y = float(max_x + min_x) / 2, float(max_y + min_y) / 2
        half_w = float(max_x - min_x) / 2 * (1 + self.padding)
        half_h = float(max_y - min_y) / 2 * (1 + self.padding)
        if self.hw_ratio is not None:
            half_h = max(self.hw_ratio[0] * half_w, half_h)
            half_w = max(1 / self.hw_ratio[1] * half_h, half_w)
        x0, x1 = center_x - half_w, center_x + half_w
        y0, y1 = center_y - half_h, center_y + half_h
        if self.allow_imgpad:
            # int() truncates toward zero, also for negative corners, as upstream.
            x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
        else:
            x0, y0 = int(max(0, x0)), int(max(0, y0))
            x1, y1 = int(min(w, x1)), int(min(h, y1))

        kp_x[kp_x != 0] -= x0
        kp_y[kp_y != 0] -= y0
        results["keypoint"] = kp
        results["img_shape"] = (y1 - y0, x1 - x0)
        old = results.get("crop_quadruple", (0.0, 0.0, 1.0, 1.0))
        new = (x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h)
        results["crop_quadruple"] = (
            old[0] + old[2] * new[0],
            old[1] + old[3] * new[1],
            old[2] * new[2],
            old[3] * new[3],
        )
        return results

    def __repr__(self) -> str:
        return (
            f"PoseCompact(padding={self.padding}, threshold={self.threshold}, "
            f"hw_ratio={self.hw_ratio}, allow_imgpad={self.allow_imgpad})"
        )


def rescale_size(old_size: tuple[int, int], scale: float | tuple[float, float]) -> tuple[int, int]:
    """mmcv's `rescale_size`: the (w, h) that fits `old_size` (w, h) into `scale`, keeping the ratio.

    `scale` is a factor, or (long, short) edge limits in either order; the larger factor that keeps
    both edges within their limits wins. Sizes round half up.
    """
    w, h = old_size
    if isinstance(scale, (int, float)):
        if scale <= 0:
            raise ValueError(f"invalid scale {scale}, must be positive")
        factor = float(scale)
    else:
        factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(w * factor + 0.5), int(h * factor + 0.5)


class Resize:
    """Scale the frame and keypoints (pyskl/mmcv semantics).

    Reads `img_shape` (h, w), `keypoint` (M, T, V, 2) pixels, `scale_factor` (optional).
    Writes `img_shape` (h', w'), `keypoint` float32 scaled, `scale_factor` float32 (2,) (x, y),
    `keep_ratio`.

    `scale`: with `keep_ratio=True`, a factor or (long, short) edge limits in either order, and
    (-1, S) rescales the short side to S; with `keep_ratio=False`, the exact output size (w, h).
    The per-axis factor is rounded to float32 before use, as upstream.
    """

    def __init__(self, scale: float | Sequence[float], keep_ratio: bool = True) -> None:
        if isinstance(scale, (int, float)):
            if scale <= 0:
                raise ValueError(f"invalid scale {scale}, must be positive")
            self.scale: float | tuple[float, float] = float(scale)
        else:
            scale = tuple(scale)
            if len(scale) != 2:
                raise ValueError(f"scale must be a number or a pair, got {scale!r}")
            if min(scale) == -1:
                # (-1, S): no limit on the long edge, so the short edge decides.
                scale = (math.inf, max(scale))
            self.scale = scale
        if not keep_ratio and not isinstance(self.scale, tuple):
            raise ValueError("keep_ratio=False needs an explicit (w, h) scale")
        self.keep_ratio = keep_ratio

    def __call__(self, results: Results, rng: np.random.Generator | None = None) -> Results:
        img_h, img_w = results["img_shape"]
        if self.keep_ratio:
            new_w, new_h = rescale_size((img_w, img_h), self.scale)
        else:
            new_w, new_h = self.scale
        factor = np.array([new_w / img_w, new_h / img_h], dtype=np.float32)  # (x, y)
        results["img_shape"] = (new_h, new_w)
        results["keep_ratio"] = self.keep_ratio
        results["scale_factor"] = results.get("scale_factor", np.ones(2, dtype=np.float32)) * factor
        if "keypoint" in results:
            kp = np.asarray(results["keypoint"], dtype=np.float32)
            extra = np.ones(kp.shape[-1] - 2, dtype=np.float32)  # channels past (x, y), e.g. depth, stay
            results["keypoint"] = kp * np.concatenate([factor, extra])
        return results

    def __repr__(self) -> str:
        return f"Resize(scale={self.scale}, keep_ratio={self.keep_ratio})"


def _crop(results: Results, left: int, top: int, right: int, bottom: int) -> Results:
    """Apply a crop box in pixels of the current frame: shift keypoints, update the bookkeeping."""
    img_h, img_w = results["img_shape"]
    new_h, new_w = bottom - top, right - left
    old = results.get("crop_quadruple", np.array([0, 0, 1, 1], dtype=np.float32))  # x, y, w, h
    x_ratio, y_ratio, w_ratio, h_ratio = left / img_w, top / img_h, new_w / img_w, new_h / img_h
    results["crop_quadruple"] = np.array(
        [old[0] + x_ratio * old[2], old[1] + y_ratio * old[3], w_ratio * old[2], h_ratio * old[3]],
        dtype=np.float32,
    )
    results["crop_bbox"] = np.array([left, top, right, bottom])
    results["img_shape"] = (new_h, new_w)
    if "keypoint" in results:
        # Upstream subtracts from every joint, missing (0, 0) ones included: they move off-frame and
        # are no longer recognisable by their coordinates, only by their zero score. Upstream's result
        # is float64 (float32 minus an int64 array); we keep float32 (differences < 1e-4 px).
        kp = np.asarray(results["keypoint"], dtype=np.float32)
        shift = np.zeros(kp.shape[-1], dtype=np.float32)  # channels past (x, y), e.g. depth, stay
        shift[:2] = left, top
        results["keypoint"] = kp - shift
    return results


class RandomResizedCrop:
    """Crop a random box of random area and aspect ratio (pyskl semantics; resize happens in `Resize`).

    Reads `img_shape` (h, w), `keypoint` (M, T, V, 2). Writes `img_shape` (h', w'), `keypoint` shifted
    by the box corner, `crop_bbox` (left, top, right, bottom), `crop_quadruple`.

    Ten candidate boxes are drawn at once (area ratio ~ U(area_range), log aspect ratio (w/h) ~
    U(log range)); the first that fits gets a uniform offset; if none fits, the centred square.
    """

    def __init__(
        self,
        area_range: tuple[float, float] = (0.08, 1.0),
        aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
        max_attempts: int = 10,
    ) -> None:
        if not 0 < area_range[0] <= area_range[1] <= 1:
            raise ValueError(f"area_range must satisfy 0 < lo <= hi <= 1, got {area_range}")
        if not 0 < aspect_ratio_range[0] <= aspect_ratio_range[1]:
            raise ValueError(f"aspect_ratio_range must satisfy 0 < lo <= hi, got {aspect_ratio_range}")
        self.area_range = tuple(area_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.max_attempts = max_attempts

    def get_crop_bbox(self, img_shape: tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels of a frame of shape (h, w)."""
        img_h, img_w = img_shape
        min_ar, max_ar = self.aspect_ratio_range
        aspect = np.exp(rng.uniform(np.log(min_ar), np.log(max_ar), size=self.max_attempts))
        areas = rng.uniform(*self.area_range, size=self.max_attempts) * (img_h * img_w)
        crop_w = np.round(np.sqrt(areas * aspect)).astype(np.int32)
        crop_h = np.round(np.sqrt(areas / aspect)).astype(np.int32)
        for cw, ch in zip(crop_w.tolist(), crop_h.tolist(), strict=True):
            if ch <= img_h and cw <= img_w:
                x = int(rng.integers(0, img_w - cw, endpoint=True))
                y = int(rng.integers(0, img_h - ch, endpoint=True))
                return x, y, x + cw, y + ch
        size = min(img_h, img_w)
        x, y = (img_w - size) // 2, (img_h - size) // 2
        return x, y, x + size, y + size

    def __call__(self, results: Results, rng: np.random.Generator | None = None) -> Results:
        box = self.get_crop_bbox(results["img_shape"], _need_rng(rng, "RandomResizedCrop"))
        return _crop(results, *box)

    def __repr__(self) -> str:
        return f"RandomResizedCrop(area_range={self.area_range}, aspect_ratio_range={self.aspect_ratio_range})"


class CenterCrop:
    """Crop a centred box of `crop_size` (w, h) or a square side (pyskl semantics).

    Reads `img_shape` (h, w), `keypoint`. Writes `img_shape`, `keypoint` shifted, `crop_bbox`,
    `crop_quadruple`. A box larger than the frame extends past its edges (negative corner).
    """

    def __init__(self, crop_size: int | tuple[int, int]) -> None:
        self.crop_size = _pair(crop_size)

    def __call__(self, results: Results, rng: np.random.Generator | None = None) -> Results:
        img_h, img_w = results["img_shape"]
        crop_w, crop_h = self.crop_size
        left, top = (img_w - crop_w) // 2, (img_h - crop_h) // 2
        return _crop(results, left, top, left + crop_w, top + crop_h)

    def __repr__(self) -> str:
        return f"CenterCrop(crop_size={self.crop_size})"


class Flip:
    """Horizontal flip with probability `flip_ratio` (pyskl semantics).

    Reads `img_shape` (h, w), `keypoint` (M, T, V, 2), `keypoint_score` (M, T, V).
    Writes `flip` (bool), `keypoint` (x -> w - x for non-zero x, so missing joints stay at 0) and
    both `keypoint` and `keypoint_score` with left/right joints swapped.
    """

    def __init__(self, flip_ratio: float = 0.5, left_kp: Sequence[int] = (), right_kp: Sequence[int] = ()) -> None:
        if len(left_kp) != len(right_kp):
            raise ValueError("left_kp and right_kp must pair up one to one")
        self.flip_ratio = flip_ratio
        self.left_kp = tuple(left_kp)
        self.right_kp = tuple(right_kp)

    def flip(self, results: Results) -> Results:
        """Flip unconditionally."""
        img_w = results["img_shape"][1]
        kp = np.array(results["keypoint"], dtype=np.float32)  # a copy
        kp_x = kp[..., 0]
        kp_x[kp_x != 0] = img_w - kp_x[kp_x != 0]
        order = list(range(kp.shape[2]))
        for a, b in zip(self.left_kp, self.right_kp, strict=True):
            order[a], order[b] = b, a
        results["keypoint"] = kp[:, :, order]
        if "keypoint_score" in results:
            results["keypoint_score"] = np.asarray(results["keypoint_score"])[:, :, order]
        return results

    def __call__(self, results: Results, rng: np.random.Generator | None = None) -> Results:
        do_flip = bool(_need_rng(rng, "Flip").random() < self.flip_ratio)
        results["flip"] = do_flip
        return self.flip(results) if do_flip else results

    def __repr__(self) -> str:
        return f"Flip(flip_ratio={self.flip_ratio}, left_kp={self.left_kp}, right_kp={self.right_kp})"


class Compose:
    """Run transforms in order, threading `results` and `rng`. Slicing gives a sub-pipeline."""

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, results: Results, rng: np.random.Generator | None = None) -> Results:
        for t in self.transforms:
            results = t(results, rng)
        return results

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Compose(self.transforms[index])
        return self.transforms[index]

    def split_after(self, kind: type) -> tuple[Compose, Compose]:
        """(up to and including the first transform of type `kind`, the rest)."""
        for i, t in enumerate(self.transforms):
            if isinstance(t, kind):
                return self[: i + 1], self[i + 1 :]
        raise ValueError(f"no {kind.__name__} in {self!r}")

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


def split_sampling(pipeline: Compose) -> tuple[Compose, Compose]:
    """(frame sampling + decoding, geometric rest): the Dataset adds joint noise in between."""
    return pipeline.split_after(PoseDecode)


def pose_train_pipeline(clip_len: int, input_size: int = 56, layout: Layout = COCO17) -> Compose:
    """pyskl's NTU PoseConv3D training pipeline up to the heatmaps, for an `input_size` square output.

    Random frames, compaction, short side to input_size * 64/56, a random crop of 56-100% of the area,
    resize to (input_size, input_size), random horizontal flip. Use `split_sampling` to split it.
    """
    return Compose(
        [
            UniformSampleFrames(clip_len),
            PoseDecode(),
            PoseCompact(hw_ratio=1.0, allow_imgpad=True),
            Resize((-1, round(input_size * 64 / 56))),
            RandomResizedCrop(area_range=(0.56, 1.0)),
            Resize((input_size, input_size), keep_ratio=False),
            Flip(0.5, left_kp=layout.left, right_kp=layout.right),
        ]
    )


def pose_test_pipeline(clip_len: int, num_clips: int = 1, input_size: int = 56) -> Compose:
    """pyskl's deterministic validation pipeline up to the heatmaps (`num_clips` clips, square output).

    Set `test_mode=True` in `results`, as pyskl's dataset does. Use `split_sampling` to split it.
    """
    return Compose(
        [
            UniformSampleFrames(clip_len, num_clips),
            PoseDecode(),
            PoseCompact(hw_ratio=1.0, allow_imgpad=True),
            Resize((input_size, input_size), keep_ratio=False),
        ]
    )
