"""Class probabilities for new clips from a trained checkpoint.

    python main.py predict --checkpoint runs/NAME/best.pt --input clips.pkl
    python main.py predict --checkpoint runs/NAME/best.pt --input S001C001P001R001A001.skeleton
    python main.py predict --checkpoint runs/NAME/best.pt --input video.mp4 --save_probs probs.json

Inputs: a pyskl pickle (a whole `{'split', 'annotations'}` file, a list of annotations, or a single
annotation; labels optional), a raw NTU RGB+D `.skeleton` file (datasets/ntu_skeleton.py; 3D metres, or
colour pixels for a model trained on `datasets.convert ntu --2d` files), or a video,
whose one person is found by mediapipe's legacy pose model (optional: `pip install mediapipe==0.10.21`).

Every clip takes the test-time path of training evaluation: `main.eval_dataset` (the checkpoint's
clip_len, input size and persons; `--num_clips` views), `main.model_input` (rendered volumes, with the
flipped view under `--test_flip`), and the softmax averaged over the views as `main.evaluate` does, so
a clip of an annotation file gets here the probabilities that `main.py --evaluate` scored it with.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

import main as cli
from datasets.annotations import AnnotationError, KeypointStore, pack_annotations
from datasets.label_maps import class_names
from datasets.layouts import Layout, get_layout
from utils.checkpoint import CheckpointError, load_full, read_checkpoint
from utils.runtime import Runtime, setup_runtime

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
PICKLE_SUFFIXES = (".pkl", ".pickle")
MEDIAPIPE = "mediapipe==0.10.21"  # the last release with the legacy `solutions.pose` API we use
# mediapipe's 33 pose landmarks -> COCO-17 order (nose, eyes, ears, shoulders, elbows, wrists, hips,
# knees, ankles; left before right), the layout the models are trained on.
MEDIAPIPE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
TOP_K = 5


class PredictError(ValueError):
    """An input or option that cannot be predicted on; the message (one line) says what to do."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py predict",
        description="Top-5 action classes of each clip of a pyskl pickle, an NTU .skeleton file or a video.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint written by main.py (e.g. runs/NAME/best.pt)")
    p.add_argument(
        "--input",
        required=True,
        help="pyskl .pkl (whole file, list of annotations or one annotation), NTU .skeleton, or a video "
        f"({', '.join(VIDEO_SUFFIXES)}; needs {MEDIAPIPE})",
    )
    p.add_argument(
        "--num_clips",
        type=int,
        default=None,
        help="clips sampled per video, probabilities averaged (default: as in training)",
    )
    p.add_argument(
        "--test_flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also test on the horizontally flipped clip (default: as in training)",
    )
    p.add_argument("--save_probs", default=None, metavar="FILE", help="write every clip's probabilities as JSON")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    p.add_argument("-b", "--batch_size", type=int, default=16, help="clips per forward pass (default: %(default)s)")
    p.add_argument("-j", "--workers", type=int, default=0, help="data loading worker processes (default: %(default)s)")
    p.add_argument(
        "--trust_checkpoint",
        action="store_true",
        help="allow a checkpoint that needs full unpickling (trusted files only)",
    )
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_clips is not None and args.num_clips < 1:
        parser.error("--num_clips must be >= 1")
    if args.batch_size < 1 or args.workers < 0:
        parser.error("--batch_size must be >= 1 and --workers >= 0")
    return args


# ----------------------------------------------------------------------------------------------------
# The model


def load_model(
    path: str | Path, device: torch.device, trusted: bool = False
) -> tuple[torch.nn.Module, cli.RunConfig, dict]:
    """Rebuild the model of a main.py checkpoint from its own configuration.

    Returns (model in eval mode on `device`, its RunConfig, the training run's saved flags (may be {})).
    Raises CheckpointError (one line) for missing, corrupt or foreign files.
    """
    ckpt = read_checkpoint(path, trusted=trusted)
    if "config" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{path} has no run configuration; predict with a checkpoint written by main.py")
    try:
        cfg = cli.RunConfig(**ckpt["config"])
        model = cli.build_model(cfg)
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: its configuration does not build a model here ({e})") from e
    load_full(model, ckpt["model"])  # strict, with missing/unexpected keys named in one line
    return model.to(device).eval(), cfg, dict(ckpt.get("args") or {})


# ----------------------------------------------------------------------------------------------------
# Inputs -> pyskl annotations


def read_input(path: str | Path, skeleton_2d: bool = False) -> list[dict]:
    """The annotations of a .pkl, .skeleton or video file (pyskl dicts; 'label' may be absent).

    skeleton_2d: read a .skeleton file as colour-image pixels with tracking scores (as
    `datasets.convert ntu --2d` writes them) instead of 3D metres."""
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"input {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return read_pickle_annotations(path)
    if suffix == ".skeleton":
        return [read_skeleton(path, skeleton_2d)]
    if suffix in VIDEO_SUFFIXES:
        return [read_video(path)]
    kinds = ", ".join((*PICKLE_SUFFIXES, ".skeleton", *VIDEO_SUFFIXES))
    raise PredictError(f"input {path}: unknown file type {suffix or '(none)'!r}; expected one of {kinds}")


def read_pickle_annotations(path: Path) -> list[dict]:
    """A pyskl pickle as a list of annotations: a whole file's 'annotations' (its splits are not
    needed to predict), a bare list, or one annotation dict."""
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except Exception as e:  # truncated or foreign files raise many different types
        raise PredictError(f"{path}: cannot unpickle ({type(e).__name__}: {e}); is it a pyskl .pkl?") from e
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]
    elif isinstance(data, dict) and "keypoint" in data:
        data = [data]
    if not isinstance(data, list):
        raise PredictError(
            f"{path}: expected a pyskl file ({{'split', 'annotations'}}), a list of annotations or one annotation "
            f"dict with 'keypoint', got {type(data).__name__}"
        )
    return data


def read_skeleton(path: Path, two_d: bool = False) -> dict:
    """A raw NTU RGB+D .skeleton file as one pyskl annotation, by datasets/ntu_skeleton.py, exactly as
    `python -m datasets.convert ntu [--2d]` converts it (label from the file name, -1 if not NTU-named)."""
    try:
        from datasets.ntu_skeleton import read_skeleton_file
    except ImportError as e:
        if e.name not in ("datasets.ntu_skeleton", None):
            raise PredictError(f"reading .skeleton files failed to import {e.name} ({e})") from e
        raise PredictError(
            "reading NTU .skeleton files needs datasets/ntu_skeleton.py (read_skeleton_file), which this "
            "checkout lacks; convert the file to a pyskl .pkl and pass that instead"
        ) from e
    try:
        return read_skeleton_file(path, two_d=two_d)
    except Exception as e:  # the converter's own errors, or a file that is not an NTU skeleton
        raise PredictError(f"{path}: cannot read as an NTU .skeleton file ({type(e).__name__}: {e})") from e


def mediapipe_to_coco(landmarks: np.ndarray, img_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """mediapipe pose landmarks -> COCO-17 pixel keypoints and scores.

    landmarks: (T, 33, 3) normalised x, y (fractions of the frame's width and height) and visibility,
    all zeros for frames without a person. img_shape: (h, w) in pixels.
    Returns keypoint float32 (T, 17, 2) in pixels and keypoint_score float32 (T, 17) (visibility);
    frames without a person stay (0, 0) with score 0, pyskl's mark of a missing joint.
    """
    h, w = img_shape
    picked = landmarks[:, MEDIAPIPE_TO_COCO17]  # (T, 17, 3)
    kp = picked[..., :2] * np.array([w, h], dtype=np.float32)  # (T, 17, 2) pixels
    return kp.astype(np.float32), picked[..., 2].astype(np.float32)


def read_video(path: Path, model_complexity: int = 1) -> dict:
    """Detect one person per frame with mediapipe's legacy pose model; one pyskl annotation (no label).

    The annotation holds keypoint (1, T, 17, 2) float32 pixels (COCO-17), keypoint_score (1, T, 17)
    (visibility), img_shape (h, w) and total_frames T; frame_dir is the file's stem. The models ship
    inside the mediapipe wheel for model_complexity=1 only, so nothing is downloaded; 0 and 2 are fetched
    by mediapipe at first use, which fails offline.
    """
    try:
        import mediapipe as mp
    except ImportError as e:
        raise PredictError(f"reading videos needs mediapipe (optional): pip install {MEDIAPIPE}") from e
    pose_api = getattr(getattr(mp, "solutions", None), "pose", None)
    if pose_api is None:
        version = getattr(mp, "__version__", "?")
        raise PredictError(f"mediapipe {version} has no legacy solutions.pose API: pip install {MEDIAPIPE}")
    try:
        import cv2  # opencv-contrib-python comes with mediapipe, unless it was installed without dependencies
    except ImportError as e:
        raise PredictError(f"reading videos needs OpenCV, a dependency of {MEDIAPIPE}: pip install {MEDIAPIPE}") from e

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise PredictError(f"{path}: cannot open the video with OpenCV")
    frames, img_shape = [], None
    try:
        with pose_api.Pose(static_image_mode=False, model_complexity=model_complexity) as pose:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                img_shape = tuple(int(s) for s in bgr.shape[:2])
                found = pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).pose_landmarks
                if found is None:
                    frames.append(np.zeros((33, 3), dtype=np.float32))
                else:
                    frames.append(np.array([(p.x, p.y, p.visibility) for p in found.landmark], dtype=np.float32))
    finally:
        cap.release()
    if not frames:
        raise PredictError(f"{path}: no frame could be read from the video")
    kp, score = mediapipe_to_coco(np.stack(frames), img_shape)  # (T, 17, 2), (T, 17)
    if not score.any():
        raise PredictError(f"{path}: mediapipe found no person in any of its {len(frames)} frames")
    return {
        "frame_dir": path.stem,
        "img_shape": img_shape,
        "original_shape": img_shape,
        "total_frames": len(frames),
        "keypoint": kp[None],  # (1, T, 17, 2): one person
        "keypoint_score": score[None],  # (1, T, 17)
    }


def pack_unlabelled(annotations: list[dict], source: str) -> tuple[KeypointStore, list[int]]:
    """Validate and pack annotations whose 'label' (and 'frame_dir') may be absent.

    Returns the store (absent labels stored as 0, which only the data path sees) and the true label
    of each clip, -1 where the input has none.
    """
    anns, labels = [], []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise PredictError(f"{source}: annotation {i} is a {type(ann).__name__}, not a dict")
        label = ann.get("label")
        known = label is not None and not (isinstance(label, (int, np.integer)) and label < 0)
        labels.append(int(label) if known and isinstance(label, (int, np.integer)) else -1)
        anns.append({**ann, "label": label if known else 0, "frame_dir": ann.get("frame_dir", f"{source}#{i}")})
    return pack_annotations({"split": {}, "annotations": anns}), labels


# ----------------------------------------------------------------------------------------------------
# Prediction


@torch.no_grad()
def predict_probs(
    model: torch.nn.Module, loader: DataLoader, cfg: cli.RunConfig, layout: Layout, rt: Runtime, test_flip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of every clip of the loader, computed as in `main.evaluate`.

    Returns (store indices (N,), probabilities (N, C) float32): the softmax of every clip view (and
    flipped view), averaged.
    """
    model.eval()
    indices, probs = [], []
    for batch in loader:
        probs.append(cli.batch_probs(model, batch, cfg, layout, rt, test_flip).cpu())  # (B, C)
        indices.append(batch["index"])
    return torch.cat(indices).numpy(), torch.cat(probs).numpy()


def top_classes(probs: np.ndarray, names: list[str], k: int = TOP_K) -> list[list]:
    """[[class_id, name, probability], ...] of the k most probable classes, most probable first."""
    order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [[int(c), names[c], float(probs[c])] for c in order]


def main(argv: list[str] | None = None) -> dict:
    """Run the predict subcommand; returns {frame_dir: {'probs', 'top5', 'label'}} (label -1: unknown).
    Every expected failure exits with one line (exit code 1)."""
    args = parse_args(argv)
    try:
        return run(args)
    except (PredictError, AnnotationError, CheckpointError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


def run(args: argparse.Namespace) -> dict:
    try:
        rt, _ = setup_runtime(args.device, None, "none")
    except RuntimeError as e:
        raise PredictError(str(e)) from e
    model, cfg, trained = load_model(args.checkpoint, rt.device, args.trust_checkpoint)
    layout = get_layout(cfg.layout)
    num_clips = args.num_clips if args.num_clips is not None else int(trained.get("num_clips", 1))
    test_flip = args.test_flip if args.test_flip is not None else bool(trained.get("test_flip", False))
    if test_flip and cfg.pipeline == "motionbert":
        raise PredictError("--test_flip is for rendered volumes (PoseConv3D, TSM), not MotionBERT: use --no-test_flip")
    if num_clips > 1 and cfg.pipeline == "motionbert":  # its test view is the whole clip, resampled (main.py too)
        raise PredictError("--num_clips is for PoseConv3D and TSM: MotionBERT tests the whole clip, resampled once")

    source = Path(args.input).name
    # A .skeleton file is read as the model's training data was converted: 2D pixels or 3D metres.
    store, labels = pack_unlabelled(read_input(args.input, skeleton_2d=cfg.coord_dim == 2), source)
    cli.check_fits(store, cfg, layout, source)
    # The training run's seed, so that the clips are sampled exactly as its evaluation sampled them.
    test_opts = argparse.Namespace(num_clips=num_clips, seed=int(trained.get("seed", 0)))
    dataset = cli.eval_dataset(store, np.arange(len(store)), cfg, layout, test_opts, 0.0)
    loader = cli.make_loader(dataset, args.batch_size, rt, test_opts.seed, False, args.workers)
    indices, probs = predict_probs(model, loader, cfg, layout, rt, test_flip)

    # A custom file of NTU clips has NTU's names (its run config says which); other files: the dataset's.
    names = class_names(cfg.label_map or trained.get("dataset"), cfg.num_classes)
    model_desc = f"{args.checkpoint} ({cfg.model_name}, {cfg.num_classes} classes)"
    views = f"{num_clips} sampled clip(s) each" + (", flipped too" if test_flip else "")
    print(f"{model_desc}: {len(store)} video(s) in {source}, {views}")
    results = {}
    for i, p in zip(indices.tolist(), probs, strict=True):
        name, label = store.names[i], labels[i]
        top = top_classes(p, names)
        truth = f"  (label {label}: {names[label]})" if 0 <= label < len(names) else ""
        print(f"{name}{truth}")
        for cid, cname, prob in top:
            print(f"  {100 * prob:5.1f}%  {cid:>3d}  {cname}")
        results[name] = {"probs": p.tolist(), "top5": top, "label": label}
    if args.save_probs:
        out = Path(args.save_probs)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
        print(f"probabilities written to {out}")
    return results


if __name__ == "__main__":
    main()
