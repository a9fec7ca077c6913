"""Input streams of coordinate inputs: joints, bones and their motions (the field's multi-stream practice).

    joint         x[t, v]                                      the coordinates themselves
    bone          x[t, v] - x[t, parent(v)]                    0 at the root (its own parent)
    joint_motion  x[t + 1, v] - x[t, v]                        0 in the last frame
    bone_motion   bone[t + 1, v] - bone[t, v]                  0 in the last frame

A bone is 0 where its joint or its parent is missing, a motion where its joint (or bone) is missing in either
frame, so a missing joint never turns into a large value. The functions take numpy arrays or torch tensors of
shape (..., T, V, C) and return the same kind; the training loop computes the stream from the keypoints after
the corruption of the view, so a corrupted joint corrupts its bones and motions too (engine/data.model_input).

Parents come from a layout's limbs (`parents`); MotionBERT's 2D input is in H36M-17 order (H36M_PARENTS).
"""

from __future__ import annotations

from collections import deque

import torch

from datasets.store.layouts import Layout

STREAMS = ("joint", "bone", "joint_motion", "bone_motion")
# H36M-17 (MotionBERT's 2D input, datasets/pipeline/motionbert_prep.py): 0 root, 1-3 right hip, knee, ankle, 4-6 left,
# 7 belly, 8 neck, 9 nose, 10 head, 11-13 left shoulder, elbow, wrist, 14-16 right; the tree MotionBERT and
# VideoPose3D draw, rooted at the pelvis.
H36M_PARENTS = (0, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)


def parents(layout: Layout) -> tuple[int, ...]:
    """Parent of every joint of `layout`, from its limbs read as an undirected graph.

    The root is the joint with the most limbs (the lowest index among ties: the nose for COCO-17, the spine
    shoulder for NTU-25 as in pyskl's bone pairs, the shoulder centre for Kinect-20); every other joint's
    parent is its neighbour on a shortest path to the root (breadth first, neighbours in limb order). A root,
    and a joint that no limb connects to it, is its own parent (its bone is 0).
    """
    n = layout.num_joints
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in layout.limbs:
        nbrs[a].append(b)
        nbrs[b].append(a)
    root = max(range(n), key=lambda v: (len(nbrs[v]), -v))
    parent = list(range(n))
    seen, queue = {root}, deque([root])
    while queue:
        v = queue.popleft()
        for u in nbrs[v]:
            if u not in seen:
                seen.add(u)
                parent[u] = v
                queue.append(u)
    return tuple(parent)


def _next_frame(x, axis: int):
    """x with frame t + 1 in place of frame t along `axis` (the last frame repeated): shifts numpy arrays and
    torch tensors alike."""
    t = x.shape[axis]
    ids = list(range(1, t)) + [t - 1]
    index = (Ellipsis, ids) + (slice(None),) * (-axis - 1)
    return x[index]


def bone(x, parent: tuple[int, ...], missing=None):
    """x (..., T, V, C) -> x - x[parent] per joint; missing (..., T, V) bool or None -> (bone, bone missing)."""
    b = x - x[..., list(parent), :]
    if missing is None:
        return b, None
    gone = missing | missing[..., list(parent)]
    return b * ~gone[..., None], gone


def motion(x, missing=None):
    """x (..., T, V, C) -> x[t + 1] - x[t] (0 in the last frame); missing (..., T, V) bool or None."""
    m = _next_frame(x, -3) - x
    if missing is None:
        return m
    gone = missing | _next_frame(missing, -2)
    return m * ~gone[..., None]


def joint_stream(x, name: str, parent: tuple[int, ...], missing=None):
    """The stream `name` (STREAMS) of coordinates x (..., T, V, C), numpy or torch.

    parent: parent of each of the V joints (`parents`, H36M_PARENTS). missing: (..., T, V) bool of missing
    joints, whose coordinates are taken as 0 already, or None (nothing is known missing). 'joint' returns x
    itself. Returns an array of x's kind, shape and dtype.
    """
    if name not in STREAMS:
        raise ValueError(f"unknown stream {name!r}; choose one of {', '.join(STREAMS)}")
    if x.shape[-2] != len(parent):
        raise ValueError(f"x has {x.shape[-2]} joints but the parents name {len(parent)}")
    if name == "joint":
        return x
    if name == "joint_motion":
        return motion(x, missing)
    b, gone = bone(x, parent, missing)
    return b if name == "bone" else motion(b, gone)


def joints_input_stream(x: torch.Tensor, name: str, layout: Layout, coord_dim: int) -> torch.Tensor:
    """The stream `name` of a batch of MotionBERT-path inputs (datasets/pipeline/clips.py), (..., T, V, 3).

    3D clips (coord_dim 3): x, y, z of `layout`'s joints, all-zero where missing; every channel is streamed.
    2D clips (coord_dim 2): x, y in H36M-17 order (H36M_PARENTS) and a score channel, which is kept as it is;
    that input marks no joint as missing in x, y, so no joint is masked. 'joint' returns x itself.
    """
    if name == "joint":
        return x
    if coord_dim == 3:
        return joint_stream(x, name, parents(layout), (x == 0).all(dim=-1))
    xy = joint_stream(x[..., :2], name, H36M_PARENTS)
    return torch.cat([xy, x[..., 2:]], dim=-1)  # (..., T, V, 3)
