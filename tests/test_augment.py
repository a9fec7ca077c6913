"""Skeleton augmentations (datasets/pipeline/augment.py): each transform on hand-built skeletons, and how the training
clips use them (both views share them, evaluation never sees them, off by default changes nothing)."""

import hashlib

import numpy as np
import pytest

from datasets.pipeline.augment import (
    AugmentConfig,
    apply_affine,
    augment_clip,
    crop_indices,
    random_affine,
    rotation_matrix,
    scale_matrix,
    shear_matrix,
)
from datasets.pipeline.clips import SkeletonClips
from datasets.sources.synthetic import make_synthetic
from datasets.store.annotations import pack_annotations
from datasets.store.layouts import COCO17, KINECT20
from opts import parse_args, settings

# A 3D chain of 4 joints (metres), 5 frames, one person: bones 0-1, 1-2, 2-3.
CHAIN = ((0, 1), (1, 2), (2, 3))


def chain_clip(frames: int = 5) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(frames, dtype=np.float32)[:, None]
    kp = np.stack(
        [np.c_[t * 0 + 1.0, t * 0 + 2.0, t * 0 + 3.0], np.c_[1.3 + 0 * t, 2.4 + 0.1 * t, 3.0 + 0 * t],
         np.c_[1.3 + 0 * t, 2.9 + 0 * t, 3.2 - 0.05 * t], np.c_[1.1 + 0.02 * t, 3.0 + 0 * t, 3.2 + 0 * t]],
        axis=1,
    )[None]  # (1, T, 4, 3)  # fmt: skip
    return kp.astype(np.float32), np.ones(kp.shape[:3], np.float32)


def bone_lengths(kp: np.ndarray) -> np.ndarray:
    return np.stack([np.linalg.norm(kp[..., a, :] - kp[..., b, :], axis=-1) for a, b in CHAIN], -1)


def test_rotation_preserves_bone_lengths_and_is_the_identity_at_zero_degrees():
    kp, score = chain_clip()
    rng = np.random.default_rng(0)
    for _ in range(5):
        out = apply_affine(kp, score, random_affine(AugmentConfig(rotate=90), 3, rng))
        np.testing.assert_allclose(bone_lengths(out), bone_lengths(kp), rtol=1e-5)
        assert np.abs(out - kp).max() > 0.01  # it did rotate
    same, _ = augment_clip(kp, score, AugmentConfig(), 5, np.random.default_rng(1))
    np.testing.assert_array_equal(same, kp)
    zero = apply_affine(kp, score, random_affine(AugmentConfig(rotate=0), 3, np.random.default_rng(2)))
    np.testing.assert_array_equal(zero, kp)


def test_rotation_matrices_by_hand():
    np.testing.assert_allclose(rotation_matrix([90]) @ [1, 0], [0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix([0, 0, 90]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)  # about z
    np.testing.assert_allclose(rotation_matrix([90, 0, 0]) @ [0, 1, 0], [0, 0, 1], atol=1e-12)  # about x
    np.testing.assert_allclose(rotation_matrix([0, 90, 0]) @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # about y
    r = rotation_matrix([10, -20, 30])
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_scale_and_shear_matrices():
    np.testing.assert_array_equal(scale_matrix([2.0, 0.5]), [[2, 0], [0, 0.5]])
    np.testing.assert_array_equal(shear_matrix([0.1, -0.2], 2), [[1, 0.1], [-0.2, 1]])
    np.testing.assert_array_equal(
        shear_matrix([1, 2, 3, 4, 5, 6], 3), [[1, 1, 2], [3, 1, 4], [5, 6, 1]]
    )  # row by row, off the diagonal
    # Scale alone: a diagonal matrix with factors in [1 - s, 1 + s]; shear alone: unit diagonal.
    a = random_affine(AugmentConfig(scale=0.2), 3, np.random.default_rng(0))
    assert np.count_nonzero(a - np.diag(np.diag(a))) == 0 and (np.abs(np.diag(a) - 1) <= 0.2).all()
    h = random_affine(AugmentConfig(shear=0.3), 2, np.random.default_rng(0))
    np.testing.assert_array_equal(np.diag(h), [1, 1])
    assert 0 < np.abs(h[0, 1]) <= 0.3 and 0 < np.abs(h[1, 0]) <= 0.3


def test_affine_acts_about_the_centre_of_the_visible_joints():
    kp = np.array([[[[0.0, 0.0], [10.0, 0.0], [0.0, 0.0], [10.0, 20.0]]]], np.float32)  # (1, 1, 4, 2)
    score = np.array([[[1, 1, 0, 1]]], np.float32)  # joint 2 is missing; joint 0 is all-zero: missing too
    out = apply_affine(kp, score, scale_matrix([2.0, 2.0]))
    # The visible joints (1 and 3) span x 10..10, y 0..20: centre (10, 10).
    np.testing.assert_allclose(out[0, 0, 1], [10, -10])
    np.testing.assert_allclose(out[0, 0, 3], [10, 30])
    assert (out[0, 0, [0, 2]] == 0).all()


def test_temporal_crop_length_and_order():
    rng = np.random.default_rng(0)
    for frames, out_len in ((100, 32), (10, 32), (32, 32), (1, 8)):
        for _ in range(20):
            ids = crop_indices(frames, 0.5, out_len, rng)
            assert ids.shape == (out_len,) and ids.dtype == np.int64
            assert (np.diff(ids) >= 0).all() and ids.min() >= 0 and ids.max() < frames
            # A contiguous crop of at least half the frames, evenly covered.
            assert ids.max() - ids.min() + 1 >= min(out_len, round(0.5 * frames)) - 1
    np.testing.assert_array_equal(crop_indices(32, 1.0, 32, rng), np.arange(32))  # whole clip, same length
    np.testing.assert_array_equal(crop_indices(8, 1.0, 4, rng), [1, 3, 5, 7])  # floor((i + 1/2) * 8 / 4)


def test_missing_joints_stay_missing():
    kp, score = chain_clip(12)
    kp[0, 3, 2] = 0  # all-zero joint
    score[0, 3, 2] = 0
    score[0, 7, 1] = 0  # zero score: its coordinates stay, it is missing by its score
    cfg = AugmentConfig(rotate=30, scale=0.2, shear=0.2)
    out, out_score = augment_clip(kp, score, cfg, 12, np.random.default_rng(0))
    assert (out[0, 3, 2] == 0).all() and (out_score == score).all()
    np.testing.assert_array_equal(out[0, 7, 1], kp[0, 7, 1])
    crop = AugmentConfig(rotate=30, temporal_crop=0.3)
    for seed in range(10):
        out, out_score = augment_clip(kp, score, crop, 20, np.random.default_rng(seed))
        ids = crop_indices(12, 0.3, 20, np.random.default_rng(seed))  # the crop draws first
        np.testing.assert_array_equal(out_score, score[:, ids])  # whole frames, scores with them
        zero = np.abs(kp[:, ids]).sum(-1) == 0
        assert zero.any() == (3 in ids) and (out[zero] == 0).all() and (np.abs(out).sum(-1) == 0).sum() == zero.sum()


def test_2d_clips_get_one_in_plane_angle_and_keep_their_dtype():
    kp = np.array([[[[100, 200], [150, 260], [0, 0]]]], np.float16)  # (1, 1, 3, 2) pixels, float16 as pyskl's
    score = np.array([[[1, 1, 0]]], np.float16)
    out, _ = augment_clip(kp, score, AugmentConfig(rotate=20), 1, np.random.default_rng(0))
    assert out.dtype == np.float16 and (out[0, 0, 2] == 0).all()
    d0, d1 = (
        np.linalg.norm(np.diff(kp[0, 0, :2].astype(float), axis=0)),
        np.linalg.norm(np.diff(out[0, 0, :2].astype(float), axis=0)),
    )
    assert d1 == pytest.approx(d0, rel=2e-3)


def test_determinism_per_seed():
    kp, score = chain_clip(30)
    cfg = AugmentConfig(rotate=20, scale=0.1, shear=0.1, temporal_crop=0.5)
    a = augment_clip(kp, score, cfg, 16, np.random.default_rng([3, 1, 7]))[0]
    b = augment_clip(kp, score, cfg, 16, np.random.default_rng([3, 1, 7]))[0]
    c = augment_clip(kp, score, cfg, 16, np.random.default_rng([4, 1, 7]))[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_config_rejects_bad_ranges():
    for bad in ({"rotate": -1}, {"rotate": 200}, {"scale": 1.0}, {"shear": -0.1}, {"temporal_crop": 0}):
        with pytest.raises(ValueError):
            AugmentConfig(**bad)
    assert not AugmentConfig().enabled and AugmentConfig(temporal_crop=0.9).enabled


# -- the training clips


def synthetic_store():
    return pack_annotations(make_synthetic(num_classes=3, clips_per_class_per_subject=1, num_subjects=2, seed=0,
                                           max_frames=60))  # fmt: skip


def store_3d():
    rng = np.random.default_rng(5)
    anns = []
    for i in range(4):
        t = 20 + 7 * i
        kp = rng.normal(size=(1, t, 20, 3)).astype(np.float32)
        kp[0, 3, 4] = 0
        anns.append({"frame_dir": f"a{i:02d}_s01_e01", "label": i % 2, "total_frames": t, "keypoint": kp,
                     "img_shape": (0, 0)})  # fmt: skip
    return pack_annotations({"split": {"train": [a["frame_dir"] for a in anns]}, "annotations": anns,
                             "layout": "kinect20"})  # fmt: skip


def digest(ds, n=4, epochs=(0, 1)) -> str:
    h = hashlib.sha256()
    for e in epochs:
        ds.set_epoch(e)
        for i in range(n):
            item = ds[i]
            for k in sorted(item):
                h.update(k.encode())
                h.update(np.ascontiguousarray(item[k]).tobytes())
    return h.hexdigest()[:16]


# Digests of training items measured with the code before the augmentations existed (commit ccf01de), so
# "off by default" means the same clips bit for bit, not only the same code path.
GOLDEN = {
    "pose2d": "8c2a06074c770e8f",
    "pose2d_corr": "ae3421345e6e9d76",
    "mb2d": "0cae3beb03f30035",
    "mb3d": "d818d1ff96c5305b",
    "pose3d": "5361b0b0c0172b65",
}


@pytest.mark.parametrize("augment", [None, AugmentConfig()])
def test_default_training_clips_are_unchanged_bit_for_bit(augment):
    syn, s3 = synthetic_store(), store_3d()
    idx = np.arange(4)
    cases = {
        "pose2d": SkeletonClips(syn, idx, reads="volume", train=True, clip_len=12, layout=COCO17, input_size=32,
                                noise_alpha=0.02, noisy_view=True, seed=3, augment=augment),
        "pose2d_corr": SkeletonClips(syn, idx, reads="volume", train=True, clip_len=12, layout=COCO17, input_size=32,
                                     noisy_view=True, seed=3, augment=augment,
                                     corruptions=(("missing_joints", 0.2), ("frame_drop", 0.5), ("jitter", 0.02))),
        "mb2d": SkeletonClips(syn, idx, reads="joints", train=True, clip_len=12, layout=COCO17,
                              noise_alpha=0.02, noisy_view=True, seed=3, augment=augment),
        "mb3d": SkeletonClips(s3, idx, reads="joints", train=True, clip_len=12, layout=KINECT20,
                              noisy_view=True, seed=3, corruptions=(("jitter", 0.02), ("block_drop", 0.5)),
                              augment=augment),
        "pose3d": SkeletonClips(s3, idx, reads="volume", train=True, clip_len=12, layout=KINECT20, input_size=32,
                                noise_alpha=0.02, noisy_view=True, seed=3, augment=augment),
    }  # fmt: skip
    assert {name: digest(ds) for name, ds in cases.items()} == GOLDEN


def test_the_flags_are_off_by_default_and_reach_the_training_config():
    base = ["synthetic", "--device", "cpu"]
    assert settings(parse_args(base))[0].augment == AugmentConfig()
    args = parse_args([*base, "--aug_rotate", "15", "--aug_scale", "0.1", "--aug_shear", "0.2",
                       "--aug_temporal_crop", "0.5"])  # fmt: skip
    assert settings(args)[0].augment == AugmentConfig(rotate=15, scale=0.1, shear=0.2, temporal_crop=0.5)


@pytest.mark.parametrize("flag", [["--aug_rotate", "190"], ["--aug_scale", "1"], ["--aug_temporal_crop", "0"]])
def test_bad_flags_stop_with_one_line(capsys, flag):
    with pytest.raises(SystemExit) as e:
        parse_args(["synthetic", *flag])
    assert e.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("reads", ["volume", "joints"])
def test_both_views_share_the_augmentation_and_evaluation_has_none(reads):
    s3 = store_3d()
    idx = np.arange(4)
    cfg = AugmentConfig(rotate=30, scale=0.2, shear=0.1, temporal_crop=0.5)
    kw = {"reads": reads, "clip_len": 12, "layout": KINECT20, "input_size": 32, "seed": 3}
    # Jitter of alpha 0 is no corruption: the two views must then be equal, augmentation included.
    aug = SkeletonClips(s3, idx, train=True, noise_alpha=0.0, noisy_view=True, augment=cfg, **kw)
    plain = SkeletonClips(s3, idx, train=True, noise_alpha=0.0, noisy_view=True, **kw)
    for i in range(4):
        item, ref = aug[i], plain[i]
        np.testing.assert_array_equal(item["keypoint"], item["noisy_keypoint"])
        assert not np.array_equal(item["keypoint"], ref["keypoint"])  # and it did augment
    # A corrupted view differs from the clean one only by the corruption: its visible joints are the clean
    # ones moved by the jitter (3D noise std 0.02 x diagonal), not by another rotation.
    noisy = SkeletonClips(s3, idx, train=True, noise_alpha=0.02, noisy_view=True, augment=cfg, **kw)
    if reads == "joints":
        item = noisy[1]
        np.testing.assert_array_equal(item["keypoint"], aug[1]["keypoint"])
        assert 0 < np.abs(item["noisy_keypoint"] - item["keypoint"]).mean() < 0.1
    test_aug = SkeletonClips(s3, idx, train=False, augment=cfg, **kw)
    test_plain = SkeletonClips(s3, idx, train=False, **kw)
    for i in range(4):
        np.testing.assert_array_equal(test_aug[i]["keypoint"], test_plain[i]["keypoint"])


def test_augmented_items_depend_only_on_seed_epoch_and_clip():
    """What a resumed run relies on: an item is the same whatever was drawn before it."""
    s3 = store_3d()
    cfg = AugmentConfig(rotate=30, temporal_crop=0.5)
    kw = {"reads": "joints", "train": True, "clip_len": 12, "layout": KINECT20, "augment": cfg}
    a = SkeletonClips(s3, np.arange(4), seed=3, **kw)
    for e in range(3):  # a long-running dataset ...
        a.set_epoch(e)
        _ = [a[i] for i in range(4)]
    b = SkeletonClips(s3, np.arange(4), seed=3, **kw)  # ... and a fresh one, as after a resume
    a.set_epoch(1)
    b.set_epoch(1)
    np.testing.assert_array_equal(a[2]["keypoint"], b[2]["keypoint"])
    a.set_epoch(2)
    assert not np.array_equal(a[2]["keypoint"], b[2]["keypoint"])
