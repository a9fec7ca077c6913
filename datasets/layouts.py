"""Joint layouts: the joint count, left/right pairs and limbs of each skeleton format.

A layout is data, not code: transforms, renderers and the noise model read the flip pairs and
limbs from here, and a dataset declares which layout its keypoints use.
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
    """

    name: str
    num_joints: int
    left: tuple[int, ...]
    right: tuple[int, ...]
    limbs: tuple[tuple[int, int], ...]

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
)  # fmt: skip

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (COCO17, NTU25, KINECT20)}


def get_layout(name: str) -> Layout:
    """Return the layout called `name`; unknown names fail with the known ones listed."""
    if name not in LAYOUTS:
        raise KeyError(f"unknown joint layout {name!r}; known layouts: {', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[name]
