"""Input streams (datasets/batch/streams.py): bones and motions by hand, missing joints, the layouts' trees, and the
stream's way through rendering, MotionBERT inputs, the checkpoint and --evaluate."""

import numpy as np
import pytest
import torch

import main as cli
from datasets.batch.render import render
from datasets.batch.streams import H36M_PARENTS, STREAMS, joint_stream, joints_input_stream, parents
from datasets.store.layouts import COCO17, KINECT20, NTU25, Layout
from engine.config import RunConfig, resolve_run_config
from engine.data import model_input
from utils.errors import UserError

# A chain 0 - 1 - 2 (joint 0 the root), 2D, 3 frames: x (T, V, C).
CHAIN_PARENTS = (0, 0, 1)
X = np.array(
    [
        [[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]],
        [[0.5, 0.0], [1.0, 1.0], [3.0, 2.0]],
        [[0.5, 0.5], [2.0, 1.0], [3.0, 5.0]],
    ]
)  # (T=3, V=3, C=2)


def test_bone_of_a_chain_by_hand():
    bone = joint_stream(X, "bone", CHAIN_PARENTS)
    np.testing.assert_array_equal(bone[0], [[0, 0], [1, 0], [0, 2]])  # root 0; 1 - 0; 2 - 1
    np.testing.assert_array_equal(bone[1], [[0, 0], [0.5, 1], [2, 1]])
    np.testing.assert_array_equal(bone[2], [[0, 0], [1.5, 0.5], [1, 4]])


def test_motion_by_hand_last_frame_zero():
    motion = joint_stream(X, "joint_motion", CHAIN_PARENTS)
    np.testing.assert_array_equal(motion[0], X[1] - X[0])
    np.testing.assert_array_equal(motion[1], X[2] - X[1])
    np.testing.assert_array_equal(motion[2], 0)
    bone_motion = joint_stream(X, "bone_motion", CHAIN_PARENTS)
    bone = joint_stream(X, "bone", CHAIN_PARENTS)
    np.testing.assert_array_equal(bone_motion[:2], bone[1:] - bone[:2])
    np.testing.assert_array_equal(bone_motion[2], 0)
    assert joint_stream(X, "joint", CHAIN_PARENTS) is X


def test_missing_joints_zero_their_bones_and_motions():
    x = X.copy()
    missing = np.zeros((3, 3), bool)
    missing[1, 1] = True  # joint 1 lost in frame 1
    x[1, 1] = 0
    bone = joint_stream(x, "bone", CHAIN_PARENTS, missing)
    np.testing.assert_array_equal(bone[1], [[0, 0], [0, 0], [0, 0]])  # its bone and its child's
    np.testing.assert_array_equal(bone[0], joint_stream(X, "bone", CHAIN_PARENTS)[0])
    motion = joint_stream(x, "joint_motion", CHAIN_PARENTS, missing)
    assert (motion[0, 1] == 0).all() and (motion[1, 1] == 0).all()  # into and out of the gap
    np.testing.assert_array_equal(motion[0, 2], X[1, 2] - X[0, 2])
    bone_motion = joint_stream(x, "bone_motion", CHAIN_PARENTS, missing)
    assert (bone_motion[0, 1:] == 0).all() and (bone_motion[1, 1:] == 0).all()


def test_numpy_and_torch_agree_with_batch_dimensions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5, 17, 2))  # (N, M, T, V, C)
    missing = rng.random((2, 3, 5, 17)) < 0.2
    x[missing] = 0
    p = parents(COCO17)
    for name in STREAMS:
        a = joint_stream(x, name, p, missing)
        b = joint_stream(torch.from_numpy(x), name, p, torch.from_numpy(missing))
        np.testing.assert_allclose(b.numpy(), a, atol=1e-12)
        assert a.shape == x.shape


def test_parents_of_the_layouts():
    assert parents(COCO17)[:7] == (0, 0, 0, 1, 2, 0, 0)  # root: the nose; eyes, shoulders on it
    ntu = parents(NTU25)
    assert ntu[20] == 20 and ntu[1] == 20 and ntu[0] == 1 and ntu[3] == 2 and ntu[7] == 6 and ntu[21] == 7
    kin = parents(KINECT20)
    assert kin[2] == 2 and kin[19] == 2 and kin[6] == 3 and kin[12] == 10
    for layout in (COCO17, NTU25, KINECT20):  # a tree: every joint reaches the root
        p = parents(layout)
        for v in range(layout.num_joints):
            for _ in range(layout.num_joints):
                v = p[v]
            assert p[v] == v
    lone = Layout("lone", 4, (), (), ((0, 1), (1, 2)))
    assert parents(lone) == (1, 1, 1, 3)  # joint 3 has no limb: its own parent
    assert H36M_PARENTS[0] == 0 and H36M_PARENTS[10] == 9 and H36M_PARENTS[13] == 12


def test_skeleton_rendering_streams_the_mapped_coordinates_and_its_flip():
    gen = torch.Generator().manual_seed(0)
    kp = torch.rand(2, 1, 4, 17, 2, generator=gen) * 64  # (N, M, T, V, 2) pixels of a 64 x 64 frame
    score = torch.rand(2, 1, 4, 17, generator=gen)
    score[0, 0, 1, 5] = 0  # a missing shoulder
    joint = render("Skeleton", kp, score, (64, 64)).reshape(2, 1, 17, 2, 4).permute(0, 1, 4, 2, 3)
    for name in ("bone", "joint_motion", "bone_motion"):
        x = render("Skeleton", kp, score, (64, 64), stream=name)
        want = joint_stream(joint, name, parents(COCO17), (score <= 0))
        np.testing.assert_allclose(x.reshape(2, 1, 17, 2, 4).permute(0, 1, 4, 2, 3), want, atol=1e-6)
        double = render("Skeleton", kp, score, (64, 64), stream=name, double=True)
        np.testing.assert_allclose(double[0::2], x, atol=1e-6)
    bone = render("Skeleton", kp, score, (64, 64), stream="bone").reshape(2, 1, 17, 2, 4)
    assert (bone[0, 0, [5, 7, 11], :, 1] == 0).all()  # the shoulder's bone and its children's
    with pytest.raises(ValueError, match="coordinate inputs"):
        render("Heatmap", kp, score, (16, 16), stream="bone")


def test_motionbert_inputs_3d_all_channels_2d_keeps_the_score():
    x = torch.randn(2, 2, 6, 20, 3)  # (B, M, T, V, 3)
    x[:, 1] = 0  # an absent second person
    out = joints_input_stream(x, "bone", KINECT20, 3)
    np.testing.assert_allclose(out, joint_stream(x, "bone", parents(KINECT20), (x == 0).all(-1)))
    assert (out[:, 1] == 0).all()
    x2 = torch.randn(2, 2, 6, 17, 3)
    out2 = joints_input_stream(x2, "joint_motion", COCO17, 2)
    torch.testing.assert_close(out2[..., 2], x2[..., 2])  # the score channel stays
    torch.testing.assert_close(out2[..., :2], joint_stream(x2[..., :2], "joint_motion", H36M_PARENTS))
    cfg = RunConfig(model_name="motionbert", model_cfg={}, reads="joints", input_format="Skeleton",
                    clip_len=6, input_size=56, max_persons=2, layout="kinect20", num_classes=3, coord_dim=3,
                    stream="bone")  # fmt: skip
    torch.testing.assert_close(model_input(x, None, cfg), out)


def test_a_stream_needs_a_coordinate_input(capsys):
    kw = {"layout": COCO17, "num_joints": 17, "coord_dim": 2, "num_classes": 3, "dropout": 0.0, "clip_len": 8,
          "input_size": 32, "max_persons": 2}  # fmt: skip
    with pytest.raises(UserError, match="--input_f Skeleton"):
        resolve_run_config("poseconv3d", input_format="Heatmap", stream="bone", **kw)
    assert resolve_run_config("poseconv3d", input_format="Skeleton", stream="bone", **kw).stream == "bone"
    assert resolve_run_config("motionbert", input_format="Skeleton", stream="bone_motion", **kw).stream == "bone_motion"
    with pytest.raises(SystemExit) as e:
        cli.main(["synthetic", "--input_f", "Limb", "--stream", "bone"])
    assert e.value.code == 2 and "--stream bone is for coordinate inputs" in capsys.readouterr().err
