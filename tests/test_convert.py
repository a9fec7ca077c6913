"""Converters from raw NTU RGB+D and MSR Action3D skeletons to pyskl annotation files."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from datasets.sources.convert import ConversionError, convert_msr, convert_ntu, main, write_pickle_atomic
from datasets.sources.msr_action3d import MSR_BROKEN, broken_reason, msr_clip, parse_msr_name, read_msr_skeleton
from datasets.sources.ntu_skeleton import (
    SkeletonFormatError,
    actor_arrays,
    assign_actors,
    ntu_splits,
    parse_ntu_name,
    read_ntu_skeleton,
)
from datasets.store.annotations import load_pickle, pack_annotations
from datasets.store.layouts import get_layout
from tests.conftest import FIXTURES, shared_or_skip

NTU_FIX = FIXTURES / "convert" / "ntu"
MSR_FIX = FIXTURES / "convert" / "msr"
TWO = "S001C003P008R002A058"  # two bodies; fixture = its first 12 frames
ONE = "S002C001P003R001A003"  # one body; fixture = its first 10 frames
ID_A, ID_B = "72057594037944738", "72057594037944734"  # TWO's bodies in file order

# Joint lines copied from the raw text of TWO: (body, frame, joint) -> 12 fields.
RAW_TWO = {
    (ID_A, 0, 0): "0.7201789 0.1647426 3.561895 336.5812 192.8021 1184.537 489.4118 -0.2218947 0.03421978 "
    "0.968875 -0.1042736 2",
    (ID_B, 0, 0): "-0.387201 -0.05403496 2.961099 214.7408 216.41 834.7666 559.0992 0.4557798 -0.05701343 "
    "0.8802808 -0.1188276 2",
    (ID_B, 11, 24): "-0.1943963 -0.03809368 3.24942 240.6951 214.02 908.3714 551.9038 0 0 0 0 1",
}


def raw(key: tuple[str, int, int]) -> np.ndarray:
    return np.array(RAW_TWO[key].split(), dtype=np.float64)


# ---------------------------------------------------------------- synthetic NTU files


def joint_block(rng: np.random.Generator, centre: np.ndarray, state: int = 2) -> np.ndarray:
    """(25, 12) joint fields around a 3D centre; colour pixels derived from x, y."""
    j = np.zeros((25, 12))
    j[:, :3] = centre + rng.normal(0, 0.1, (25, 3))
    j[:, 5] = 960 + 500 * j[:, 0]
    j[:, 6] = 540 - 500 * j[:, 1]
    j[:, 11] = state
    return j


def ntu_text(frames: list[list[tuple[str, np.ndarray]]]) -> str:
    """A raw .skeleton text: per frame a list of (body id, (25, 12) joints)."""
    out = [str(len(frames))]
    for bodies in frames:
        out.append(str(len(bodies)))
        for body_id, j in bodies:
            out += [f"{body_id} 0 1 1 1 1 0 0.01 -0.2 2", "25"]
            out += [" ".join(f"{v:.7g}" for v in row[:11]) + f" {int(row[11])}" for row in j]
    return "\n".join(out) + "\n"


def simple_ntu(n_frames: int = 3, seed: int = 0) -> list[str]:
    """Lines of a valid file with one body per frame: line 1 the frame count, frame f (0-based) has
    its body count at line 2 + 28 f, the joint count at 4 + 28 f, joints at 5 + 28 f ... 29 + 28 f."""
    rng = np.random.default_rng(seed)
    frames = [[("7", joint_block(rng, np.array([0.0, 0.0, 3.0])))] for _ in range(n_frames)]
    return ntu_text(frames).splitlines()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- layouts, names, splits


@pytest.mark.parametrize("name, v, bones", [("ntu25", 25, 24), ("kinect20", 20, 19)])
def test_layouts_are_trees_with_consistent_flips(name: str, v: int, bones: int) -> None:
    layout = get_layout(name)
    assert layout.num_joints == v and len(layout.limbs) == bones
    order = layout.flip_order()
    assert sorted(order) == list(range(v)) and [order[o] for o in order] == list(range(v))
    # v joints and v-1 bones form one connected tree
    reach, frontier = {0}, [0]
    while frontier:
        j = frontier.pop()
        for a, b in layout.limbs:
            for x, y in ((a, b), (b, a)):
                if x == j and y not in reach:
                    reach.add(y)
                    frontier.append(y)
    assert reach == set(range(v))
    # a flip maps limbs onto limbs
    assert {frozenset((order[a], order[b])) for a, b in layout.limbs} == {frozenset(limb) for limb in layout.limbs}


def test_ntu25_joint_order_matches_the_data() -> None:
    """Head above spine base; in brushing teeth the right hand (11) moves far more than the left (7)."""
    body = read_ntu_skeleton(NTU_FIX / f"{ONE}.skeleton").bodies[0]
    xyz = body.xyz
    assert (xyz[:, 3, 1] > xyz[:, 0, 1] + 0.5).all()
    full = shared_or_skip("data", "ntu_samples", "skeleton", f"{ONE}.skeleton")
    xyz = read_ntu_skeleton(full).bodies[0].xyz
    assert xyz[:, 11].std(0).sum() > 3 * xyz[:, 7].std(0).sum()


def test_ntu_names_labels_and_splits() -> None:
    n = parse_ntu_name(f"{TWO}.skeleton")
    assert (n.setup, n.camera, n.subject, n.replication, n.action, n.label) == (1, 3, 8, 2, 58, 57)
    assert ntu_splits(n, "ntu60") == {"xsub": "train", "xview": "train"}
    assert ntu_splits(parse_ntu_name("S001C001P003R001A001"), "ntu60") == {"xsub": "val", "xview": "val"}
    assert ntu_splits(parse_ntu_name("S001C002P038R001A001"), "ntu60") == {"xsub": "train", "xview": "train"}
    assert ntu_splits(parse_ntu_name("S018C001P045R001A061"), "ntu120") == {"xsub": "train", "xset": "train"}
    assert ntu_splits(parse_ntu_name("S017C001P044R001A061"), "ntu120") == {"xsub": "val", "xset": "val"}
    assert ntu_splits(parse_ntu_name("S032C003P106R002A120"), "ntu120") == {"xsub": "val", "xset": "train"}
    assert ntu_splits(parse_ntu_name("S031C003P103R002A120"), "ntu120") == {"xsub": "train", "xset": "val"}
    with pytest.raises(ValueError, match="not an NTU clip name"):
        parse_ntu_name("S1C1P1R1A1")


# ---------------------------------------------------------------- NTU reader on real data


def test_read_real_ntu_fixture_values() -> None:
    sk = read_ntu_skeleton(NTU_FIX / f"{TWO}.skeleton")  # CRLF line ends, as the originals
    assert sk.num_frames == 12 and [b.body_id for b in sk.bodies] == [ID_A, ID_B]
    a, b = sk.bodies
    assert a.joints.shape == b.joints.shape == (12, 25, 12)
    np.testing.assert_array_equal(a.frames, np.arange(12))
    np.testing.assert_array_equal(a.joints[0, 0], raw((ID_A, 0, 0)))
    np.testing.assert_array_equal(b.joints[0, 0], raw((ID_B, 0, 0)))
    np.testing.assert_array_equal(b.joints[11, 24], raw((ID_B, 11, 24)))
    assert b.tracking[11, 24] == 1 and b.tracking[0, 0] == 2


@pytest.mark.parametrize(
    "name, frames, bodies",
    [
        ("S001C001P001R001A011", 82, 1),
        (TWO, 70, 2),
        (ONE, 100, 1),
        ("S003C001P015R001A034", 71, 1),
        ("S004C002P003R001A017", 124, 1),
    ],
)
def test_read_real_ntu_files(name: str, frames: int, bodies: int) -> None:
    """Counts from the README of ../shared/data/ntu_samples; the fixture is a prefix of the file."""
    sk = read_ntu_skeleton(shared_or_skip("data", "ntu_samples", "skeleton", f"{name}.skeleton"))
    assert sk.num_frames == frames and len(sk.bodies) == bodies
    assert all(len(b.frames) == frames for b in sk.bodies)
    if name in (TWO, ONE):
        crop = read_ntu_skeleton(NTU_FIX / f"{name}.skeleton")
        for full, part in zip(sk.bodies, crop.bodies, strict=True):
            np.testing.assert_array_equal(full.joints[: crop.num_frames], part.joints)


def pooled_motion(joints: np.ndarray) -> float:
    """Sum over x, y, z of the variance over all frames and joints, written out without numpy's var."""
    pts = joints[..., :3].reshape(-1, 3)
    return float((((pts - pts.mean(0)) ** 2).mean(0)).sum())


@pytest.mark.parametrize("full", [False, True])
def test_two_person_clip_keeps_both_bodies_most_moving_first(full: bool) -> None:
    path = shared_or_skip("data", "ntu_samples", "skeleton", f"{TWO}.skeleton") if full else NTU_FIX / f"{TWO}.skeleton"
    sk = read_ntu_skeleton(path)
    a, b = sk.bodies
    # The second body in file order moves more (0.237 vs 0.198 m^2 on the full clip), so it comes first.
    assert pooled_motion(b.joints) > pooled_motion(a.joints)
    kp, score = actor_arrays(sk)
    assert score is None and kp.dtype == np.float32 and kp.shape == (2, sk.num_frames, 25, 3)
    np.testing.assert_allclose(kp[0], b.xyz, rtol=1e-6)
    np.testing.assert_allclose(kp[1], a.xyz, rtol=1e-6)
    if not full:
        np.testing.assert_allclose(kp[0, 0, 0], raw((ID_B, 0, 0))[:3], rtol=1e-6)
        np.testing.assert_allclose(kp[1, 0, 0], raw((ID_A, 0, 0))[:3], rtol=1e-6)


def test_actor_assignment_merges_id_changes_and_drops_overlaps_and_empty_frames(tmp_path: Path) -> None:
    """Bodies: A frames 1-5 (moves most), B frames 6-10 (same person, new id), D frames 4-7, C frames
    1-10 (still); frames 0 and 11 have no body. Expected: actor 0 = A then B, actor 1 = D, C dropped."""
    rng = np.random.default_rng(1)
    amp = {"A": 1.0, "B": 0.8, "D": 0.4, "C": 0.02}
    span = {"A": range(1, 6), "B": range(6, 11), "D": range(4, 8), "C": range(1, 11)}
    frames = []
    for t in range(12):
        bodies = []
        for body_id in "ABCD":
            if t in span[body_id]:
                state = 1 if (body_id, t) == ("D", 5) else 2
                bodies.append((body_id, joint_block(rng, np.array([amp[body_id] * np.sin(t), 0, 3.0]), state)))
        frames.append(bodies)
    sk_path = tmp_path / "S001C001P001R001A001.skeleton"
    sk_path.write_text(ntu_text(frames))
    sk = read_ntu_skeleton(sk_path)
    actors = assign_actors(sk.bodies)
    assert [[b.body_id for b in actor] for actor in actors] == [["A", "B"], ["D"]]
    kp, score = actor_arrays(sk, two_d=True)
    assert kp.shape == (2, 10, 25, 2) and score.shape == (2, 10, 25)  # frames 0 and 11 dropped
    by_id = {b.body_id: b for b in sk.bodies}
    np.testing.assert_allclose(kp[0, :5], by_id["A"].color_xy, rtol=1e-6)
    np.testing.assert_allclose(kp[0, 5:], by_id["B"].color_xy, rtol=1e-6)
    np.testing.assert_allclose(kp[1, 3:7], by_id["D"].color_xy, rtol=1e-6)
    assert not kp[1, :3].any() and not kp[1, 7:].any() and not score[1, :3].any()
    assert (score[0] == 1.0).all() and (score[1, 4] == 0.5).all() and (score[1, 3] == 1.0).all()


# ---------------------------------------------------------------- NTU malformed input


def _corrupt(lines: list[str], kind: str) -> tuple[list[str], int, str]:
    """Return (lines, expected 1-based line, expected message part) for one kind of damage."""
    lines = list(lines)
    if kind == "truncated":
        return lines[:70], 70, "the file ends here, expected 25 joint lines in frame 3 of 3"
    if kind == "joint_count":
        lines[31] = "24"
        return lines, 32, "joint count is 24, expected 25"
    if kind == "non_numeric":
        lines[39] = lines[39].replace(" ", " abc ", 1)
        lines[39] = " ".join(lines[39].split()[:12])
        return lines, 40, "cannot read 'abc' as a number"
    if kind == "fields":
        lines[44] = " ".join(lines[44].split()[:11])
        return lines, 45, "expected 12 numbers, got 11"
    if kind == "header":
        lines[0] = "three"
        return lines, 1, "expected the frame count"
    if kind == "trailing":
        return lines + ["junk"], 86, "text after the last of the 3 frames"
    if kind == "tracking":
        lines[49] = lines[49][: lines[49].rfind(" ")] + " 3"
        return lines, 50, "tracking state 3 is not 0, 1 or 2"
    if kind == "bodies":
        lines[29] = "7"
        return lines, 30, "body count 7 in frame 2 of 3"
    if kind == "nan":
        lines[60] = "nan " + " ".join(lines[60].split()[1:])
        return lines, 61, "non-finite value"
    raise AssertionError(kind)


KINDS = ["truncated", "joint_count", "non_numeric", "fields", "header", "trailing", "tracking", "bodies", "nan"]


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_ntu_reports_file_and_line(tmp_path: Path, kind: str) -> None:
    good = simple_ntu()
    assert len(good) == 85
    read_ntu_skeleton(write(tmp_path / "S001C001P001R001A001.skeleton", good))  # the undamaged file reads
    lines, line, part = _corrupt(good, kind)
    path = write(tmp_path / "S001C001P002R001A001.skeleton", lines)
    with pytest.raises(SkeletonFormatError) as err:
        read_ntu_skeleton(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and part in str(err.value)


# ---------------------------------------------------------------- NTU conversion and CLI


def ntu_folder(tmp_path: Path, broken: bool = True) -> Path:
    """Both fixtures, a file with no body, a clip outside NTU60 and (broken) two malformed files."""
    src = tmp_path / "raw"
    src.mkdir(parents=True)
    for name in (TWO, ONE):
        shutil.copy(NTU_FIX / f"{name}.skeleton", src)
    write(src / "S001C001P001R001A005.skeleton", ["4", "0", "0", "0", "0"])
    write(src / "S018C001P045R001A061.skeleton", simple_ntu(seed=2))
    if broken:
        write(src / "S001C001P002R001A002.skeleton", _corrupt(simple_ntu(), "joint_count")[0])
        write(src / "S001C001P002R001A003.skeleton", _corrupt(simple_ntu(), "truncated")[0])
    return src


def test_convert_ntu_folder_reports_and_carries_on(tmp_path: Path) -> None:
    src = ntu_folder(tmp_path)
    lines = []
    conv = convert_ntu(src, "ntu60", report=lines.append)
    assert conv.problems == [
        f"{src}/S001C001P002R001A002.skeleton:32: joint count is 24, expected 25",
        f"{src}/S001C001P002R001A003.skeleton:70: the file ends here, expected 25 joint lines in frame 3 of 3 "
        "(truncated file?)",
    ]
    assert [(n, r) for n, r, _ in conv.skipped] == [
        ("S001C001P001R001A005", "no body in any frame"),
        ("S018C001P045R001A061", "not in ntu60"),
    ]
    assert len(lines) == 4  # one line per problem or skip, as they happen
    data = conv.data
    assert data["layout"] == "ntu25"
    assert data["split"] == {
        "xsub_train": [TWO],  # subject 8 trains, subject 3 does not
        "xsub_val": [ONE],
        "xview_train": [TWO],  # camera 3 trains, camera 1 does not
        "xview_val": [ONE],
    }
    store = pack_annotations(data, num_classes=60)
    assert store.names == [TWO, ONE] and store.labels.tolist() == [57, 2]
    assert store.persons.tolist() == [2, 1] and store.frames.tolist() == [12, 10]
    assert store.coord_dim == 3 and store.score is None
    np.testing.assert_allclose(store.get(0)["keypoint"][0, 11, 24], raw((ID_B, 11, 24))[:3], rtol=1e-6)

    with pytest.raises(ConversionError, match="S001C001P002R001A002.skeleton:32: joint count"):
        convert_ntu(src, "ntu60", strict=True)

    conv120 = convert_ntu(ntu_folder(tmp_path / "b", broken=False), "ntu120", missing={ONE})
    assert [a["frame_dir"] for a in conv120.data["annotations"]] == [TWO, "S018C001P045R001A061"]
    assert conv120.data["annotations"][1]["label"] == 60 and conv120.skipped[-1][1] == "in the missing-skeleton list"
    assert conv120.data["split"]["xset_train"] == ["S018C001P045R001A061"]  # even setup
    pack_annotations(conv120.data, num_classes=120)


def test_convert_ntu_2d(tmp_path: Path) -> None:
    conv = convert_ntu(NTU_FIX, "ntu60", two_d=True)
    store = pack_annotations(conv.data, num_classes=60)
    clip = store.get(0)
    assert clip["frame_dir"] == TWO and clip["keypoint"].shape == (2, 12, 25, 2)
    assert clip["img_shape"] == (1080, 1920)
    np.testing.assert_allclose(clip["keypoint"][0, 0, 0], raw((ID_B, 0, 0))[5:7], rtol=1e-6)
    np.testing.assert_allclose(clip["keypoint"][1, 0, 0], raw((ID_A, 0, 0))[5:7], rtol=1e-6)
    np.testing.assert_allclose(clip["keypoint"][0, 11, 24], raw((ID_B, 11, 24))[5:7], rtol=1e-6)
    assert clip["keypoint_score"][0, 11, 24] == 0.5 and clip["keypoint_score"][0, 0, 0] == 1.0
    assert set(np.unique(store.score)) <= {0.0, 0.5, 1.0}


def test_cli_ntu_strict_writes_nothing_and_normal_run_writes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = ntu_folder(tmp_path)
    out = tmp_path / "out" / "ntu.pkl"
    assert main(["ntu", str(src), str(out), "--strict"]) == 2
    [err] = capsys.readouterr().err.splitlines()  # one line, the first malformed file's
    assert f"{src}/S001C001P002R001A002.skeleton:32: joint count is 24" in err and "nothing written" in err
    assert err.startswith("python -m datasets.convert: error: ") and not out.exists()

    missing = write(tmp_path / "missing.txt", ["# official list", f"{ONE}.skeleton"])
    assert main(["ntu", str(src), str(out), "--missing_list", str(missing)]) == 0
    cap = capsys.readouterr()
    assert "clips: 1 converted" in cap.out and "xsub_train 1, xsub_val 0" in cap.out
    assert "1 in the missing-skeleton list" in cap.out and "malformed files: 2" in cap.out
    # many bad files, one line: the details go to OUT.log
    [note] = cap.err.splitlines()
    assert "2 malformed clip file(s) left out, 3 skipped" in note and str(out) + ".log" in note
    log = (tmp_path / "out" / "ntu.pkl.log").read_text().splitlines()
    assert sum(".skeleton:" in line for line in log) == 2 and any(line.startswith("skipped ") for line in log)
    data = load_pickle(out)
    assert data["layout"] == "ntu25" and pack_annotations(data, num_classes=60).names == [TWO]
    assert sorted(p.name for p in out.parent.iterdir()) == ["ntu.pkl", "ntu.pkl.log"]  # no temporary file left


def test_convert_real_ntu_samples() -> None:
    src = shared_or_skip("data", "ntu_samples", "skeleton")
    conv = convert_ntu(src, "ntu60")
    store = pack_annotations(conv.data, num_classes=60)
    assert not conv.problems and not conv.skipped
    assert dict(zip(store.names, store.frames.tolist(), strict=True)) == {
        "S001C001P001R001A011": 82,
        TWO: 70,
        ONE: 100,
        "S003C001P015R001A034": 71,
        "S004C002P003R001A017": 124,
    }
    assert store.persons.tolist() == [1, 2, 1, 1, 1] and store.labels.tolist() == [10, 57, 2, 33, 16]


# ---------------------------------------------------------------- MSR Action3D


def test_msr_names_and_reader_values() -> None:
    n = parse_msr_name("a18_s03_e02_skeleton3D.txt")
    assert (n.stem, n.action, n.subject, n.repetition, n.label, n.split) == ("a18_s03_e02", 18, 3, 2, 17, "train")
    assert parse_msr_name("a10_s10_e02_skeleton.txt").split == "val"
    with pytest.raises(ValueError):
        parse_msr_name("a1_s1_e1_skeleton.txt")
    j3 = read_msr_skeleton(MSR_FIX / "MSRAction3DSkeletonReal3D" / "a18_s03_e02_skeleton3D.txt")
    j2 = read_msr_skeleton(MSR_FIX / "MSRAction3DSkeleton(20joints)" / "a18_s03_e02_skeleton.txt")
    assert j3.shape == j2.shape == (13, 20, 4)  # 260 lines in each file
    # first two lines of each file
    np.testing.assert_array_equal(
        j3[0, :2], [[-0.500514, 0.326390, 2.468549, 1.0], [-0.160536, 0.366163, 2.317855, 1.0]]
    )
    np.testing.assert_array_equal(j2[0, :2], [[102, 82, 617, 1], [140, 75, 580, 1]])
    assert broken_reason(j3) is None and broken_reason(j3, other_frames=len(j3) + 1) is not None


def test_msr_broken_and_outside_image() -> None:
    zeros = read_msr_skeleton(MSR_FIX / "MSRAction3DSkeletonReal3D" / "a13_s09_e02_skeleton3D.txt")
    assert zeros.shape == (38, 20, 4) and broken_reason(zeros) == "no skeleton in any of its 38 frames"
    j2 = read_msr_skeleton(MSR_FIX / "MSRAction3DSkeleton(20joints)" / "a06_s08_e02_skeleton.txt")
    assert j2[20, 12, 1] == 2147480000  # line 413 of the file
    kp, score = msr_clip(j2, two_d=True)
    assert kp.shape == (1, len(j2), 20, 2) and score[0, 20, 12] == 0 and not kp[0, 20, 12].any()
    assert score.sum() == score.size - 1
    np.testing.assert_array_equal(kp[0, 20, 11], j2[20, 11, :2])


@pytest.mark.parametrize(
    "edit, line, part",
    [
        (lambda ls: ls[:39], 39, "39 joint lines is not a multiple of 20"),
        (lambda ls: ls[:4] + ["1 2 x 4"] + ls[5:], 5, "cannot read 'x' as a number"),
        (lambda ls: ls[:6] + ["1 2 3"] + ls[7:], 7, "expected 4 numbers, got 3"),
    ],
)
def test_malformed_msr_reports_file_and_line(tmp_path: Path, edit, line: int, part: str) -> None:
    good = ["0.1 0.2 2.5 1.0"] * 40
    path = write(tmp_path / "a01_s01_e01_skeleton3D.txt", edit(good))
    with pytest.raises(SkeletonFormatError) as err:
        read_msr_skeleton(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and part in str(err.value)


def test_convert_msr_fixture(tmp_path: Path) -> None:
    src = tmp_path / "msr"
    shutil.copytree(MSR_FIX, src)
    bad = write(src / "MSRAction3DSkeletonReal3D" / "a01_s02_e01_skeleton3D.txt", ["0.1 0.2 2.5 1.0"] * 39)
    conv = convert_msr(src)
    assert conv.problems == [f"{bad}:39: 39 joint lines is not a multiple of 20 (truncated last frame?)"]
    assert [(n, r) for n, r, _ in conv.skipped] == [("a13_s09_e02", "broken sequence")]
    assert conv.data["split"] == {"xsub_train": ["a18_s03_e02"], "xsub_val": ["a10_s10_e02"]}
    assert conv.data["layout"] == "kinect20"
    store = pack_annotations(conv.data, num_classes=20)
    assert store.coord_dim == 3 and store.labels.tolist() == [9, 17] and store.persons.tolist() == [1, 1]
    np.testing.assert_allclose(store.get(1)["keypoint"][0, 0, 0], [-0.500514, 0.326390, 2.468549], rtol=1e-6)
    with pytest.raises(ConversionError, match="a01_s02_e01_skeleton3D.txt:39:"):
        convert_msr(src, strict=True)

    out = tmp_path / "msr2d.pkl"
    assert main(["msr", str(src), str(out), "--2d"]) == 0
    store2 = pack_annotations(load_pickle(out), num_classes=20)
    assert store2.names == ["a06_s08_e02", "a10_s10_e02", "a18_s03_e02"] and store2.coord_dim == 2
    assert tuple(store2.img_shapes[0]) == (240, 320)
    np.testing.assert_array_equal(store2.get(2)["keypoint"][0, 0, :2], [[102, 82], [140, 75]])


def test_convert_full_msr_folder() -> None:
    src = shared_or_skip("data", "msr_action3d")
    conv = convert_msr(src)
    assert not conv.problems and sorted(n for n, _, _ in conv.skipped) == sorted(MSR_BROKEN)
    store = pack_annotations(conv.data, num_classes=20)
    assert len(store) == 557
    # 292 odd-subject and 275 even-subject sequences, less the broken ones (two of subject 9)
    assert len(conv.data["split"]["xsub_train"]) == 290 and len(conv.data["split"]["xsub_val"]) == 267
    assert np.bincount(store.labels, minlength=20).min() >= 20


# ---------------------------------------------------------------- atomic write


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "a.pkl"
    write_pickle_atomic({"x": 1}, out)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        write_pickle_atomic({"x": lambda: 0}, out)
    assert pickle.loads(out.read_bytes()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.pkl"]


def test_cli_ntu_skips_the_official_missing_skeleton_list_by_default(tmp_path: Path, capsys) -> None:
    """NTU's own list ships with the project: a listed sample is skipped unless --keep_missing."""
    from datasets.sources.convert import MISSING_LISTS, read_name_list

    assert len(read_name_list(MISSING_LISTS["ntu60"])) == 302 and len(read_name_list(MISSING_LISTS["ntu120"])) == 535
    assert read_name_list(MISSING_LISTS["ntu60"]) <= read_name_list(MISSING_LISTS["ntu120"])
    src = tmp_path / "raw"
    src.mkdir()
    listed = "S001C002P005R002A008"  # the first name of NTU's list
    write(src / f"{listed}.skeleton", simple_ntu(seed=3))
    shutil.copy(NTU_FIX / f"{ONE}.skeleton", src)
    out = tmp_path / "ntu.pkl"
    assert main(["ntu", str(src), str(out)]) == 0
    assert "1 in the missing-skeleton list" in capsys.readouterr().out
    assert pack_annotations(load_pickle(out), num_classes=60).names == [ONE]
    assert main(["ntu", str(src), str(out), "--keep_missing"]) == 0
    assert sorted(pack_annotations(load_pickle(out), num_classes=60).names) == sorted([ONE, listed])
