"""Joint layouts: the joints, left/right pairs, limbs and body parts of each skeleton format.

A layout is data, not code: transforms, renderers, the noise model and the corruption suite read the
flip pairs, limbs and body parts from here, and a dataset declares which layout its keypoints use.
Seven formats are built in (`LAYOUTS`); any other is declared as a dict (in the annotation file's
'layout' entry, or a JSON file given to `--layout`)::

    {"name": "my_kinect",                               # any name but a built-in one
     "joints": ["hip_center", "spine", ...],            # V unique names, in the order of the keypoints
     "pairs": [["left_shoulder", "right_shoulder"], ...],   # left/right joints a flip exchanges
     "limbs": [["hip_center", "spine"], ...],           # bones: one limb-heatmap channel each
     "parts": {"trunk": ["hip_center", ...], "left_arm": [...], ...}}   # what occlusion hides

Joints in pairs, limbs and parts are given by name or by 0-based index. A declared layout is checked as
the built-in ones are (`Layout.validate`), and every problem is one line (LayoutError).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

from utils.errors import UserError

DECLARE_HINT = (
    "declare it as a dict (name, joints, pairs, limbs, parts) with --layout FILE.json or in the annotation "
    "file's 'layout' entry (README: Your own dataset)"
)


class LayoutError(UserError, ValueError):
    """An unknown, malformed or mismatched joint layout; the message is one line and says what to do."""


@dataclass(frozen=True)
class Layout:
    """A skeleton format.

    name: short identifier (`coco17`, ...).
    num_joints: V, the joint count.
    left, right: joints swapped by a horizontal flip (left[i] <-> right[i]).
    limbs: joint pairs, one limb heatmap channel each (pyskl's `skeletons`).
    parts: named body parts, (name, joint indices) each, e.g. ("left_arm", (5, 7, 9)); the units that
        the occlusion corruption hides (datasets/pipeline/corruptions.py). Empty for a layout without them.
    joints: the V joint names in keypoint order (empty: unnamed).

    Every layout is checked on construction (`validate`), so a wrong index fails at import time rather
    than as a silently wrong flip or occlusion.
    """

    name: str
    num_joints: int
    left: tuple[int, ...]
    right: tuple[int, ...]
    limbs: tuple[tuple[int, int], ...]
    parts: tuple[tuple[str, tuple[int, ...]], ...] = ()
    joints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Fail with a LayoutError (a ValueError) naming the layout when its indices are inconsistent.

        Checks: num_joints >= 1; left and right of equal length, disjoint, without repeats and in
        [0, num_joints); limbs are pairs of distinct in-range joints; parts have unique non-empty names
        and non-empty, repeat-free, in-range joint tuples; joint names, if given, are V unique non-empty
        strings. The skeleton's shape is `check_skeleton`'s business.
        """
        n = self.num_joints

        def fail(what: str) -> None:
            raise LayoutError(f"layout {self.name!r}: {what}")

        def in_range(joints: tuple[int, ...]) -> bool:
            return all(isinstance(j, int) and 0 <= j < n for j in joints)

        if not isinstance(n, int) or n < 1:
            fail(f"num_joints must be a positive int, got {n!r}")
        if len(self.left) != len(self.right):
            fail(f"left and right must pair up, got {len(self.left)} left and {len(self.right)} right joints")
        if not in_range(self.left) or not in_range(self.right):
            fail(f"left/right joints must be ints in [0, {n}), got left={self.left} right={self.right}")
        if len(set(self.left) | set(self.right)) != 2 * len(self.left):
            fail(f"left and right joints must be distinct and disjoint, got left={self.left} right={self.right}")
        for limb in self.limbs:
            if len(limb) != 2 or not in_range(limb) or limb[0] == limb[1]:
                fail(f"limb {limb} must be two distinct int joints in [0, {n})")
        names = [name for name, _ in self.parts]
        if len(set(names)) != len(names) or not all(isinstance(name, str) and name for name in names):
            fail(f"part names must be unique non-empty strings, got {names}")
        for name, joints in self.parts:
            if not joints or not in_range(joints) or len(set(joints)) != len(joints):
                fail(f"part {name!r} must be a non-empty tuple of distinct int joints in [0, {n}), got {joints}")
        if self.joints and (
            len(self.joints) != n
            or len(set(self.joints)) != n
            or not all(isinstance(j, str) and j for j in self.joints)
        ):
            fail(f"joint names must be {n} unique non-empty strings, got {len(self.joints)}: {list(self.joints)}")

    def check_skeleton(self) -> None:
        """Fail with a LayoutError unless the limbs make one skeleton: they connect every joint (so bone
        streams and limb volumes reach all of it), and a flip maps them onto limbs (the flipped limb
        volume needs each limb's mirror). Every built-in and every declared layout passes it; construction
        alone does not ask it, so that code and tests can build partial graphs.
        """
        n = self.num_joints

        def fail(what: str) -> None:
            raise LayoutError(f"layout {self.name!r}: {what}")

        if not self.limbs and n > 1:
            fail("it needs limbs (joint pairs) that connect its joints")
        unreached = sorted(set(range(n)) - _reachable(n, self.limbs))
        if unreached:
            fail(
                f"the limbs must connect every joint into one skeleton; not connected to joint 0: "
                f"{self._names(unreached)}"
            )
        order = self.flip_order()
        limbs = {frozenset(limb) for limb in self.limbs}
        for a, b in self.limbs:
            if frozenset((order[a], order[b])) not in limbs:
                fail(
                    f"limb {self._names((a, b))} has no mirror limb {self._names((order[a], order[b]))}: "
                    f"add it, or fix the left/right pairs"
                )

    def _names(self, joints: Sequence[int]) -> str:
        """Joints as '(index name, ...)' for messages."""
        return "(" + ", ".join(f"{j} {self.joints[j]}" if self.joints else str(j) for j in joints) + ")"

    def flip_order(self) -> list[int]:
        """Joint permutation applied by a horizontal flip."""
        order = list(range(self.num_joints))
        for a, b in zip(self.left, self.right, strict=True):
            order[a], order[b] = b, a
        return order

    def to_dict(self) -> dict:
        """The declaration of this layout (module docstring) with joints by index: plain lists, strings and
        ints, so it goes into JSON, pickles and weights_only checkpoints. `layout_from_dict` inverts it."""
        return {
            "name": self.name,
            "joints": list(self.joints) if self.joints else [str(j) for j in range(self.num_joints)],
            "pairs": [[a, b] for a, b in zip(self.left, self.right, strict=True)],
            "limbs": [list(limb) for limb in self.limbs],
            "parts": {name: list(joints) for name, joints in self.parts},
        }


def _reachable(n: int, limbs: Sequence[tuple[int, int]]) -> set[int]:
    """Joints connected to joint 0 by limbs (read as an undirected graph)."""
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in limbs:
        nbrs[a].append(b)
        nbrs[b].append(a)
    seen, stack = {0}, [0]
    while stack:
        for u in nbrs[stack.pop()]:
            if u not in seen:
                seen.add(u)
                stack.append(u)
    return seen


# COCO-17 (HRNet, pyskl's ntu60_hrnet.pkl): the order of COCO's person_keypoints category
# (cocodataset.org/#format-data): 0 nose, 1/2 eyes, 3/4 ears, 5/6 shoulders, 7/8 elbows, 9/10 wrists,
# 11/12 hips, 13/14 knees, 15/16 ankles; odd = left, even = right. Limbs: pyskl's coco skeleton.
COCO17 = Layout(
    name="coco17",
    num_joints=17,
    left=(1, 3, 5, 7, 9, 11, 13, 15),
    right=(2, 4, 6, 8, 10, 12, 14, 16),
    limbs=(
        (0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (5, 7), (7, 9), (0, 6), (6, 8),
        (8, 10), (5, 11), (11, 13), (13, 15), (6, 12), (12, 14), (14, 16), (11, 12),
    ),
    # The five parts cover every joint once: the face, and each limb from its shoulder or hip down.
    parts=(
        ("head", (0, 1, 2, 3, 4)),
        ("left_arm", (5, 7, 9)),
        ("right_arm", (6, 8, 10)),
        ("left_leg", (11, 13, 15)),
        ("right_leg", (12, 14, 16)),
    ),
    joints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
        "right_knee", "left_ankle", "right_ankle",
    ),
)  # fmt: skip

# NTU RGB+D (Kinect v2), 25 joints, 0-based; the NTU README's 1-based list minus one. "Left" is the
# subject's own left: in the raw files the right hand is the busy one in one-handed actions (A003
# brushing teeth, A058 handshaking). 0 spine base, 1 spine mid, 2 neck, 3 head, 4-7 left shoulder,
# elbow, wrist, hand, 8-11 the same on the right, 12-15 left hip, knee, ankle, foot, 16-19 the same on
# the right, 20 spine shoulder, 21 left hand tip, 22 left thumb, 23 right hand tip, 24 right thumb.
# Limbs are the 24 bones of the Kinect v2 tree (the ST-GCN/pyskl 'nturgb+d' graph), child first.
NTU25 = Layout(
    name="ntu25",
    num_joints=25,
    left=(4, 5, 6, 7, 12, 13, 14, 15, 21, 22),
    right=(8, 9, 10, 11, 16, 17, 18, 19, 23, 24),
    limbs=(
        (0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8), (10, 9),
        (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18), (21, 7),
        (22, 7), (23, 11), (24, 11),
    ),
    # The five parts cover every joint once: the spine with the head, and each limb from its shoulder
    # or hip down (arms with hand tip and thumb).
    parts=(
        ("trunk", (0, 1, 2, 3, 20)),
        ("left_arm", (4, 5, 6, 7, 21, 22)),
        ("right_arm", (8, 9, 10, 11, 23, 24)),
        ("left_leg", (12, 13, 14, 15)),
        ("right_leg", (16, 17, 18, 19)),
    ),
    joints=(
        "spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle",
        "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot", "spine_shoulder", "left_hand_tip",
        "left_thumb", "right_hand_tip", "right_thumb",
    ),
)  # fmt: skip

# MSR Action3D (Kinect v1), 20 joints in the order of its files (body_model.mat of Vemulapalli et al.):
# 0 left shoulder, 1 right shoulder, 2 shoulder centre (neck), 3 spine, 4 left hip, 5 right hip,
# 6 hip centre, 7/8 elbows, 9/10 wrists, 11/12 hands, 13/14 knees, 15/16 ankles, 17/18 feet (odd =
# left from 7 on), 19 head. Subjects used their right arm/leg for one-limb actions, and the right
# hand (12) and right ankle (16) are the busy joints there, so the names are the subject's sides.
# Limbs are the 19 bones of body_model.mat (1-based there). Not the Kinect SDK's order: KINECT_SDK20.
KINECT20 = Layout(
    name="kinect20",
    num_joints=20,
    left=(0, 4, 7, 9, 11, 13, 15, 17),
    right=(1, 5, 8, 10, 12, 14, 16, 18),
    limbs=(
        (6, 3), (3, 2), (2, 19), (2, 0), (2, 1), (0, 7), (1, 8), (7, 9), (8, 10), (9, 11), (10, 12),
        (6, 4), (6, 5), (4, 13), (5, 14), (13, 15), (14, 16), (15, 17), (16, 18),
    ),
    # The five parts cover every joint once: the spine with the head, and each limb from its shoulder
    # or hip down.
    parts=(
        ("trunk", (2, 3, 6, 19)),
        ("left_arm", (0, 7, 9, 11)),
        ("right_arm", (1, 8, 10, 12)),
        ("left_leg", (4, 13, 15, 17)),
        ("right_leg", (5, 14, 16, 18)),
    ),
    joints=(
        "left_shoulder", "right_shoulder", "shoulder_center", "spine", "left_hip", "right_hip", "hip_center",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand", "left_knee",
        "right_knee", "left_ankle", "right_ankle", "left_foot", "right_foot", "head",
    ),
)  # fmt: skip

# Kinect SDK v1 (the NUI_SKELETON_POSITION_INDEX enumeration of NuiSensor.h), 20 joints in the order the
# SDK's skeleton stream gives them (not MSR Action3D's order, KINECT20):
# 0 hip centre, 1 spine, 2 shoulder centre, 3 head, 4-7 left shoulder, elbow, wrist, hand, 8-11 the same
# on the right, 12-15 left hip, knee, ankle, foot, 16-19 the same on the right. "Left" is the subject's
# own left (the SDK's SHOULDER_LEFT). Limbs: the 19 bones the SDK's skeleton viewer draws.
KINECT_SDK20 = Layout(
    name="kinect_sdk20",
    num_joints=20,
    left=(4, 5, 6, 7, 12, 13, 14, 15),
    right=(8, 9, 10, 11, 16, 17, 18, 19),
    limbs=(
        (0, 1), (1, 2), (2, 3), (2, 4), (4, 5), (5, 6), (6, 7), (2, 8), (8, 9), (9, 10), (10, 11),
        (0, 12), (12, 13), (13, 14), (14, 15), (0, 16), (16, 17), (17, 18), (18, 19),
    ),
    parts=(
        ("trunk", (0, 1, 2, 3)),
        ("left_arm", (4, 5, 6, 7)),
        ("right_arm", (8, 9, 10, 11)),
        ("left_leg", (12, 13, 14, 15)),
        ("right_leg", (16, 17, 18, 19)),
    ),
    joints=(
        "hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow", "left_wrist",
        "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee",
        "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot",
    ),
)  # fmt: skip

# Human3.6M, the 17 of its 32 joints that VideoPose3D and MotionBERT keep (H36M indices 0, 1, 2, 3, 6,
# 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27), in that order: 0 pelvis, 1-3 right hip, knee, ankle,
# 4-6 left hip, knee, ankle, 7 spine, 8 thorax, 9 neck/nose, 10 head, 11-13 left shoulder, elbow,
# wrist, 14-16 right shoulder, elbow, wrist. Limbs: the 16 bones of their skeleton (parents
# -1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15; datasets/batch/streams.H36M_PARENTS).
H36M17 = Layout(
    name="h36m17",
    num_joints=17,
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
    limbs=(
        (1, 0), (2, 1), (3, 2), (4, 0), (5, 4), (6, 5), (7, 0), (8, 7), (9, 8), (10, 9), (11, 8), (12, 11),
        (13, 12), (14, 8), (15, 14), (16, 15),
    ),
    parts=(
        ("trunk", (0, 7, 8, 9, 10)),
        ("left_arm", (11, 12, 13)),
        ("right_arm", (14, 15, 16)),
        ("left_leg", (4, 5, 6)),
        ("right_leg", (1, 2, 3)),
    ),
    joints=(
        "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine",
        "thorax", "neck_nose", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
        "right_elbow", "right_wrist",
    ),
)  # fmt: skip

# OpenPose BODY_18 (its 'COCO' model; doc/02_output.md, "Pose Output Format (COCO)"): 0 nose, 1 neck,
# 2-4 right shoulder, elbow, wrist, 5-7 left shoulder, elbow, wrist, 8-10 right hip, knee, ankle,
# 11-13 left hip, knee, ankle, 14/15 right/left eye, 16/17 right/left ear. Limbs: the 17 bones of
# OpenPose's POSE_COCO_PAIRS without the two ear-shoulder pairs it keeps for its part affinity fields
# (a tree rooted at the neck).
OPENPOSE18 = Layout(
    name="openpose18",
    num_joints=18,
    left=(5, 6, 7, 11, 12, 13, 15, 17),
    right=(2, 3, 4, 8, 9, 10, 14, 16),
    limbs=(
        (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
        (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
    ),
    parts=(
        ("head", (0, 1, 14, 15, 16, 17)),
        ("left_arm", (5, 6, 7)),
        ("right_arm", (2, 3, 4)),
        ("left_leg", (11, 12, 13)),
        ("right_leg", (8, 9, 10)),
    ),
    joints=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear",
    ),
)  # fmt: skip

# MediaPipe Pose, 33 landmarks (the pose landmarker's documented list; datasets/sources/inputs.py reads them):
# 0 nose, 1-3 left eye inner, eye, outer, 4-6 right eye inner, eye, outer, 7/8 left/right ear, 9/10
# mouth left/right, 11/12 shoulders, 13/14 elbows, 15/16 wrists, 17/18 pinkies, 19/20 index fingers,
# 21/22 thumbs, 23/24 hips, 25/26 knees, 27/28 ankles, 29/30 heels, 31/32 foot index; odd = left from
# 11 on. Limbs: mediapipe's 35 POSE_CONNECTIONS, which leave the face unattached, plus nose-mouth and
# nose-shoulder bones (as COCO-17's) that join the face to the body.
MEDIAPIPE33 = Layout(
    name="mediapipe33",
    num_joints=33,
    left=(1, 2, 3, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31),
    right=(4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32),
    limbs=(
        (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13),
        (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20), (16, 22),
        (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30),
        (29, 31), (30, 32), (27, 31), (28, 32),
        (0, 9), (0, 10), (0, 11), (0, 12),
    ),
    parts=(
        ("head", tuple(range(11))),
        ("left_arm", (11, 13, 15, 17, 19, 21)),
        ("right_arm", (12, 14, 16, 18, 20, 22)),
        ("left_leg", (23, 25, 27, 29, 31)),
        ("right_leg", (24, 26, 28, 30, 32)),
    ),
    joints=(
        "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
        "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
        "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
        "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
        "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
    ),
)  # fmt: skip

LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (COCO17, NTU25, KINECT20, KINECT_SDK20, H36M17, OPENPOSE18, MEDIAPIPE33)
}


def get_layout(name: str, definition: dict | None = None) -> Layout:
    """The built-in layout called `name`, or the declared one `definition` (a `Layout.to_dict()` dict,
    as run configurations carry it). An unknown name fails with one line listing the known ones."""
    if definition is not None:
        layout = layout_from_dict(definition, "the run configuration")
        if layout.name != name:
            raise LayoutError(f"the layout definition is named {layout.name!r}, not {name!r}")
        return layout
    if name not in LAYOUTS:
        raise LayoutError(f"unknown joint layout {name!r}; built in: {', '.join(LAYOUTS)}; or {DECLARE_HINT}")
    return LAYOUTS[name]


def definition(layout: Layout) -> dict | None:
    """What a run must carry to rebuild `layout`: None for a built-in one (its name suffices), else its
    declaration (`Layout.to_dict`)."""
    return None if LAYOUTS.get(layout.name) == layout else layout.to_dict()


def layout_from_dict(spec: object, source: str) -> Layout:
    """Parse and validate a declared layout (module docstring); `source` names where it comes from in
    messages ('FILE.json', 'the annotation file', ...). Raises LayoutError (one line).

    A declaration may reuse a built-in name only for the built-in layout itself.
    """
    if not isinstance(spec, dict):
        raise LayoutError(f"{source}: a layout declaration is a dict, got {type(spec).__name__}; {DECLARE_HINT}")
    name, where = _declared_name(spec, source)
    joints = _declared_joints(spec["joints"], where)
    index = {j: i for i, j in enumerate(joints)}
    pairs, limbs = _declared_pairs(spec, "pairs", index, where), _declared_pairs(spec, "limbs", index, where)
    parts = _declared_parts(spec["parts"], index, where)
    try:
        layout = Layout(
            name=name,
            num_joints=len(joints),
            left=tuple(a for a, _ in pairs),
            right=tuple(b for _, b in pairs),
            limbs=tuple(limbs),
            parts=parts,
            joints=joints,
        )
        layout.check_skeleton()
    except LayoutError as e:  # say where the declaration comes from
        raise LayoutError(f"{source}: {e}") from e
    if name in LAYOUTS and LAYOUTS[name] != layout:
        raise LayoutError(f"{where}: {name!r} is a built-in layout and this declaration differs from it; rename yours")
    return layout


def _declared_name(spec: dict, source: str) -> tuple[str, str]:
    """The name of a declaration that has exactly the five entries, and the prefix of its messages
    ('SOURCE: layout NAME'). Raises LayoutError on missing or unknown entries and on an empty name."""
    name = spec.get("name")
    where = f"{source}: layout {name!r}"
    keys = {"name", "joints", "pairs", "limbs", "parts"}
    if set(spec) != keys:
        missing, unknown = sorted(keys - set(spec)), sorted(map(repr, set(spec) - keys))
        raise LayoutError(
            f"{where}: a declaration has exactly the entries {', '.join(sorted(keys))}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    if not isinstance(name, str) or not name:
        raise LayoutError(f"{source}: the layout's 'name' must be a non-empty string, got {name!r}")
    return name, where


def _declared_joints(joints: object, where: str) -> tuple[str, ...]:
    """The 'joints' entry -> V unique non-empty names in keypoint order; `where` prefixes messages."""
    if not isinstance(joints, (list, tuple)) or not joints or not all(isinstance(j, str) and j for j in joints):
        raise LayoutError(f"{where}: 'joints' must be a non-empty list of joint names in keypoint order")
    joints = tuple(joints)
    if len(set(joints)) != len(joints):
        dup = next(j for i, j in enumerate(joints) if j in joints[:i])
        raise LayoutError(f"{where}: joint name {dup!r} appears twice in 'joints'")
    return joints


def _joint_index(ref: object, what: str, index: dict[str, int], where: str) -> int:
    """A joint given by name or 0-based index -> its index in [0, V). index: joint name -> index, for the V
    joints; `what` names the entry in messages ('limbs', "part 'head'", ...)."""
    if isinstance(ref, str):
        if ref not in index:
            raise LayoutError(f"{where}: {what} names joint {ref!r}, which is not in 'joints'")
        return index[ref]
    # numbers.Integral: numpy integers too, as a pickled declaration may hold them
    if isinstance(ref, Integral) and not isinstance(ref, bool) and 0 <= ref < len(index):
        return int(ref)
    raise LayoutError(f"{where}: {what} has joint {ref!r}; give a name from 'joints' or an index in [0, {len(index)})")


def _declared_pairs(spec: dict, key: str, index: dict[str, int], where: str) -> list[tuple[int, int]]:
    """spec[key] ('pairs' or 'limbs'), a non-empty list of [joint, joint] -> (a, b) joint indices, in order."""
    items = spec[key]
    if not isinstance(items, (list, tuple)) or not items:
        raise LayoutError(f"{where}: {key!r} must be a non-empty list of [joint, joint] pairs")
    out = []
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise LayoutError(f"{where}: each of {key!r} must be a [joint, joint] pair, got {item!r}")
        out.append((_joint_index(item[0], key, index, where), _joint_index(item[1], key, index, where)))
    return out


def _declared_parts(parts: object, index: dict[str, int], where: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The 'parts' entry, a non-empty dict of body part name -> joints, as `Layout.parts` (joint indices)."""
    if not isinstance(parts, dict) or not parts:
        raise LayoutError(
            f"{where}: 'parts' must be a non-empty dict of body part name -> joints (what occlusion hides)"
        )
    parsed_parts = []
    for part, members in parts.items():
        if not isinstance(members, (list, tuple)):
            raise LayoutError(f"{where}: part {part!r} must be a list of joints, got {members!r}")
        parsed_parts.append((part, tuple(_joint_index(m, f"part {part!r}", index, where) for m in members)))
    return tuple(parsed_parts)


def read_layout_file(path: str | Path) -> Layout:
    """A layout declared in a JSON file (module docstring). Raises LayoutError (one line)."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"layout file {path} does not exist; {DECLARE_HINT}")
    try:
        spec = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LayoutError(f"{path}: not a JSON layout declaration ({e})") from e
    return layout_from_dict(spec, str(path))


def parse_layout_arg(text: str) -> Layout:
    """`--layout`: a built-in name, or a JSON file declaring one (a path ending in .json, or any existing file)."""
    if text in LAYOUTS:
        return LAYOUTS[text]
    if text.endswith(".json") or Path(text).is_file():
        return read_layout_file(text)
    raise LayoutError(f"unknown joint layout {text!r}; built in: {', '.join(LAYOUTS)}; or {DECLARE_HINT}")


def declared_layout(spec: Layout | str | dict | None, source: str) -> Layout | str | None:
    """A layout as an annotation file declares it: a dict -> the validated Layout; a name stays a name
    (a built-in one, or one whose declaration comes with --layout); None: nothing declared."""
    if spec is None or isinstance(spec, Layout):
        return spec
    if isinstance(spec, str):
        if not spec:
            raise LayoutError(f"{source}: the 'layout' entry is an empty name; {DECLARE_HINT}")
        return spec
    return layout_from_dict(spec, source)


def choose_layout(
    num_joints: int,
    coord_dim: int,
    *,
    given: str | None = None,
    declared: Layout | str | None = None,
    default: str | None = None,
    source: str = "the annotation file",
) -> tuple[Layout, str | None]:
    """The joint layout of a dataset's keypoints (V = num_joints, C = coord_dim), and a note when it was
    inferred rather than declared. In order:

    given: --layout (a built-in name or FILE.json); must agree with what the file declares, if anything.
    declared: the file's own layout (`declared_layout`): a Layout, or a name that must be built in.
    default: the dataset's catalog layout (coco17 for NTU's HRNet files), when its joint count is V.
    Otherwise inferred from V only when one built-in layout has V joints; 17 joints in 2D are COCO-17
    (pyskl's files carry no layout; H36M-17 must be named), said in the note. Anything else is a
    LayoutError that says what to pass, as is a layout whose joint count is not V.
    """
    note = None
    if given is not None:
        layout, origin = _given_layout(given, declared, source)
    elif isinstance(declared, Layout):
        layout, origin = declared, f"declared in {source}"
    elif declared is not None:
        layout, origin = _named_layout(declared, source), f"named in {source}"
    elif default is not None and LAYOUTS[default].num_joints == num_joints:
        layout, origin = LAYOUTS[default], "the dataset's"
    else:
        layout, origin = _inferred_layout(num_joints, coord_dim, source), "inferred"
        note = (
            f"{source} declares no joint layout: its {num_joints}-joint {coord_dim}D keypoints are read as "
            f"{layout.name}; pass --layout NAME or FILE.json if they are not"
        )
    if layout.num_joints != num_joints:
        raise LayoutError(
            f"the data has {num_joints} joints but layout {layout.name} ({origin}) has {layout.num_joints}; "
            f"pass the layout the keypoints are in with --layout NAME or FILE.json"
        )
    return layout, note


def _given_layout(given: str, declared: Layout | str | None, source: str) -> tuple[Layout, str]:
    """The layout of `--layout given` and where it comes from, for `choose_layout`. Raises LayoutError when the
    file `source` declares another one (by name, or under the same name but differently)."""
    layout, origin = parse_layout_arg(given), f"--layout {given}"
    declared_name = declared if isinstance(declared, str) else getattr(declared, "name", None)
    if declared_name is not None and declared_name != layout.name:
        raise LayoutError(
            f"--layout {given} is {layout.name!r} but {source} declares {declared_name!r}; drop --layout, "
            f"or convert the file"
        )
    if isinstance(declared, Layout) and declared != layout:
        raise LayoutError(f"{source} declares layout {layout.name!r} differently from --layout {given}; drop one")
    return layout, origin


def _named_layout(declared: str, source: str) -> Layout:
    """The built-in layout that the file `source` names; a LayoutError, saying what to pass, for any other name."""
    if declared not in LAYOUTS:
        raise LayoutError(
            f"{source} names joint layout {declared!r}, which is not built in ({', '.join(LAYOUTS)}): pass its "
            f"declaration with --layout FILE.json, or put the dict in the file's 'layout' entry (README: Your "
            f"own dataset)"
        )
    return LAYOUTS[declared]


def _inferred_layout(num_joints: int, coord_dim: int, source: str) -> Layout:
    """The built-in layout that V = num_joints joints in C = coord_dim dimensions must be in, when nothing is
    declared: COCO-17 for 17 joints in 2D, else the only built-in layout with V joints. Raises LayoutError,
    saying what to pass, when no built-in layout or several fit."""
    fits = [name for name, lay in LAYOUTS.items() if lay.num_joints == num_joints]
    if num_joints == COCO17.num_joints and coord_dim == 2:
        return COCO17
    if len(fits) == 1:
        return LAYOUTS[fits[0]]
    which = f"{' or '.join(fits)}, or " if fits else ""
    raise LayoutError(
        f"{source} declares no joint layout and {num_joints} joints in {coord_dim}D fit "
        + (f"several built-in ones ({', '.join(fits)})" if fits else "no built-in one")
        + f": pass --layout {which}FILE.json ({DECLARE_HINT})"
    )
