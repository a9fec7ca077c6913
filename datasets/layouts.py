"""Joint layouts: the joint count, left/right pairs and limbs of each skeleton format.

A layout is data, not code: transforms, renderers, the noise model and the corruption suite read the
flip pairs, limbs and body parts from here, and a dataset declares which layout its keypoints use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """A skeleton format.

    name: short identifier (`coco17`, ...).
    num_joints: V, the joint count.
    left, right: joints swapped by a horizontal flip (left[i] <-> right[i]).
    limbs: joint pairs, one limb heatmap channel each (pyskl's `skeletons`).
    parts: named body parts, (name, joint indices) each, e.g. ("left_arm", (5, 7, 9)); the units that
        the occlusion corruption hides (datasets/corruptions.py). Empty for a layout without them.

    Every layout is checked on construction (`validate`), so a wrong index fails at import time rather
    than as a silently wrong flip or occlusion.
    """

    name: str
    num_joints: int
    left: tuple[int, ...]
    right: tuple[int, ...]
    limbs: tuple[tuple[int, int], ...]
    parts: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Fail with a ValueError naming the layout when its indices are inconsistent.

        Checks: num_joints >= 1; left and right of equal length, disjoint, without repeats and in
        [0, num_joints); limbs are pairs of distinct in-range joints; parts have unique non-empty names
        and non-empty, repeat-free, in-range joint tuples.
        """
        n = self.num_joints

        def fail(what: str) -> None:
            raise ValueError(f"layout {self.name!r}: {what}")

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

    def flip_order(self) -> list[int]:
        """Joint permutation applied by a horizontal flip."""
        order = list(range(self.num_joints))
        for a, b in zip(self.left, self.right, strict=True):
            order[a], order[b] = b, a
        return order


# COCO-17 (HRNet, pyskl's ntu60_hrnet.pkl): 0 nose, 1/2 eyes, 3/4 ears, 5/6 shoulders, 7/8 elbows,
# 9/10 wrists, 11/12 hips, 13/14 knees, 15/16 ankles; odd = left, even = right.
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
)  # fmt: skip

# MSR Action3D (Kinect v1), 20 joints in the order of its files (body_model.mat of Vemulapalli et al.):
# 0 left shoulder, 1 right shoulder, 2 shoulder centre (neck), 3 spine, 4 left hip, 5 right hip,
# 6 hip centre, 7/8 elbows, 9/10 wrists, 11/12 hands, 13/14 knees, 15/16 ankles, 17/18 feet (odd =
# left from 7 on), 19 head. Subjects used their right arm/leg for one-limb actions, and the right
# hand (12) and right ankle (16) are the busy joints there, so the names are the subject's sides.
# Limbs are the 19 bones of body_model.mat (1-based there).
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
)  # fmt: skip

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (COCO17, NTU25, KINECT20)}


def get_layout(name: str) -> Layout:
    """Return the layout called `name`; unknown names fail with the known ones listed."""
    if name not in LAYOUTS:
        raise KeyError(f"unknown joint layout {name!r}; known layouts: {', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[name]
