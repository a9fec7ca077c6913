"""Write a pyskl-format 2D annotation file of NTU60's size and shape, to measure the data path at scale.

    .venv/bin/python bench/make_ntu_scale.py                       # 56,880 clips -> /tmp/ntu60_scale.pkl
    .venv/bin/python bench/make_ntu_scale.py --clips 200 --out /tmp/tiny.pkl

The file has what pyskl's ntu60_hrnet.pkl has, in the same types: `split` (xsub_train / xsub_val by
NTU's cross-subject performer list, xview_train / xview_val by camera) and `annotations`, one dict per
clip with frame_dir (NTU style SsssCcccPpppRrrrAaaa), label (action - 1, 60 classes, balanced),
img_shape and original_shape (1080, 1920), total_frames T, keypoint float16 (M, T, 17, 2) pixels in
COCO-17 order and keypoint_score float16 (M, T, 17).

What is assumed rather than copied from NTU (the point is size and layout, not realism):
- T: log-normal around 75 frames (sigma 0.4), clipped to 30..300 (NTU's clips are 1-10 s at 30 fps);
- M: 2 for the 11 mutual actions (A050-A060), and for 10% of the others (a bystander detection), else 1;
- motion: a standing COCO-17 template per person, scaled and placed in the frame, swaying smoothly with
  per-frame noise; scores uniform in [0.2, 1]; 2% of the joints missing (0, 0) with score 0.

Everything is drawn with vectorised numpy from one generator seeded by --seed, so the same options give
the same file. The default file is large (the size is printed; 0.70 GiB with --protocol 2), so it
goes to /tmp unless --out says otherwise. --protocol 2 is what mmcv.dump (which wrote pyskl's files)
uses; it stores arrays as latin-1 text and loads slower than protocol 5.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

NTU60_CLIPS = 56_880
NUM_CLASSES = 60
MUTUAL_ACTIONS = range(50, 61)  # A050-A060: two-person actions of NTU60
# NTU RGB+D's cross-subject training performers (Shahroudy et al. 2016); the other 20 are the test set.
XSUB_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
XVIEW_TRAIN_CAMERAS = (2, 3)  # cross-view: cameras 2 and 3 train, camera 1 tests
IMG_SHAPE = (1080, 1920)  # (h, w) pixels, like pyskl's HRNet files
# A standing person in COCO-17 order, (x, y) as fractions of its box (the shape of bench/render.py's).
TEMPLATE = np.array(
    [
        [0.50, 0.08], [0.47, 0.06], [0.53, 0.06], [0.44, 0.08], [0.56, 0.08], [0.38, 0.24],
        [0.62, 0.24], [0.33, 0.42], [0.67, 0.42], [0.30, 0.58], [0.70, 0.58], [0.42, 0.58],
        [0.58, 0.58], [0.41, 0.78], [0.59, 0.78], [0.40, 0.97], [0.60, 0.97],
    ],
    dtype=np.float32,
)  # fmt: skip


def clip_names(n: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """n distinct NTU-style names, actions cycling fastest so that every class gets n/60 clips.

    Performers repeat in a cycle of 140 slots, 5 for each cross-subject training performer and 2 for
    each test one, so that 71% of the clips are xsub_train, as in NTU60 (40,320 of 56,880), and even a
    small file has both splits. A performer's k-th slot of a cycle sets camera (k % 3) and replication
    (k // 3); the number of the cycle sets the setup, so names never repeat.
    Returns (names, action (n,) 1..60, performer (n,) 1..40, camera (n,) 1..3).
    """
    # Each performer's slots spread evenly over the cycle, shifted by a golden-ratio offset per performer,
    # so that train and test performers alternate from the start.
    reps = {p: 5 if p in XSUB_TRAIN else 2 for p in range(1, 41)}
    slots = sorted(((o + p * 0.618034 % 1) / reps[p], p, o) for p in reps for o in range(reps[p]))
    cycle = np.array([p for _, p, _ in slots])
    slot = np.array([o for _, _, o in slots])  # which of its performer's slots
    i = np.arange(n)
    action = i % NUM_CLASSES + 1
    k = i // NUM_CLASSES  # position within the action
    performer, nth = cycle[k % len(cycle)], slot[k % len(cycle)]
    camera, rep, setup = nth % 3 + 1, nth // 3 + 1, k // len(cycle) + 1
    names = [
        f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}"
        for s, c, p, r, a in zip(
            setup.tolist(), camera.tolist(), performer.tolist(), rep.tolist(), action.tolist(), strict=True
        )
    ]
    return names, action, performer, camera


def make_keypoints(rng: np.random.Generator, persons: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of all clips, clip after clip and person after person.

    persons, frames: (n,) M_i and T_i. Returns keypoint (sum M_i*T_i, 17, 2) float16 pixels and
    keypoint_score (sum M_i*T_i, 17) float16, rows of clip i laid out as (M_i, T_i).
    """
    tracks = np.repeat(frames, persons)  # (P,) frames of each person track
    p = len(tracks)
    h, w = IMG_SHAPE
    height = rng.uniform(0.35, 0.8, p).astype(np.float32) * h  # person box height, pixels
    box = np.stack([0.45 * height, height], axis=1)  # (P, 2) box (w, h)
    origin = np.stack([rng.uniform(0, w - box[:, 0]), rng.uniform(0, h - box[:, 1])], axis=1).astype(np.float32)
    freq = rng.uniform(0.01, 0.05, p).astype(np.float32)  # sway cycles per frame
    amp = rng.uniform(0.01, 0.06, p).astype(np.float32) * height  # sway amplitude, pixels
    phase = rng.uniform(0, 2 * np.pi, (p, 17, 2)).astype(np.float32)

    track = np.repeat(np.arange(p), tracks)  # (R,) person track of each row
    starts = np.cumsum(tracks) - tracks
    t = (np.arange(len(track)) - starts[track]).astype(np.float32)  # (R,) frame index within its track
    kp = origin[track, None, :] + TEMPLATE[None] * box[track, None, :]  # (R, 17, 2)
    kp += amp[track, None, None] * np.sin(2 * np.pi * freq[track, None, None] * t[:, None, None] + phase[track])
    # float32 draws throughout: at NTU scale a float64 temporary of kp's shape alone is 1.6 GB
    kp += 2.0 * rng.standard_normal(kp.shape, dtype=np.float32)
    score = 0.2 + 0.8 * rng.random(kp.shape[:2], dtype=np.float32)  # (R, 17)
    missing = rng.random(score.shape, dtype=np.float32) < 0.02
    kp[missing], score[missing] = 0.0, 0.0
    return kp.astype(np.float16), score.astype(np.float16)


def make_ntu_scale(n: int = NTU60_CLIPS, seed: int = 0) -> dict:
    """A pyskl-format dataset dict of n clips (see the module docstring for what is drawn how)."""
    rng = np.random.default_rng(seed)
    names, action, performer, camera = clip_names(n)
    mutual = np.isin(action, MUTUAL_ACTIONS)
    persons = np.where(mutual | (rng.random(n) < 0.1), 2, 1)
    frames = np.clip(np.round(rng.lognormal(np.log(75), 0.4, n)), 30, 300).astype(np.int64)
    kp, score = make_keypoints(rng, persons, frames)
    offsets = np.concatenate([[0], np.cumsum(persons * frames)])
    annotations = []
    for i in range(n):  # views into the big arrays; pickling writes each one on its own, as pyskl's file has them
        m, t, lo, hi = int(persons[i]), int(frames[i]), offsets[i], offsets[i + 1]
        annotations.append({
            "frame_dir": names[i], "label": int(action[i] - 1), "img_shape": IMG_SHAPE,
            "original_shape": IMG_SHAPE, "total_frames": t,
            "keypoint": kp[lo:hi].reshape(m, t, 17, 2), "keypoint_score": score[lo:hi].reshape(m, t, 17),
        })  # fmt: skip
    in_xsub = np.isin(performer, XSUB_TRAIN)
    in_xview = np.isin(camera, XVIEW_TRAIN_CAMERAS)
    split = {
        "xsub_train": [names[i] for i in np.flatnonzero(in_xsub)],
        "xsub_val": [names[i] for i in np.flatnonzero(~in_xsub)],
        "xview_train": [names[i] for i in np.flatnonzero(in_xview)],
        "xview_val": [names[i] for i in np.flatnonzero(~in_xview)],
    }
    return {"split": split, "annotations": annotations}


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clips", type=int, default=NTU60_CLIPS, help="clips to write (default: NTU60's %(default)s)")
    p.add_argument("--out", default="/tmp/ntu60_scale.pkl", help="output file (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of everything drawn (default: %(default)s)")
    p.add_argument(
        "--protocol", type=int, default=2, choices=range(2, pickle.HIGHEST_PROTOCOL + 1),
        help="pickle protocol (default: %(default)s, as mmcv.dump writes pyskl's files)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.clips < NUM_CLASSES:
        p.error(f"--clips must be at least {NUM_CLASSES} (one per class), got {args.clips}")
    out = Path(args.out)
    if not out.parent.is_dir():
        p.error(f"--out: folder {out.parent} does not exist; create it or choose another path")
    start = time.perf_counter()
    data = make_ntu_scale(args.clips, args.seed)
    made = time.perf_counter() - start
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(data, f, protocol=args.protocol)
    tmp.replace(out)  # a crash never leaves a truncated file under the real name
    anns = data["annotations"]
    frames = np.array([a["total_frames"] for a in anns])
    two = sum(a["keypoint"].shape[0] == 2 for a in anns)
    print(
        f"wrote {out}: {out.stat().st_size / 2**30:.2f} GiB, {len(anns)} clips ({two} with 2 persons), frames "
        f"mean {frames.mean():.1f} / max {frames.max()}, xsub {len(data['split']['xsub_train'])} train / "
        f"{len(data['split']['xsub_val'])} val; generated in {made:.1f} s, "
        f"written in {time.perf_counter() - start - made:.1f} s (protocol {args.protocol})",
        flush=True,
    )
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
