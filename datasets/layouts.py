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

LAYOUTS: dict[str, Layout] = {COCO17.name: COCO17}


def get_layout(name: str) -> Layout:
    """Return the layout called `name`; unknown names fail with the known ones listed."""
    if name not in LAYOUTS:
        raise KeyError(f"unknown joint layout {name!r}; known layouts: {', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[name]
