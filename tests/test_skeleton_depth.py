"""PoseConv3D's Skeleton input reads all coordinates of 3D data: each joint's depth rides along as a third
coordinate through frame sampling, crop, resize and flip, and becomes a third input channel per joint."""

from __future__ import annotations

import numpy as np
import torch

from datasets.batch.render import input_channels, render
from datasets.pipeline.clips import SkeletonClips, project_3d
from datasets.store.annotations import pack_annotations
from datasets.store.layouts import NTU25
from engine.config import resolve_run_config


def _store_3d(n: int = 3, frames: int = 20):
    rng = np.random.default_rng(1)
    anns = [{"frame_dir": f"S001C001P001R001A{i + 1:03d}", "label": i, "total_frames": frames,
             "keypoint": (rng.normal(size=(1, frames, 25, 3)) * 0.3 + [0, 0, 3]).astype(np.float32)}
            for i in range(n)]  # fmt: skip
    return pack_annotations({"split": {"xsub_val": [a["frame_dir"] for a in anns]}, "annotations": anns})


def test_projection_keeps_depth_in_the_units_of_x_and_y():
    kp = np.zeros((1, 2, 3, 3), np.float32)
    kp[0, :, 0] = [0.0, 0.0, 2.0]
    kp[0, :, 1] = [0.5, 0.0, 2.5]  # 0.5 m right, 0.5 m deeper
    score = np.ones((1, 2, 3), np.float32)
    score[0, :, 2] = 0  # a missing joint
    flat, _ = project_3d(kp, score)
    deep, shape = project_3d(kp, score, depth=True)
    np.testing.assert_array_equal(deep[..., :2], flat)  # x, y as before
    # extent 0.5 m -> 800 px: 1600 px per metre; depth centred, in units of half the frame (500 px)
    np.testing.assert_allclose(deep[0, 0, :2, 2], [-0.25 * 1600 / 500, 0.25 * 1600 / 500], rtol=1e-6)
    assert (deep[0, :, 2] == 0).all() and shape == (1000, 1000)


def test_clips_carry_depth_and_the_input_has_three_channels_per_joint():
    store = _store_3d()
    kw = {"reads": "volume", "clip_len": 8, "layout": NTU25, "input_size": 32, "max_persons": 1}
    flat = SkeletonClips(store, np.arange(3), train=False, **kw)[0]["keypoint"]
    deep = SkeletonClips(store, np.arange(3), train=False, depth=True, **kw)[0]["keypoint"]
    assert flat.shape == (1, 1, 8, 25, 2) and deep.shape == (1, 1, 8, 25, 3)
    np.testing.assert_array_equal(deep[..., :2], flat)  # the same frames, crop and resize
    assert deep[..., 2].std() > 0
    train = SkeletonClips(store, np.arange(3), train=True, depth=True, noisy_view=True, noise_alpha=0.0, **kw)[1]
    np.testing.assert_array_equal(train["keypoint"], train["noisy_keypoint"])
    x = render("Skeleton", torch.from_numpy(deep[:, :]), torch.ones(1, 1, 8, 25), (32, 32), layout=NTU25)
    assert x.shape == (1, input_channels("Skeleton", 1, NTU25, depth=True), 8, 1, 1) == (1, 75, 8, 1, 1)
    np.testing.assert_allclose(x.view(1, 25, 3, 8)[0, :, 2].numpy(), deep[0, 0, :, :, 2].T, rtol=1e-6)
    both = render("Skeleton", torch.from_numpy(deep), torch.ones(1, 1, 8, 25), (32, 32), layout=NTU25, double=True)
    order = NTU25.flip_order()
    np.testing.assert_allclose(both[1].view(25, 3, 8)[:, 2].numpy(), both[0].view(25, 3, 8)[order, 2].numpy())


def test_run_configuration_of_3d_skeleton_input():
    kw = {"input_format": "Skeleton", "layout": NTU25, "num_joints": 25, "num_classes": 5, "dropout": 0.0,
          "clip_len": 8, "input_size": 32, "max_persons": 2}  # fmt: skip
    cfg = resolve_run_config("poseconv3d", coord_dim=3, **kw)
    assert cfg.skeleton_depth and cfg.model_cfg["in_channels"] == 2 * 25 * 3
    cfg = resolve_run_config("poseconv3d", coord_dim=2, **kw)
    assert not cfg.skeleton_depth and cfg.model_cfg["in_channels"] == 2 * 25 * 2
