"""Show what each corruption does to one clip, before reading a number: one PNG grid, a row per family of the
corruption suite (datasets/pipeline/corruptions.py) and a column per level (clean, light, moderate, severe).

    python scripts/show_corruptions.py                  # the built-in synthetic data's first test clip
    python scripts/show_corruptions.py --ann_file data/nturgbd/ntu60_3danno.pkl --clip S001C001P001R001A001

The clip is corrupted exactly as the robustness sweep corrupts that test clip: corrupt(clip, family, severity,
corruption_rng(family, severity, index)) with index the clip's position in the file's 'annotations' (its store
index), so each panel is the clip the sweep scores at that row. Jitter is the joint-coordinate models' clip;
volume models draw the same noise on their sampled frames (datasets/pipeline/clips.py).

Each panel is a strip of --frames frames drawn with the layout's limbs (left side red, right side blue, so a
swap shows; the rest grey); a missing joint is not drawn, nor is any limb that touches it. 2D is drawn in image
coordinates (y down), 3D as the orthographic front view (x, -y) of the rendered inputs
(datasets/pipeline/clips.project_3d). Every frame is centred where its clean frame is centred, and every panel
has the same scale, so jitter and outliers move joints away from where they were. Under the skeletons, a
strip has one mark per frame of the clean clip: dark kept as it is, orange kept but changed, light dropped;
triangles mark the frames drawn, whose clean frame numbers are written under them. A temporal family draws
evenly over the frames it keeps, as a uniform frame sampler would.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

# Run as `python scripts/show_corruptions.py`, the script's own folder is on sys.path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.pipeline.corruptions import FAMILIES, corrupt, corruption_rng  # noqa: E402
from datasets.pipeline.noise import visible_joints  # noqa: E402
from datasets.store.annotations import KeypointStore, load_pickle, pack_annotations  # noqa: E402
from datasets.store.catalog import load_store  # noqa: E402
from datasets.store.layouts import Layout, choose_layout  # noqa: E402
from utils.atomic import atomic_write, check_writable  # noqa: E402
from utils.errors import OneLineParser, UserError, exit_on_user_error  # noqa: E402

if TYPE_CHECKING:  # matplotlib is imported where the figure is drawn, so the panels need none of it
    from matplotlib.axes import Axes
    from matplotlib.patches import Patch

PROG = "show_corruptions.py"
DPI = 100
FRAME_IN, PANEL_H_IN = 0.8, 1.9  # inches: the width of one drawn frame, the height of one row of panels
LABEL_IN, HEADER_IN = 1.5, 0.9  # inches: the row labels on the left, the title on top
FRAME_ASPECT = 0.55  # a drawn frame is at least this wide for its height, about what a panel's shape leaves
MARGIN = 0.12  # empty space around the largest skeleton of a frame, a fraction of its size on each side
SIDE_COLOURS = {"left": "tab:red", "right": "tab:blue", "centre": "0.35"}
STRIP_COLOURS = {"kept": (0.25, 0.25, 0.25), "changed": (1.0, 0.55, 0.0), "dropped": (0.87, 0.87, 0.87)}


@dataclass(frozen=True)
class Panel:
    """One panel of the grid: the clip under (family, severity), or the clean clip (family and level 'clean').

    keypoint (M, T', V, C) and keypoint_score (M, T', V), float32: what `corrupt` returns.
    kept (T',) int64: the clean frame each frame is (0 .. T - 1 unless the family is temporal).
    changed (T',) bool: frames that differ from their clean frame in a coordinate or a score.
    """

    family: str
    level: str
    severity: float
    keypoint: np.ndarray
    keypoint_score: np.ndarray
    kept: np.ndarray
    changed: np.ndarray


def kept_frames(
    family: str, severity: float, index: int, shape: tuple[int, ...], img_shape: tuple[int, int], layout: Layout
) -> np.ndarray:
    """The frames that (family, severity) keeps of clip `index`, whose keypoints have shape (M, T, V, C): (T',) int64.

    Read from `corrupt` itself: a temporal family keeps whole frames, in order, and draws the same numbers
    whatever the coordinates (corruptions.py), so corrupting a clip whose frame t holds the number t + 1 with
    a fresh corruption_rng(family, severity, index) keeps the frames it keeps of the real clip.
    """
    num_frames = shape[1]
    if not FAMILIES[family].temporal:
        return np.arange(num_frames)
    tags = np.broadcast_to(np.arange(1, num_frames + 1, dtype=np.float32)[None, :, None, None], shape)
    rng = corruption_rng(family, severity, index)
    kp, _ = corrupt(tags, np.ones(shape[:3], np.float32), family, severity, rng, img_shape=img_shape, layout=layout)
    return kp[0, :, 0, 0].astype(np.int64) - 1  # (T',)


def corruption_panels(clip: dict, index: int, layout: Layout) -> list[list[Panel]]:
    """The grid's panels: one row per family of `FAMILIES`, in its order, each [clean, light, moderate, severe].

    clip: a store clip (`KeypointStore.get`): keypoint (M, T, V, C), keypoint_score (M, T, V), img_shape.
    index: its store index, which seeds each panel's generator corruption_rng(family, severity, index).
    """
    kp, score, img_shape = clip["keypoint"], clip["keypoint_score"], clip["img_shape"]
    num_frames = kp.shape[1]
    clean_kp, clean_score = kp.astype(np.float32), score.astype(np.float32)
    clean = Panel("clean", "clean", 0.0, clean_kp, clean_score, np.arange(num_frames), np.zeros(num_frames, bool))
    rows = []
    for family in FAMILIES.values():
        row = [clean]
        for level, severity in family.levels.items():
            rng = corruption_rng(family.name, severity, index)
            k, s = corrupt(kp, score, family.name, severity, rng, img_shape=img_shape, layout=layout)
            kept = kept_frames(family.name, severity, index, kp.shape, img_shape, layout)
            changed = np.any(k != clean_kp[:, kept], axis=(0, 2, 3)) | np.any(s != clean_score[:, kept], axis=(0, 2))
            row.append(Panel(family.name, level, severity, k, s, kept, changed))
        rows.append(row)
    return rows


def drawn_frames(num_frames: int, count: int) -> np.ndarray:
    """Positions of the frames a panel draws: `count` of 0 .. num_frames - 1, evenly spaced (fewer if T' is less)."""
    return np.unique(np.round(np.linspace(0, num_frames - 1, min(count, num_frames))).astype(np.int64))


def view(keypoint: np.ndarray) -> np.ndarray:
    """Drawing coordinates, y down, (..., C) -> (..., 2) float64: 2D pixels as they are, 3D the front view (x, -y)."""
    if keypoint.shape[-1] == 2:
        return keypoint.astype(np.float64)
    return np.stack([keypoint[..., 0], -keypoint[..., 1]], axis=-1).astype(np.float64)


def frame_geometry(clean: Panel) -> tuple[np.ndarray, np.ndarray]:
    """Where each clean frame is centred, (T, 2) (the middle of its visible joints' bounding box, the clip's
    for a frame with none), and the size (2,) of a drawn frame: the largest frame's extent plus margins."""
    xy = view(clean.keypoint)  # (M, T, V, 2)
    seen = visible_joints(clean.keypoint, clean.keypoint_score)[..., None]  # (M, T, V, 1)
    if not seen.any():
        raise UserError("the clip has no visible joint: nothing to show")
    lo = np.where(seen, xy, np.inf).min(axis=(0, 2))  # (T, 2)
    hi = np.where(seen, xy, -np.inf).max(axis=(0, 2))
    empty = ~np.isfinite(lo).all(axis=-1)  # (T,) frames without a visible joint
    lo[empty], hi[empty] = lo[~empty].min(axis=0), hi[~empty].max(axis=0)
    extent = (hi - lo)[~empty].max(axis=0)
    extent = np.maximum(extent, 1e-6)  # a one-joint skeleton still gets a box
    # A standing person is narrow: widen the frame to fill the panel (FRAME_ASPECT) rather than leave it empty.
    extent = np.maximum(extent, (FRAME_ASPECT * extent[1], 0.3 * extent[0]))
    return (lo + hi) / 2, extent * (1 + 2 * MARGIN)


def limb_colours(layout: Layout) -> list[str]:
    """The colour of each limb of `layout`: by side (a limb touching a left joint is left, ...), else centre."""
    left, right = set(layout.left), set(layout.right)
    return [
        SIDE_COLOURS["left"] if {a, b} & left else SIDE_COLOURS["right"] if {a, b} & right else SIDE_COLOURS["centre"]
        for a, b in layout.limbs
    ]


def draw_skeleton(ax: Axes, xy: np.ndarray, visible: np.ndarray, layout: Layout, clip_box: Patch) -> None:
    """One person in one frame: limbs between visible joints and the visible joints, clipped to `clip_box`.
    xy: (V, 2) drawing coordinates; visible: (V,) bool."""
    from matplotlib.collections import LineCollection

    colours = limb_colours(layout)
    drawn = [i for i, (a, b) in enumerate(layout.limbs) if visible[a] and visible[b]]
    lines = LineCollection([xy[list(layout.limbs[i])] for i in drawn], colors=[colours[i] for i in drawn], lw=1.3)
    ax.add_collection(lines)
    dots = ax.scatter(xy[visible, 0], xy[visible, 1], s=2.5, c="k", zorder=3, linewidths=0)
    for artist in (lines, dots):
        artist.set_clip_path(clip_box)


def draw_panel(ax: Axes, panel: Panel, layout: Layout, geometry: tuple[np.ndarray, np.ndarray], frames: int) -> None:
    """A strip of `frames` frames of `panel`, each centred as its clean frame, and the frame strip under them
    (module docstring). geometry: `frame_geometry` of the clean clip."""
    from matplotlib.patches import Rectangle

    centres, (w, h) = geometry
    xy = view(panel.keypoint)  # (M, T', V, 2)
    visible = visible_joints(panel.keypoint, panel.keypoint_score)  # (M, T', V)
    for slot, pos in enumerate(drawn_frames(len(panel.kept), frames)):
        t = int(panel.kept[pos])
        cell = Rectangle((slot * w - w / 2, -h / 2), w, h, facecolor="0.96", edgecolor="white", lw=1.5, zorder=0)
        ax.add_patch(cell)
        for m in range(xy.shape[0]):  # every person, moved so that the clean frame's centre is the cell's
            draw_skeleton(ax, xy[m, pos] - centres[t] + (slot * w, 0), visible[m, pos], layout, cell)
        ax.text(slot * w, h / 2 + 0.03 * h, str(t), ha="center", va="top", fontsize=6, color="0.3")
    draw_strip(ax, panel, len(centres), frames * w, (w, h), frames)
    ax.set_xlim(-w / 2, (frames - 0.5) * w)
    ax.set_ylim(0.78 * h, -h / 2)  # y down, as in the image
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_strip(ax: Axes, panel: Panel, num_frames: int, width: float, size: tuple[float, float], frames: int) -> None:
    """Below the drawn frames: one mark per clean frame (kept, changed or dropped) over `width` data units, and
    a triangle over each drawn frame. num_frames: T of the clean clip; size: a drawn frame's (w, h)."""
    w, h = size
    colours = np.tile(np.array(STRIP_COLOURS["dropped"]), (num_frames, 1))  # (T, 3)
    colours[panel.kept] = STRIP_COLOURS["kept"]
    colours[panel.kept[panel.changed]] = STRIP_COLOURS["changed"]
    top, bottom, x0 = 0.66 * h, 0.76 * h, -w / 2
    ax.imshow(colours[None], extent=(x0, x0 + width, bottom, top), aspect="auto", interpolation="nearest", zorder=1)
    shown = panel.kept[drawn_frames(len(panel.kept), frames)]
    ax.plot(x0 + (shown + 0.5) * width / num_frames, np.full(len(shown), top), "v", ms=3, color="k", clip_on=False)


def panel_title(panel: Panel, clean: Panel) -> str:
    """Two lines: the level and severity, then what changed (frames kept, joints visible, frames changed)."""
    num_frames = len(clean.kept)
    if panel.family == "clean":
        head = f"clean, {num_frames} frames"
    else:
        head = f"{panel.level} ({panel.severity:.3g})"
    if panel.family != "clean" and FAMILIES[panel.family].temporal:
        return f"{head}\n{len(panel.kept)}/{num_frames} frames kept"
    joints = int(visible_joints(panel.keypoint, panel.keypoint_score).sum())
    clean_joints = int(visible_joints(clean.keypoint, clean.keypoint_score).sum())
    return f"{head}\n{joints}/{clean_joints} joints, {int(panel.changed.sum())}/{num_frames} frames changed"


def figure_size(rows: int, columns: int, frames: int) -> tuple[float, float]:
    """The figure's (width, height) in inches; the PNG is DPI times that, in pixels."""
    return LABEL_IN + columns * frames * FRAME_IN, HEADER_IN + rows * PANEL_H_IN


def draw_grid(panels: list[list[Panel]], layout: Layout, title: str, out: Path, frames: int) -> None:
    """Write the grid of `panels` (rows of [clean, light, moderate, severe]) as a PNG at `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, columns = len(panels), len(panels[0])
    width, height = figure_size(rows, columns, frames)
    fig, axes = plt.subplots(rows, columns, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=LABEL_IN / width, right=0.995, bottom=0.01, top=1 - HEADER_IN / height, hspace=0.45)
    clean = panels[0][0]
    geometry = frame_geometry(clean)
    for row, axes_row in zip(panels, axes, strict=True):
        for panel, ax in zip(row, axes_row, strict=True):
            draw_panel(ax, panel, layout, geometry, frames)
            ax.set_title(panel_title(panel, clean), fontsize=7, pad=2)
        family = FAMILIES[row[1].family]
        label = f"{family.name}\n" + textwrap.fill(family.parameter, 26)
        axes_row[0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center", labelpad=6)
    fig.suptitle(title, fontsize=9, y=1 - 0.12 / height, va="top")
    try:
        with atomic_write(out, "wb", "--out") as f:
            fig.savefig(f, format=out.suffix[1:] or "png", dpi=DPI)
    finally:
        plt.close(fig)


def open_file(args: argparse.Namespace) -> tuple[KeypointStore, Path, Layout]:
    """The annotation file (--ann_file, else the built-in synthetic data as main.py makes it), its path and
    the joint layout of its keypoints (--layout, else the file's, else the dataset's or an inferred one)."""
    if args.ann_file:
        path = Path(args.ann_file)
        store, default = pack_annotations(load_pickle(path)), None
    else:
        options = {"clips_per_class_per_subject": args.synthetic_clips, "seed": args.synthetic_seed}
        store, path = load_store("synthetic", args.data_root, synthetic_options=options)
        default = "coco17"
    layout, note = choose_layout(store.num_joints, store.coord_dim, given=args.layout, declared=store.layout,
                                 default=default, source=path.name)  # fmt: skip
    if note:
        print(f"note: {note}")
    return store, path, layout


def pick_clip(store: KeypointStore, clip: str | None, split: str, source: str) -> int:
    """The store index of --clip: a frame_dir of the file, or a position in the split `split` (None: its first
    clip). UserError (one line) when there is no such clip."""
    if clip is not None and clip in store.names:
        return store.names.index(clip)
    if clip is not None and not clip.isdigit():
        raise UserError(f"{source} has no clip named {clip!r}; pass a frame_dir of the file or a position in --split")
    if split not in store.splits:
        known = ", ".join(sorted(store.splits)) or "none"
        raise UserError(f"{source} has no split {split!r} (its splits: {known}); pass --split, or --clip FRAME_DIR")
    order = store.split_indices(split)
    position = int(clip or 0)
    if position >= len(order):
        raise UserError(
            f"--clip {position}: split {split!r} of {source} holds {len(order)} clips (0 .. {len(order) - 1})"
        )
    return int(order[position])


def run(args: argparse.Namespace) -> dict:
    """Draw the grid of one clip into args.out; returns {'out', 'index', 'frame_dir', 'panels'}."""
    check_writable(args.out, "the figure", "--out")
    store, path, layout = open_file(args)
    index = pick_clip(store, args.clip, args.split, path.name)
    clip = store.get(index)
    panels = corruption_panels(clip, index, layout)
    m, t = clip["keypoint"].shape[:2]
    space = "2D pixels, y down" if store.coord_dim == 2 else "3D metres, front view (x, -y)"
    title = (
        f"{clip['frame_dir']} (label {clip['label']}), clip {index} of {path.name}: {layout.name}, {space}, "
        f"{m} person{'s' * (m > 1)}, {t} frames\neach panel: corrupt(clip, family, severity, "
        f"corruption_rng(family, severity, {index})), the clip the robustness sweep scores; limbs: left red, "
        f"right blue\nstrip: one mark per clean frame, dark kept, orange changed, light dropped; "
        f"triangles: the frames drawn (numbered below them)"
    )
    out = Path(args.out)
    draw_grid(panels, layout, title, out, args.frames)
    print(out)
    return {"out": out, "index": index, "frame_dir": clip["frame_dir"], "panels": panels}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--ann_file", default=None, help="a pyskl annotation file (2D or 3D); none: the built-in synthetic data"
    )
    p.add_argument(
        "--clip", default=None, help="a frame_dir of the file, or a position in --split; none: the split's first clip"
    )
    p.add_argument("--split", default="xsub_val", help="the test split that a position in --clip counts in")
    p.add_argument("--layout", default=None, help="joint layout (a built-in name or FILE.json), as main.py's")
    p.add_argument("--frames", type=int, default=4, help="frames drawn in each panel")
    p.add_argument("--out", default="runs/corruptions.png", help="the PNG to write")
    g = p.add_argument_group("the built-in synthetic data (without --ann_file), as main.py's flags make it")
    g.add_argument("--data_root", default="data", help="folder holding the synthetic cache")
    g.add_argument("--synthetic_clips", type=int, default=8, help="clips per class and per subject")
    g.add_argument("--synthetic_seed", type=int, default=0, help="generator seed")
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    return exit_on_user_error(PROG, run, args)


if __name__ == "__main__":
    main()
