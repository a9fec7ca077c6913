"""Joint layouts: every built-in one against its documented order, declared layouts (dicts, JSON files),
their one-line errors, and how a run chooses the layout of its data (--layout, the file, inference)."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict

import numpy as np
import pytest

import main as cli
from datasets.batch.streams import H36M_PARENTS
from datasets.sources.inputs import MEDIAPIPE_TO_COCO17
from datasets.store.annotations import pack_annotations
from datasets.store.layouts import (
    COCO17,
    H36M17,
    KINECT20,
    KINECT_SDK20,
    LAYOUTS,
    NTU25,
    Layout,
    LayoutError,
    choose_layout,
    definition,
    get_layout,
    layout_from_dict,
    parse_layout_arg,
)
from tests.conftest import error_line

# name: (joints, limbs) as documented by each source (datasets/store/layouts.py)
SIZES = {
    "coco17": (17, 17),
    "ntu25": (25, 24),
    "kinect20": (20, 19),
    "kinect_sdk20": (20, 19),
    "h36m17": (17, 16),
    "openpose18": (18, 17),
    "mediapipe33": (33, 39),
}


def test_the_built_in_layouts_are_the_requested_formats():
    assert set(LAYOUTS) == set(SIZES)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_every_built_in_layout_passes_validation(name):
    layout = LAYOUTS[name]
    layout.validate()
    layout.check_skeleton()  # limbs connect every joint, and each limb's mirror is a limb
    assert (layout.num_joints, len(layout.limbs)) == SIZES[name]
    assert len(layout.joints) == layout.num_joints
    # parts: every joint in exactly one
    assert sorted(j for _, part in layout.parts for j in part) == list(range(layout.num_joints))
    # a flip exchanges joints named left_X / right_X (X_left / X_right), and only those
    names = layout.joints
    for a, b in zip(layout.left, layout.right, strict=True):
        assert "left" in names[a] and names[a].replace("left", "right") == names[b], (names[a], names[b])
    unpaired = set(range(layout.num_joints)) - set(layout.left) - set(layout.right)
    assert not any("left" in names[j] or "right" in names[j] for j in unpaired)
    # a left part's joints mirror onto the right part's
    parts, order = dict(layout.parts), layout.flip_order()
    for side in ("arm", "leg"):
        assert sorted(order[j] for j in parts[f"left_{side}"]) == sorted(parts[f"right_{side}"])
    # a declaration of it (what files and checkpoints carry) is the same layout, through JSON too
    assert layout_from_dict(json.loads(json.dumps(layout.to_dict())), "json") == layout
    assert definition(layout) is None and get_layout(name) is layout


def test_limbs_join_the_joints_the_sources_connect():
    h36m = {frozenset((child, parent)) for child, parent in enumerate(H36M_PARENTS) if child != parent}
    assert {frozenset(limb) for limb in H36M17.limbs} == h36m
    named = lambda layout: {frozenset(layout.joints[j] for j in limb) for limb in layout.limbs}  # noqa: E731
    # MSR's Kinect-20 and the SDK's order are the same skeleton with the joints in another order
    assert named(KINECT20) == named(KINECT_SDK20)
    assert KINECT20.joints != KINECT_SDK20.joints and sorted(KINECT20.joints) == sorted(KINECT_SDK20.joints)
    # NTU-25 (Kinect v2) contains the SDK v1 skeleton under other names for the spine
    v2 = dict(
        zip(("hip_center", "spine", "shoulder_center"), ("spine_base", "spine_mid", "spine_shoulder"), strict=True)
    )
    renamed = {frozenset(v2.get(j, j) for j in limb) for limb in named(KINECT_SDK20)}
    assert renamed - named(NTU25) == {frozenset(("spine_shoulder", "head"))}  # v2 puts its neck joint between
    # mediapipe's landmarks that predict.py picks for COCO-17 carry COCO-17's names
    mp = LAYOUTS["mediapipe33"]
    assert tuple(mp.joints[i] for i in MEDIAPIPE_TO_COCO17) == COCO17.joints


STICK = {
    "name": "stick5",
    "joints": ["head", "left_hand", "right_hand", "left_foot", "right_foot"],
    "pairs": [["left_hand", "right_hand"], [3, 4]],
    "limbs": [["head", "left_hand"], ["head", "right_hand"], ["head", "left_foot"], ["head", "right_foot"]],
    "parts": {"head": ["head"], "arms": [1, 2], "legs": ["left_foot", "right_foot"]},
}


def test_weights_of_another_declared_layout_do_not_load_as_the_same_input():
    """--pretrained / --tune_from compare the input fields: a layout of the same name declared otherwise differs."""
    from engine.checkpoint import INPUT_FIELDS, config_differences
    from engine.config import resolve_run_config

    def cfg(layout):
        return resolve_run_config("poseconv3d", input_format="Heatmap", layout=layout, num_joints=5, coord_dim=2,
                                  num_classes=3, dropout=0.5, clip_len=8, input_size=32, max_persons=1)  # fmt: skip

    a, b = layout_from_dict(STICK, "a"), layout_from_dict({**STICK, "parts": {"all": [0, 1, 2, 3, 4]}}, "b")
    assert config_differences(asdict(cfg(a)), cfg(a), INPUT_FIELDS) == []
    diff = config_differences(asdict(cfg(a)), cfg(b), INPUT_FIELDS)
    assert diff and all(d.startswith("layout_def parts") for d in diff)


def test_declared_layout_by_names_or_indices():
    layout = layout_from_dict(STICK, "test")
    assert layout == Layout(
        "stick5", 5, (1, 3), (2, 4), ((0, 1), (0, 2), (0, 3), (0, 4)),
        (("head", (0,)), ("arms", (1, 2)), ("legs", (3, 4))), tuple(STICK["joints"]),
    )  # fmt: skip
    assert layout.flip_order() == [0, 2, 1, 4, 3]
    assert layout_from_dict(layout.to_dict(), "again") == layout
    assert definition(layout) == layout.to_dict()
    assert get_layout("stick5", layout.to_dict()) == layout
    # a pickled declaration may hold numpy integers
    assert layout_from_dict({**STICK, "pairs": [[np.int64(1), np.int32(2)], [3, 4]]}, "npy") == layout


def _with(**changes):
    return {**STICK, **changes}


BAD_DECLARATIONS = [
    ("not_a_dict", ["stick"], "a layout declaration is a dict"),
    ("missing_key", {k: v for k, v in STICK.items() if k != "parts"}, "missing: parts"),
    ("unknown_key", _with(bones=[]), "unknown: 'bones'"),
    ("unknown_key_not_a_string", {**STICK, 3: []}, "unknown: 3"),
    ("no_name", _with(name=""), "'name' must be a non-empty string"),
    ("no_joints", _with(joints=[]), "'joints' must be a non-empty list"),
    ("repeated_joint", _with(joints=["head", "head", "a", "b", "c"]), "joint name 'head' appears twice"),
    ("unknown_joint", _with(limbs=[["head", "tail"]]), "limbs names joint 'tail'"),
    ("index_out_of_range", _with(pairs=[[1, 9]]), "index in [0, 5)"),
    ("bool_index", _with(pairs=[[True, 2]]), "pairs has joint True"),
    ("not_a_pair", _with(limbs=[["head", "left_hand", "right_hand"]]), "must be a [joint, joint] pair"),
    ("pairs_overlap", _with(pairs=[[1, 2], [2, 3]]), "disjoint"),
    ("limb_to_itself", _with(limbs=[["head", "head"]]), "two distinct"),
    ("no_pairs", _with(pairs=[]), "'pairs' must be a non-empty list"),
    ("no_parts", _with(parts={}), "'parts' must be a non-empty dict"),
    ("empty_part", _with(parts={"head": []}), "part 'head' must be a non-empty"),
    (
        "not_connected",
        _with(limbs=[["head", "left_hand"], ["head", "right_hand"], ["left_foot", "right_foot"]]),
        "not connected to joint 0: (3 left_foot, 4 right_foot)",
    ),
    (
        "no_mirror",
        _with(
            limbs=[["head", "left_hand"], ["head", "right_hand"], ["head", "left_foot"], ["left_foot", "right_foot"]]
        ),
        "limb (0 head, 3 left_foot) has no mirror limb (0 head, 4 right_foot)",
    ),
    ("built_in_name", _with(name="coco17"), "'coco17' is a built-in layout"),
]


@pytest.mark.parametrize("spec,fragment", [c[1:] for c in BAD_DECLARATIONS], ids=[c[0] for c in BAD_DECLARATIONS])
def test_bad_declaration_is_one_line(spec, fragment):
    with pytest.raises(LayoutError) as e:
        layout_from_dict(spec, "my.json")
    msg = str(e.value)
    assert fragment in msg and msg.startswith("my.json") and "\n" not in msg


def test_layout_argument_names_a_built_in_or_a_json_file(tmp_path):
    assert parse_layout_arg("ntu25") is NTU25
    path = tmp_path / "stick.json"
    path.write_text(json.dumps(STICK))
    assert parse_layout_arg(str(path)).name == "stick5"
    for text, fragment in [
        ("kinect99", "unknown joint layout 'kinect99'; built in: coco17, ntu25"),
        (str(tmp_path / "absent.json"), "absent.json does not exist"),
    ]:
        with pytest.raises(LayoutError, match="--layout FILE.json") as e:
            parse_layout_arg(text)
        assert fragment in str(e.value)
    path.write_text("{'name': 1}")
    with pytest.raises(LayoutError, match="not a JSON layout declaration"):
        parse_layout_arg(str(path))
    with pytest.raises(LayoutError, match="unknown joint layout 'x'; built in: .*mediapipe33; or declare it"):
        get_layout("x")


# ---------------------------------------------------------------- which layout a run's data is in


def json_file(layout: Layout, folder) -> str:
    path = folder / f"{layout.name}.json"
    path.write_text(json.dumps(layout.to_dict()))
    return str(path)


def test_choose_layout_order(tmp_path):
    stick = layout_from_dict(STICK, "t")
    # --layout over nothing declared; a declared layout; a declared name; the dataset's
    assert choose_layout(25, 3, given="ntu25") == (NTU25, None)
    assert choose_layout(5, 2, declared=stick) == (stick, None)
    assert choose_layout(20, 3, declared="kinect_sdk20") == (KINECT_SDK20, None)
    assert choose_layout(17, 3, default="coco17") == (COCO17, None)
    # a file naming its layout, whose declaration comes with --layout
    assert choose_layout(5, 2, given=json_file(stick, tmp_path), declared="stick5")[0] == stick


@pytest.mark.parametrize(
    "v,c,expected",
    [(25, 3, "ntu25"), (18, 2, "openpose18"), (33, 2, "mediapipe33"), (17, 2, "coco17"), (25, 2, "ntu25")],
)
def test_inferred_only_when_the_joint_count_says_which(v, c, expected):
    layout, note = choose_layout(v, c, source="f.pkl")
    assert layout.name == expected and "f.pkl declares no joint layout" in note and "--layout" in note


@pytest.mark.parametrize(
    "v,c,fragments",
    [
        (17, 3, ["several built-in ones (coco17, h36m17)", "--layout coco17 or h36m17, or FILE.json"]),
        (20, 3, ["several built-in ones (kinect20, kinect_sdk20)", "--layout kinect20 or kinect_sdk20"]),
        (20, 2, ["kinect20, kinect_sdk20"]),
        (15, 3, ["no built-in one", "--layout FILE.json"]),
    ],
)
def test_ambiguous_or_unknown_joint_counts_say_what_to_pass(v, c, fragments):
    with pytest.raises(LayoutError) as e:
        choose_layout(v, c, source="f.pkl")
    msg = str(e.value)
    assert all(f in msg for f in fragments) and msg.startswith("f.pkl declares no joint layout") and "\n" not in msg


def test_choose_layout_errors(tmp_path):
    with pytest.raises(LayoutError, match=r"the data has 20 joints but layout coco17 \(--layout coco17\) has 17"):
        choose_layout(20, 2, given="coco17")
    with pytest.raises(LayoutError, match="--layout coco17 is 'coco17' but f.pkl declares 'kinect20'"):
        choose_layout(17, 2, given="coco17", declared="kinect20", source="f.pkl")
    with pytest.raises(LayoutError, match="f.pkl names joint layout 'stick5', which is not built in"):
        choose_layout(5, 2, declared="stick5", source="f.pkl")
    # the dataset's default does not hold when the joint count says otherwise: NTU's 3D file is NTU-25
    assert choose_layout(25, 3, default="coco17")[0] is NTU25
    other = layout_from_dict({**STICK, "parts": {"all": [0, 1, 2, 3, 4]}}, "t")
    with pytest.raises(LayoutError, match="declares layout 'stick5' differently from --layout"):
        choose_layout(5, 2, given=json_file(other, tmp_path), declared=layout_from_dict(STICK, "t"), source="f.pkl")


# ---------------------------------------------------------------- end to end through main.py


def kinect_sdk_file(tmp_path, layouts, file_layout=None, n=12):
    """3D clips of 20 joints; `layouts` gives each clip's 'layout' entry (cycled; None: no entry)."""
    rng = np.random.default_rng(0)
    anns = []
    for i in range(n):
        ann = {"frame_dir": f"c{i}", "label": i % 3, "total_frames": 10, "keypoint": rng.normal(size=(1, 10, 20, 3))}
        if layouts[i % len(layouts)] is not None:
            ann["layout"] = layouts[i % len(layouts)]
        anns.append(ann)
    data = {"split": {"xsub_train": [f"c{i}" for i in range(8)], "xsub_val": [f"c{i}" for i in range(8, n)]},
            "annotations": anns}  # fmt: skip
    if file_layout is not None:
        data["layout"] = file_layout
    path = tmp_path / "sdk.pkl"
    path.write_bytes(pickle.dumps(data))
    return path, data


def run_args(path, tmp_path, *extra):
    return ["custom", "--ann_file", str(path), "--run_dir", str(tmp_path), "--name", "r", "--epochs", "1",
            "--max_steps", "1", "-b", "4", "-j", "0", "--clip_len", "8", "--input_size", "32", "--input_f",
            "Skeleton", "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)", "--eval_alphas", "0",
            "--eval_corruptions", "swap:light", "--device", "cpu", *extra]  # fmt: skip


def test_per_clip_layout_names_are_read(tmp_path):
    """The issue's case: a Kinect SDK v1 dataset whose clips name their layout trains in that layout."""
    path, data = kinect_sdk_file(tmp_path, ["kinect_sdk20"])
    assert pack_annotations(data).layout == "kinect_sdk20"
    out = cli.main(run_args(path, tmp_path))
    assert out["robustness"] and out["robustness"][0]["clips"] == 4


@pytest.mark.parametrize(
    "layouts,file_layout,fragment",
    [
        (["kinect_sdk20", "kinect20"], None, "sample 'c1' declares layout 'kinect20' but sample 'c0' declares"),
        (["kinect_sdk20"], "kinect20", "sample 'c0' declares layout 'kinect_sdk20' but the file-level 'layout'"),
        ([STICK, {**STICK, "parts": {"all": [0, 1, 2, 3, 4]}}], None, "a different definition of 'stick5'"),
        ([None], "kinect99", "names joint layout 'kinect99', which is not built in"),
        ([None], None, "several built-in ones (kinect20, kinect_sdk20)"),
        ([None], {**STICK, "pairs": [[1, 1]]}, "disjoint"),
    ],
)
def test_disagreeing_or_unknown_layouts_stop_in_one_line(tmp_path, capsys, layouts, file_layout, fragment):
    path, _ = kinect_sdk_file(tmp_path, layouts, file_layout)
    with pytest.raises(SystemExit) as e:
        cli.main(run_args(path, tmp_path))
    msg = error_line(capsys, e)
    assert fragment in msg, msg


def test_clips_agreeing_by_name_and_declaration(tmp_path):
    stick = layout_from_dict(STICK, "t")
    anns = [{"frame_dir": f"c{i}", "label": 0, "keypoint": np.zeros((1, 3, 5, 3)), "layout": spec}
            for i, spec in enumerate(["stick5", STICK, dict(STICK)])]  # fmt: skip
    assert pack_annotations({"annotations": anns}).layout == stick
    assert pack_annotations({"annotations": anns[:1], "layout": STICK}).layout == stick


def test_layout_flag_declares_the_layout_a_file_only_names(tmp_path, capsys):
    """A file whose clips name a layout no code knows trains with --layout FILE.json; the checkpoint
    carries the declaration, so --evaluate needs neither."""
    path, _ = kinect_sdk_file(tmp_path, [None], file_layout="my_kinect")
    sdk = {**KINECT_SDK20.to_dict(), "name": "my_kinect"}
    (tmp_path / "my_kinect.json").write_text(json.dumps(sdk))
    cli.main(run_args(path, tmp_path, "--layout", str(tmp_path / "my_kinect.json")))
    ev = cli.main(run_args(path, tmp_path, "--evaluate", str(tmp_path / "r" / "last.pt"), "--layout",
                           str(tmp_path / "my_kinect.json")))  # fmt: skip
    assert ev["robustness"][0]["clips"] == 4
    # a layout of the same joint count but another order is refused at --evaluate
    with pytest.raises(SystemExit) as e:
        cli.main(run_args(path, tmp_path, "--evaluate", str(tmp_path / "r" / "last.pt"), "--layout", "kinect20"))
    assert "'kinect20' but" in error_line(capsys, e)
