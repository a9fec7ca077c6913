"""The torch Dataset: keypoint clips only (frame sampling, noise, compaction, resize/crop, flip).

Pixels are not made here: the training loop renders heatmap volumes for the whole batch on its
device (datasets/batch/render.py). Each item is a dict of small arrays::

    keypoint        float32 (S, M, T, V, 2)  S = num_clips views, M = max_persons (zero-padded); 3 with depth
    keypoint_score  float32 (S, M, T, V)
    noisy_keypoint, noisy_keypoint_score     the same frames with joint noise (training, when asked)
    label           int64 ()
    index           int64 ()  position in the store

For models of joint coordinates (`reads='joints'`) the keypoints are its normalised model input instead:
`keypoint` float32 (1, 2, clip_len, V, 3): (x, y, score) from 2D COCO-17 keypoints as upstream prepares
them, or (x, y, z) from 3D joints of any layout; no `keypoint_score`.

Randomness: a training item draws from a generator seeded by (seed, epoch, index), so the data do
not depend on the number of workers and a resumed run sees the same clips. The skeleton augmentations
(datasets/pipeline/augment.py, training only) draw from their own generator, seeded by (seed, epoch, index,
AUGMENT_STREAM), so switching them on leaves every other draw as it was. Evaluation noise comes
from `corruption_rng(family, severity, index)` (datasets/pipeline/corruptions.py; for jitter `eval_noise_rng(alpha,
index)`), identical for every model and run. Jitter is drawn on the sampled frames (as it always was);
the other corruptions act on the whole clip before frame sampling.
"""

from __future__ import annotations

import copy

import numpy as np
from torch.utils.data import Dataset

from datasets.pipeline.augment import AugmentConfig, augment_clip
from datasets.pipeline.corruptions import corrupt, corruption_rng
from datasets.pipeline.gcn_prep import gcn_clip
from datasets.pipeline.motionbert_prep import motionbert_clip, motionbert_clip_3d
from datasets.pipeline.noise import add_joint_noise
from datasets.pipeline.repair import repair
from datasets.pipeline.transforms import pose_test_pipeline, pose_train_pipeline, split_sampling
from datasets.store.annotations import KeypointStore
from datasets.store.layouts import Layout

NOISY_PREFIX = "noisy_"  # key prefix of the corrupted view's arrays in an item (and a collated batch)
# What a model reads, which decides the data path (models/registry.py's `reads`, stored in checkpoints' run
# configuration): rendered volumes (pyskl's pose pipeline) or joint coordinates (MotionBERT's preprocessing,
# for any model that reads joints).
VOLUME, JOINTS = "volume", "joints"
READS = (VOLUME, JOINTS)
JOINTS_PREPS = ("motionbert", "gcn")  # how joint coordinates are prepared (a model's joints_prep)
GCN_FEATS = {"joint": "j", "bone": "b", "joint_motion": "jm", "bone_motion": "bm"}  # --stream -> pyskl's feats
AUGMENT_STREAM = 1  # last word of the augmentations' generator seed (see the module doc)


def _top_persons(kp: np.ndarray, score: np.ndarray, max_persons: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most `max_persons` persons (those with the highest total score) and zero-pad to it.

    kp (M, T, V, C), score (M, T, V) -> (max_persons, T, V, C), (max_persons, T, V).
    """
    m = kp.shape[0]
    if m > max_persons:
        keep = np.sort(np.argsort(-score.sum(axis=(1, 2)), kind="stable")[:max_persons])
        return kp[keep], score[keep]
    if m < max_persons:
        pad = max_persons - m
        kp = np.concatenate([kp, np.zeros((pad, *kp.shape[1:]), kp.dtype)])
        score = np.concatenate([score, np.zeros((pad, *score.shape[1:]), score.dtype)])
    return kp, score


PROJECTION_SIDE = 1000  # pixels of the virtual frame that 3D clips are projected into


def project_3d(keypoint: np.ndarray, score: np.ndarray, depth: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """The documented 2D projection of 3D skeletons for the rendered inputs.

    keypoint (M, T, V, 3) metres (x right, y up, z depth; Kinect/NTU), score (M, T, V) with 0 for missing
    joints. Orthographic front view: image x = x, image y = -y (down), centred on the clip's visible
    joints and scaled so that their larger extent spans 80% of a 1000 x 1000 px frame. Missing joints
    stay at (0, 0). depth: keep z as a third channel, centred on the visible joints and scaled as x and y,
    in units of half the frame (so -0.8..0.8 spans the same extent as x and y in the Skeleton input), which
    the frame's resize, crop and flip leave alone. Returns (keypoint (M, T, V, 2 or 3) float32, img_shape
    (1000, 1000)).
    """
    xy = np.stack([keypoint[..., 0], -keypoint[..., 1]], axis=-1).astype(np.float32)  # (M, T, V, 2)
    seen = score > 0
    out = np.zeros((*xy.shape[:-1], 3 if depth else 2), dtype=np.float32)
    if seen.any():
        pts = xy[seen]  # (K, 2)
        lo, hi = pts.min(0), pts.max(0)
        scale = 0.8 * PROJECTION_SIDE / max(float((hi - lo).max()), 1e-6)
        out[seen, :2] = (pts - (lo + hi) / 2) * scale + PROJECTION_SIDE / 2
        if depth:
            z = keypoint[..., 2][seen].astype(np.float32)  # (K,)
            out[seen, 2] = (z - (z.min() + z.max()) / 2) * scale / (PROJECTION_SIDE / 2)
    return out, (PROJECTION_SIDE, PROJECTION_SIDE)


class SkeletonClips(Dataset):
    """Clips of a KeypointStore for training or evaluation.

    store, indices: the packed annotations and the clips of this split.
    reads: 'volume' (PoseConv3D / TSM: pyskl's UniformSampleFrames -> PoseCompact -> Resize ...)
        or 'joints' (MotionBERT's resample -> camera normalisation -> tracking -> crop_scale).
    train: random sampling and augmentation; otherwise pyskl's deterministic test sampling.
    clip_len, num_clips, input_size: frames per clip, views per item (test), output side in pixels.
    noise_alpha: strength of the jitter of the noisy view (training) or of the evaluation (eval), when
        `corruptions` is not given.
    corruptions: (family, severity) pairs of datasets/pipeline/corruptions.py. Training: the corrupted view of an
        item is drawn from one of them, chosen uniformly per item (default: jitter at noise_alpha).
        Evaluation: exactly one, applied to every clip with its fixed generator `corruption_rng`.
    noisy_view: also return a corrupted view of the same clip (training with a second view).
    layout: joint layout (flip pairs). seed: base seed. max_persons: persons per clip after padding.
    augment: skeleton augmentations of training clips (datasets/pipeline/augment.py), applied to the whole clip
        before frame sampling and before the corruption, so both views share them; None or all off: none.
    joints_prep: for reads 'joints', MotionBERT's preparation ('motionbert') or pyskl's GCN pipeline ('gcn':
        PreNormalize, the stream's features, UniformSample of clip_len frames, num_clips test clips per item).
    stream: the input stream the 'gcn' preparation computes per clip (joint, bone, joint_motion, bone_motion).
    depth: reads 'volume' on 3D clips: keep each joint's depth as a third coordinate (`project_3d`; the
        Skeleton input reads it), not the front view alone.
    repair: steps of datasets/pipeline/repair.py applied to every view after its corruption (none: off).
    visibility: the 'gcn' preparation appends a seen (1) / missing (0) channel per joint.
    """

    def __init__(
        self,
        store: KeypointStore,
        indices: np.ndarray,
        *,
        reads: str,
        train: bool,
        clip_len: int,
        layout: Layout,
        num_clips: int = 1,
        input_size: int = 56,
        noise_alpha: float = 0.0,
        noisy_view: bool = False,
        seed: int = 0,
        max_persons: int = 2,
        corruptions: tuple[tuple[str, float], ...] | None = None,
        augment: AugmentConfig | None = None,
        joints_prep: str = "motionbert",
        stream: str = "joint",
        depth: bool = False,
        repair: tuple[str, ...] = (),
        visibility: bool = False,
    ) -> None:
        if reads not in READS:
            raise ValueError(f"unknown input kind {reads!r}; choose one of {READS}")
        if train and num_clips != 1:
            raise ValueError("training samples one clip per item; num_clips > 1 is for evaluation")
        self.store, self.indices = store, np.asarray(indices, dtype=np.int64)
        self.reads, self.train, self.layout = reads, train, layout
        self.clip_len, self.num_clips, self.input_size = clip_len, num_clips, input_size
        self.noisy_view = noisy_view
        self.corruptions = tuple(corruptions) if corruptions else (("jitter", float(noise_alpha)),)
        self.whole_clip_corruption = any(family != "jitter" for family, _ in self.corruptions)
        if not train and len(self.corruptions) != 1:
            raise ValueError("an evaluation set is corrupted by exactly one (family, severity)")
        self.seed, self.max_persons, self.epoch = seed, max_persons, 0
        self.augment = augment if train and augment is not None and augment.enabled else None
        self.joints_prep, self.stream, self.depth, self.repair = joints_prep, stream, depth, tuple(repair)
        self.visibility = visibility
        if joints_prep not in JOINTS_PREPS or (joints_prep == "gcn" and stream not in GCN_FEATS):
            raise ValueError(f"unknown joints_prep {joints_prep!r} or stream {stream!r}")
        if reads == VOLUME:
            full = (
                pose_train_pipeline(clip_len, input_size=input_size, layout=layout)
                if train
                else pose_test_pipeline(clip_len, num_clips=num_clips, input_size=input_size)
            )
            self.sample, self.geometry = split_sampling(full)

    def set_epoch(self, epoch: int) -> None:
        """Training items depend on the epoch; call before iterating (workers copy the dataset then)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        index = int(self.indices[i])
        clip = self.store.get(index)
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            noise_rng = rng
            if self.augment is not None:
                clip = self._augmented(clip, np.random.default_rng([self.seed, self.epoch, index, AUGMENT_STREAM]))
        else:
            rng = np.random.default_rng([self.seed, index])
            noise_rng = corruption_rng(*self.corruptions[0], index)
        if self.reads == VOLUME:
            views = self._volume_views(clip, rng, noise_rng)
        elif self.joints_prep == "gcn":
            views = self._gcn_views(clip, rng, noise_rng)
        else:
            views = self._joints_views(clip, rng, noise_rng)
        views["label"] = np.int64(clip["label"])
        views["index"] = np.int64(index)
        return views

    def _augmented(self, clip: dict, rng: np.random.Generator) -> dict:
        """The whole clip under the training augmentations (a temporal crop resamples it to clip_len frames);
        keypoint_score and total_frames follow."""
        kp, score = augment_clip(clip["keypoint"], clip["keypoint_score"], self.augment, self.clip_len, rng)
        return {**clip, "keypoint": kp, "keypoint_score": score, "total_frames": kp.shape[1]}

    def _views(self, rng: np.random.Generator) -> list[tuple[str, tuple[str, float] | None]]:
        """(key prefix, corruption or None) of each view: training gives the clean clip and, when asked, a
        corrupted one (its corruption drawn from `rng` when there are several); evaluation gives one clip
        under the evaluation corruption."""
        if not self.train:
            return [("", self.corruptions[0])]
        if not self.noisy_view:
            return [("", None)]
        pick = 0 if len(self.corruptions) == 1 else int(rng.integers(len(self.corruptions)))
        return [("", None), (NOISY_PREFIX, self.corruptions[pick])]

    def _corrupt(self, clip: dict, corruption: tuple[str, float], rng: np.random.Generator) -> dict:
        """The whole clip under a corruption other than jitter (before frame sampling: temporal families
        change its length); keypoint_score and total_frames follow."""
        kp, score = corrupt(clip["keypoint"], clip["keypoint_score"], *corruption, rng,
                            img_shape=clip["img_shape"], layout=self.layout)  # fmt: skip
        return {**clip, "keypoint": kp, "keypoint_score": score, "total_frames": kp.shape[1]}

    def _volume_views(self, clip: dict, rng: np.random.Generator, noise_rng: np.random.Generator) -> dict:
        def sampled(c: dict, gen: np.random.Generator) -> dict:
            return self.sample({"keypoint": c["keypoint"], "keypoint_score": c["keypoint_score"],
                                "img_shape": c["img_shape"], "total_frames": c["total_frames"],
                                "test_mode": not self.train, "start_index": 0}, gen)  # fmt: skip

        # A corrupted clip of unchanged length samples the clean view's frames: keep the generator's state
        # (only when a corruption other than jitter may be drawn: this runs for every item).
        before = copy.deepcopy(rng) if self.whole_clip_corruption else None
        results = sampled(clip, rng)  # frame_inds, then decoded float32 (M, S*T, V, 2)
        # The same augmentation seed for both views: identical crop and flip, so that the only
        # difference between the clean and the corrupted view is the corruption itself.
        aug_seed = int(rng.integers(2**63))
        out = {}
        for prefix, corruption in self._views(rng):
            r = dict(results)
            if corruption is not None and corruption[0] != "jitter":
                r = sampled(self._corrupt(clip, corruption, noise_rng), copy.deepcopy(before))
            elif corruption is not None and corruption[1] > 0:  # jitter, on the sampled frames
                r["keypoint"] = add_joint_noise(
                    r["keypoint"], r["keypoint_score"], corruption[1], noise_rng, img_shape=clip["img_shape"]
                )
            r["keypoint"], r["keypoint_score"] = self._repaired(r["keypoint"], r["keypoint_score"], clip)
            if r["keypoint"].shape[-1] == 3:  # 3D noise is drawn in metres first, then the clip is projected
                r["keypoint"], r["img_shape"] = project_3d(r["keypoint"], r["keypoint_score"], self.depth)
            r = self.geometry(r, np.random.default_rng(aug_seed))
            kp, score = _top_persons(r["keypoint"], r["keypoint_score"], self.max_persons)
            m, st, v = score.shape
            s = st // self.clip_len
            # (M, S*T, V, C) -> (S, M, T, V, C): views first, so the collated batch is (N, S, M, T, V, C)
            out[prefix + "keypoint"] = np.ascontiguousarray(
                kp.reshape(m, s, self.clip_len, v, kp.shape[-1]).transpose(1, 0, 2, 3, 4), dtype=np.float32
            )
            out[prefix + "keypoint_score"] = np.ascontiguousarray(
                score.reshape(m, s, self.clip_len, v).transpose(1, 0, 2, 3), dtype=np.float32
            )
        return out

    def _corrupted_coords(
        self, clip: dict, corruption: tuple[str, float] | None, noise_rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The whole clip's (keypoint, keypoint_score) under a view's corruption (None: clean). Jitter is drawn
        on the raw coordinates and cast back to the stored dtype, so that a float16 normalisation (MotionBERT's
        camera normalisation, pyskl's PreNormalize3D) treats noisy and clean clips alike."""
        kp, score = clip["keypoint"], clip["keypoint_score"]
        if corruption is not None and corruption[0] != "jitter":
            corrupted = self._corrupt(clip, corruption, noise_rng)
            kp, score = corrupted["keypoint"].astype(kp.dtype), corrupted["keypoint_score"]
        elif corruption is not None and corruption[1] > 0:
            kp = add_joint_noise(kp, score, corruption[1], noise_rng, img_shape=clip["img_shape"]).astype(kp.dtype)
        return self._repaired(kp, score, clip)

    def _repaired(self, kp: np.ndarray, score: np.ndarray, clip: dict) -> tuple[np.ndarray, np.ndarray]:
        """A view's (keypoint, keypoint_score) after the repair steps (unchanged without any), in kp's dtype."""
        if not self.repair:
            return kp, score
        fixed, fixed_score = repair(kp, score, self.repair, self.layout, img_shape=tuple(clip["img_shape"]))
        return fixed.astype(kp.dtype), fixed_score

    def _joints_views(self, clip: dict, rng: np.random.Generator, noise_rng: np.random.Generator) -> dict:
        # Both views share the resampling and scale draw: the same seed for each.
        aug_seed = int(rng.integers(2**63))
        out = {}
        for prefix, corruption in self._views(rng):
            k, sc = self._corrupted_coords(clip, corruption, noise_rng)
            view_rng = np.random.default_rng(aug_seed)
            if k.shape[-1] == 3:  # 3D joints of any layout: x, y, z centred and scaled per clip
                view = motionbert_clip_3d(k, self.clip_len, test_mode=not self.train, rng=view_rng)
            else:
                view = motionbert_clip(
                    k,
                    sc,
                    clip["img_shape"],
                    clip_len=self.clip_len,
                    test_mode=not self.train,
                    scale_range=(1, 3) if self.train else (2, 2),
                    rng=view_rng,
                    joint_order=self.layout.name,  # coco17 is mapped to MotionBERT's H36M order; h36m17 is in it
                )
            # One view: MotionBERT's test clip is the whole sequence resampled, so more would be copies.
            out[prefix + "keypoint"] = view[None].astype(np.float32)  # (1, 2, T, V, 3)
        return out

    def _gcn_views(self, clip: dict, rng: np.random.Generator, noise_rng: np.random.Generator) -> dict:
        """pyskl's GCN input of each view: (S, M, clip_len, V, 3) float32 under `keypoint`, S = num_clips; x, y, z
        (3D) or x, y, score (2D) of the run's stream. Both views of a training item sample the same frames;
        test clips take pyskl's fixed test sampling (seed 255), as its evaluation does."""
        aug_seed = int(rng.integers(2**63))
        out = {}
        for prefix, corruption in self._views(rng):
            k, sc = self._corrupted_coords(clip, corruption, noise_rng)
            out[prefix + "keypoint"] = gcn_clip(
                k, (GCN_FEATS[self.stream],), self.layout, keypoint_score=None if k.shape[-1] == 3 else sc,
                img_shape=tuple(clip["img_shape"]), clip_len=self.clip_len, num_clips=self.num_clips,
                num_person=self.max_persons, test_mode=not self.train, rng=np.random.default_rng(aug_seed),
                visibility=self.visibility,
            )  # fmt: skip
        return out
