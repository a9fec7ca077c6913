"""scripts/show_corruptions.py: the panels are the corrupt() outputs of the sweep's per-clip generators (the clean
panel is the clip, missing joints are hidden, temporal families keep the frames they say), and the script writes
a PNG of the grid's size for a tiny 2D synthetic clip, a tiny 3D NTU-25 clip and the default synthetic data."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets.pipeline.corruptions import FAMILIES, corrupt, corruption_rng
from datasets.pipeline.noise import visible_joints
from datasets.sources.synthetic import make_synthetic
from datasets.store.annotations import load_pickle, pack_annotations
from datasets.store.layouts import COCO17, NTU25
from tests.conftest import ROOT, error_line


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


show = load_script("show_corruptions")
LEVELS = ["clean", "light", "moderate", "severe"]


@pytest.fixture(scope="module")
def file_2d(tmp_path_factory) -> Path:
    """A tiny synthetic 2D COCO-17 file (float16 keypoints, as pyskl's): 4 clips of 12 to 16 frames."""
    data = make_synthetic(num_classes=2, clips_per_class_per_subject=1, num_subjects=2, min_frames=12, max_frames=16)
    path = tmp_path_factory.mktemp("data") / "tiny_2d.pkl"
    path.write_bytes(pickle.dumps(data))
    return path


@pytest.fixture(scope="module")
def file_3d(tmp_path_factory) -> Path:
    """A tiny 3D NTU-25 file in metres, without scores as NTU's Kinect files: two clips of 2 and 1 persons."""
    rng = np.random.default_rng(0)
    anns = []
    for i, persons in enumerate((2, 1)):
        kp = rng.normal(0, 0.3, (persons, 12, 25, 3)) + np.array([0.0, 0.0, 3.0])  # (M, T, V, 3)
        kp[0, 4, 7] = 0  # one joint missing in the source already
        anns.append({"frame_dir": f"S001C001P00{i + 1}R001A001", "label": i, "total_frames": 12,
                     "keypoint": kp.astype(np.float32)})  # fmt: skip
    data = {"split": {"xsub_val": [a["frame_dir"] for a in anns]}, "annotations": anns, "layout": "ntu25"}
    path = tmp_path_factory.mktemp("data") / "tiny_3d.pkl"
    path.write_bytes(pickle.dumps(data))
    return path


def png_shape(path: Path) -> tuple[int, int]:
    import matplotlib.image

    return matplotlib.image.imread(path).shape[:2]


def expected_shape(frames: int) -> tuple[int, int]:
    width, height = show.figure_size(len(FAMILIES), len(LEVELS), frames)
    return round(height * show.DPI), round(width * show.DPI)


def test_panels_are_the_sweep_clips_from_corrupt(file_2d):
    store = pack_annotations(load_pickle(file_2d))
    index = int(store.split_indices("xsub_val")[1])
    clip = store.get(index)
    kp, score = clip["keypoint"], clip["keypoint_score"]  # float16 (M, T, V, 2), float32 (M, T, V)
    panels = show.corruption_panels(clip, index, COCO17)
    assert [row[1].family for row in panels] == list(FAMILIES)
    assert all([p.level for p in row] == LEVELS for row in panels)
    clean = panels[0][0]
    np.testing.assert_array_equal(clean.keypoint, kp.astype(np.float32))
    np.testing.assert_array_equal(clean.keypoint_score, score)
    assert clean.kept.tolist() == list(range(kp.shape[1])) and not clean.changed.any()
    for row in panels:
        for panel in row[1:]:
            rng = corruption_rng(panel.family, panel.severity, index)
            want_kp, want_score = corrupt(kp, score, panel.family, panel.severity, rng, img_shape=clip["img_shape"],
                                          layout=COCO17)  # fmt: skip
            np.testing.assert_array_equal(panel.keypoint, want_kp)
            np.testing.assert_array_equal(panel.keypoint_score, want_score)
            if FAMILIES[panel.family].temporal:  # whole clean frames, the ones `kept` names
                np.testing.assert_array_equal(panel.keypoint, clean.keypoint[:, panel.kept])
                assert len(panel.kept) < kp.shape[1] and np.all(np.diff(panel.kept) > 0) and not panel.changed.any()

    hidden = panels[list(FAMILIES).index("missing_joints")][3]  # severe: p = 0.4
    seen, clean_seen = visible_joints(hidden.keypoint, hidden.keypoint_score), visible_joints(kp, score)
    assert seen.sum() < 0.8 * clean_seen.sum() and not (seen & ~clean_seen).any()  # hidden, never revived
    frame_rate = panels[list(FAMILIES).index("frame_rate")]
    for panel in frame_rate[1:]:
        assert set(np.diff(panel.kept).tolist()) == {int(panel.severity)}


def test_only_limbs_between_visible_joints_are_drawn():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots()
    visible = np.ones(17, bool)
    visible[[9, 0]] = False  # left wrist (1 limb) and nose (4: to both eyes and both shoulders)
    show.draw_skeleton(ax, np.random.default_rng(0).random((17, 2)), visible, COCO17, Rectangle((0, 0), 1, 1))
    (lines,) = ax.collections[:1]
    assert len(lines.get_segments()) == sum(visible[a] and visible[b] for a, b in COCO17.limbs) == len(COCO17.limbs) - 5
    assert len(ax.collections[1].get_offsets()) == 15
    plt.close(fig)


def test_grid_png_of_a_tiny_2d_synthetic_clip(file_2d, tmp_path, capsys):
    out = tmp_path / "grid.png"
    result = show.main(["--ann_file", str(file_2d), "--clip", "1", "--out", str(out)])
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    store = pack_annotations(load_pickle(file_2d))
    assert result["index"] == int(store.split_indices("xsub_val")[1])
    assert len(result["panels"]) == len(FAMILIES) and all(len(row) == len(LEVELS) for row in result["panels"])
    assert png_shape(out) == expected_shape(4)


def test_grid_png_of_a_tiny_3d_ntu25_clip_by_name(file_3d, tmp_path):
    out = tmp_path / "deep" / "grid_3d.png"  # folders are made
    result = show.main(["--ann_file", str(file_3d), "--clip", "S001C001P001R001A001", "--frames", "3",
                        "--out", str(out)])  # fmt: skip
    assert result["index"] == 0 and result["panels"][0][0].keypoint.shape == (2, 12, 25, 3)
    assert png_shape(out) == expected_shape(3)
    occluded = result["panels"][list(FAMILIES).index("occlusion")][3]  # f = 1: a part of NTU-25 in every frame
    assert any(not occluded.keypoint_score[:, :, list(joints)].any() for _, joints in NTU25.parts)


def test_default_is_the_synthetic_datas_first_test_clip(tmp_path):
    out = tmp_path / "grid.png"
    result = show.main(["--data_root", str(tmp_path), "--synthetic_clips", "1", "--out", str(out)])
    (path,) = (tmp_path / "synthetic").glob("*.pkl")
    store = pack_annotations(load_pickle(path))
    assert result["index"] == int(store.split_indices("xsub_val")[0]) and out.is_file()
    import opts  # the defaults are main.py's, so the picture shows the clips `python main.py synthetic` scores

    main_parser = opts.build_parser()
    for flag in ("synthetic_clips", "synthetic_seed", "data_root"):
        assert show.build_parser().get_default(flag) == main_parser.get_default(flag), flag


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--clip", "NOPE"], "has no clip named 'NOPE'"),
        (["--clip", "9"], "--clip 9: split 'xsub_val' of tiny_3d.pkl holds 2 clips (0 .. 1)"),
        (["--split", "xview_val"], "has no split 'xview_val' (its splits: xsub_val)"),
    ],
)
def test_a_clip_that_is_not_there_is_one_line(file_3d, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as excinfo:
        show.main(["--ann_file", str(file_3d), "--out", str(tmp_path / "x.png"), *argv])
    assert message in error_line(capsys, excinfo)
    assert not (tmp_path / "x.png").exists()
