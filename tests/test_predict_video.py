"""`datasets.sources.inputs.read_video` and `main.py predict --input VIDEO` with the real mediapipe 0.10.21.

Runs only where mediapipe is installed (`pip install mediapipe==0.10.21`, optional) and ../shared is
present: the reference keypoints are ../shared/data/ntu_samples/mediapipe/ntu_videos_mediapipe.pkl,
extracted offline from the same videos with the same mediapipe (legacy Pose, model_complexity=1).
tests/test_predict.py covers the same code with a stand-in mediapipe everywhere else.
"""

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")  # before the heavy imports: without it the module skips at once

from datasets.sources import inputs  # noqa: E402
from datasets.store.label_maps import class_names  # noqa: E402
from tests.conftest import shared_or_skip  # noqa: E402
from tests.test_predict import dump, run_predict, setup  # noqa: E402, F401  (setup: the tiny-checkpoint fixture)

# Tolerances against the offline extraction. On the machine that made the pickle, read_video reproduces it
# bit for bit (0 px, 0 score difference over all 103 + 72 frames). Other CPUs may take other SIMD kernels
# in TFLite/XNNPACK, and another OpenCV build may decode a few pixels differently; adding +-1 grey level of
# noise to every frame moved the joints by 0.16 px on average (2.7 px at most) and the scores by 0.075 at
# most, so these bounds allow that much and more. They still catch every plausible bug: BGR fed as RGB
# (281 px mean), width and height swapped (586 px), static_image_mode=True (2.5 px mean), landmark
# smoothing off (0.81 px mean), a wrong joint order (hundreds of px) or a dropped/added frame (shape).
MEAN_PX, MAX_PX = 0.5, 8.0  # Euclidean distance per joint, pixels of the 1920 x 1080 frame
MEAN_SCORE, MAX_SCORE = 0.005, 0.15  # |visibility difference|
# (reference frame_dir in the pickle, video file name)
VIDEOS = [("S001C001P001R001A001", "S001C001P001R001A001_rgb.avi"), ("ntu_sample", "ntu_sample.avi")]


@pytest.fixture(scope="module")
def reference() -> dict:
    """The offline mediapipe annotations by frame_dir."""
    path = shared_or_skip("data", "ntu_samples", "mediapipe", "ntu_videos_mediapipe.pkl")
    with open(path, "rb") as f:
        return {a["frame_dir"]: a for a in pickle.load(f)["annotations"]}


def video_path(name: str) -> Path:
    return shared_or_skip("data", "ntu_samples", "videos", name)


def assert_close_to_reference(ann: dict, ref: dict) -> None:
    t = ref["total_frames"]
    assert (
        ann["total_frames"] == t
        and ann["keypoint"].shape == (1, t, 17, 2)
        and ann["keypoint_score"].shape == (1, t, 17)
    )
    assert ann["keypoint"].dtype == np.float32 and ann["keypoint_score"].dtype == np.float32
    assert ann["img_shape"] == tuple(ref["img_shape"]) == (1080, 1920)
    dist = np.linalg.norm(ann["keypoint"] - ref["keypoint"], axis=-1)  # (1, T, 17) pixels
    assert dist.mean() < MEAN_PX and dist.max() < MAX_PX, (dist.mean(), dist.max())
    ds = np.abs(ann["keypoint_score"] - ref["keypoint_score"])
    assert ds.mean() < MEAN_SCORE and ds.max() < MAX_SCORE, (ds.mean(), ds.max())


@pytest.mark.parametrize("frame_dir, video", VIDEOS)
def test_video_keypoints_match_offline_mediapipe(reference, frame_dir, video):
    """Every frame, COCO-17 order, pixels of the full-HD frame, visibility scores: as extracted offline."""
    path = video_path(video)
    ann = inputs.read_video(path)
    assert ann["frame_dir"] == path.stem
    assert_close_to_reference(ann, reference[frame_dir])
    # The person is found in every frame (README: 103/103 and 72/72), near the frame's middle.
    assert (ann["keypoint_score"].sum(-1) > 0).all()
    assert 600 < np.median(ann["keypoint"][..., 0]) < 1300 and 200 < np.median(ann["keypoint"][..., 1]) < 900


def test_predict_video_end_to_end(setup, reference, tmp_path, capsys):  # noqa: F811
    """`main.py predict --input VIDEO` prints the top-5 of the one clip, and its probabilities are those of
    the same keypoints given as a pyskl pickle (the offline extraction): the video path adds nothing else."""
    path = video_path(VIDEOS[0][1])
    res = run_predict(setup, "--input", str(path))
    stdout = capsys.readouterr().out
    [(name, r)] = res.items()
    assert name == path.stem and r["label"] == -1
    probs = np.array(r["probs"])
    assert probs.shape == (12,) and abs(probs.sum() - 1) < 1e-5
    names = class_names("synthetic", 12)
    assert [c for c, _, _ in r["top5"]] == list(np.argsort(-probs, kind="stable")[:5])
    assert all(n == names[c] and p == pytest.approx(probs[c]) for c, n, p in r["top5"])
    assert f"1 video(s) in {path.name}" in stdout and name in stdout
    for c, n, p in r["top5"]:
        assert f"{100 * p:5.1f}%  {c:>3d}  {n}" in stdout

    ref = {k: v for k, v in reference[VIDEOS[0][0]].items() if k in ("keypoint", "keypoint_score", "img_shape")}
    ref.update(frame_dir=name, total_frames=reference[VIDEOS[0][0]]["total_frames"])
    from_pickle = run_predict(setup, "--input", str(dump([ref], tmp_path / "offline.pkl")))
    # Moving every joint by 8 px on average (Gaussian noise) changed these probabilities by 3e-5 at most.
    np.testing.assert_allclose(probs, from_pickle[name]["probs"], atol=1e-4)


def test_missing_opencv_is_one_line(monkeypatch):
    """mediapipe installed without its dependencies: the error names the install line, no traceback."""
    monkeypatch.setitem(sys.modules, "cv2", None)  # import fails, installed or not
    with pytest.raises(inputs.InputError, match=r"OpenCV.*pip install mediapipe==0\.10\.21"):
        inputs.read_video(video_path(VIDEOS[0][1]))
