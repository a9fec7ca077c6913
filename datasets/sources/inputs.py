"""Readers of new inputs for prediction: pyskl pickles, raw NTU RGB+D `.skeleton` files, per-clip files
(.npy / .npz / .json, as `main.py convert folder` reads them) or a folder of them, and videos, each as pyskl
annotations (`label` optional).

Videos need mediapipe's legacy pose model (optional: `pip install mediapipe==0.10.21`); its one person
per frame gives the COCO-17 joints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets.sources.convert import CLIP_SUFFIXES, KEYPOINT_KEYS, clip_files, folder_annotation, read_clip_file
from datasets.sources.ntu_skeleton import read_skeleton_file
from datasets.store.annotations import KeypointStore, pack_annotations
from datasets.store.layouts import Layout
from utils import safe_pickle
from utils.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
PICKLE_SUFFIXES = (".pkl", ".pickle")
MEDIAPIPE = "mediapipe==0.10.21"  # the last release with the legacy `solutions.pose` API we use
# mediapipe's 33 pose landmarks -> COCO-17 order (nose, eyes, ears, shoulders, elbows, wrists, hips,
# knees, ankles; left before right), the layout the models are trained on.
MEDIAPIPE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


class InputError(UserError, ValueError):
    """An input file that cannot be read for prediction; the message (one line) says what to do."""


def read_input(
    path: str | Path,
    skeleton_2d: bool = False,
    trusted: bool = False,
    layout: Layout | None = None,
    img_shape: tuple[int, int] | None = None,
) -> tuple[list[dict], object]:
    """The annotations of a .pkl, .skeleton, per-clip or video file, or of a folder of per-clip files (pyskl
    dicts; 'label' may be absent), and the joint layout the input declares as a whole: a pyskl file's own
    'layout' entry as written (a name or a declaration dict, None when it has none), `ntu25` for a .skeleton
    file, `coco17` for a video, `layout` for per-clip files (which declare none: they are read in the model's).

    skeleton_2d: read a .skeleton file as colour-image pixels with tracking scores (as
    `datasets.convert ntu --2d` writes them) instead of 3D metres, and a per-clip file's (x, y, score)
    triples as 2D. trusted: unpickle a .pkl whatever it holds (--trust_data), not only what a pyskl file
    holds (utils/safe_pickle.py). layout: the joints of per-clip files (required for them). img_shape:
    (h, w) of 2D per-clip files without an 'img_shape' field."""
    path = Path(path)
    if path.is_dir():
        return read_clip_folder(path, layout, skeleton_2d, img_shape), layout
    if not path.is_file():
        raise InputError(f"input {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in CLIP_SUFFIXES:
        return [read_clip(path, layout, skeleton_2d, img_shape)], layout
    if suffix in PICKLE_SUFFIXES:
        return read_pickle_annotations(path, trusted)
    if suffix == ".skeleton":  # Kinect v2's 25 joints, whichever way they are read
        return [read_skeleton(path, skeleton_2d)], "ntu25"
    if suffix in VIDEO_SUFFIXES:  # mediapipe's landmarks picked into COCO-17 order
        return [read_video(path)], "coco17"
    kinds = ", ".join((*PICKLE_SUFFIXES, ".skeleton", *CLIP_SUFFIXES, *VIDEO_SUFFIXES))
    raise InputError(f"input {path}: unknown file type {suffix or '(none)'!r}; expected one of {kinds}")


def read_pickle_annotations(path: Path, trusted: bool = False) -> tuple[list[dict], object]:
    """A pyskl pickle as a list of annotations: a whole file's 'annotations' (its splits are not
    needed to predict), a bare list, or one annotation dict; and the whole file's 'layout' entry as
    written (None when there is none; per-clip entries stay in the annotations). Only what a pyskl file
    holds is unpickled unless `trusted` (utils/safe_pickle.py); anything else is refused (one line)."""
    try:
        data = safe_pickle.load(path, trusted=trusted, what="annotation file")
    except safe_pickle.UnsafePickleError as e:
        raise InputError(str(e)) from e
    except Exception as e:  # truncated or foreign files raise many different types
        raise InputError(f"{path}: cannot unpickle ({type(e).__name__}: {e}); is it a pyskl .pkl?") from e
    layout = None
    if isinstance(data, dict) and "annotations" in data:
        data, layout = data["annotations"], data.get("layout")
    elif isinstance(data, dict) and "keypoint" in data:
        data = [data]
    if not isinstance(data, list):
        raise InputError(
            f"{path}: expected a pyskl file ({{'split', 'annotations'}}), a list of annotations or one annotation "
            f"dict with 'keypoint', got {type(data).__name__}"
        )
    return data, layout


def read_clip(path: Path, layout: Layout | None, two_d: bool, img_shape: tuple[int, int] | None) -> dict:
    """One per-clip file as the converter reads it (`main.py convert folder`): an annotation with its
    'label' (an int or a class name) when the file has one, and the file's other plain fields (a subject...).
    two_d: a last axis of 3 is (x, y, score), as --xy_score converts it."""
    if layout is None:
        raise InputError(f"{path}: a per-clip file declares no joint layout; read it for a model, which does")
    try:
        fields = read_clip_file(path)
        keypoints = next((fields[k] for k in KEYPOINT_KEYS if k in fields), ())
        xy_score = two_d and np.shape(keypoints)[-1:] == (3,)  # (x, y, score) triples, as --xy_score reads them
        ann = folder_annotation(path.stem, fields, layout, xy_score, img_shape)
    except (OSError, ValueError) as e:  # unreadable, truncated or malformed (JSON errors are ValueErrors)
        raise InputError(f"{path}: {e}") from e
    return ann | ({"label": fields["label"]} if fields.get("label") is not None else {})


def read_clip_folder(folder: Path, layout: Layout | None, two_d: bool, img_shape: tuple[int, int] | None) -> list[dict]:
    """Every per-clip file under `folder` (searched recursively, in path order), as `read_clip` reads it;
    the first that cannot be read stops it, named, in one line."""
    files = clip_files(folder)
    if not files:
        raise InputError(f"input folder {folder} holds no {', '.join(CLIP_SUFFIXES)} clip files")
    return [read_clip(p, layout, two_d, img_shape) for p in files]


def read_skeleton(path: Path, two_d: bool = False) -> dict:
    """A raw NTU RGB+D .skeleton file as one pyskl annotation, by datasets/sources/ntu_skeleton.py, exactly as
    `python -m datasets.convert ntu [--2d]` converts it (label from the file name, -1 if not NTU-named)."""
    try:
        return read_skeleton_file(path, two_d=two_d)
    except Exception as e:  # the converter's own errors, or a file that is not an NTU skeleton
        raise InputError(f"{path}: cannot read as an NTU .skeleton file ({type(e).__name__}: {e})") from e


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
        raise InputError(f"reading videos needs mediapipe (optional): pip install {MEDIAPIPE}") from e
    pose_api = getattr(getattr(mp, "solutions", None), "pose", None)
    if pose_api is None:
        version = getattr(mp, "__version__", "?")
        raise InputError(f"mediapipe {version} has no legacy solutions.pose API: pip install {MEDIAPIPE}")
    try:
        import cv2  # opencv-contrib-python comes with mediapipe, unless it was installed without dependencies
    except ImportError as e:
        raise InputError(f"reading videos needs OpenCV, a dependency of {MEDIAPIPE}: pip install {MEDIAPIPE}") from e

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: cannot open the video with OpenCV")
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
        raise InputError(f"{path}: no frame could be read from the video")
    kp, score = mediapipe_to_coco(np.stack(frames), img_shape)  # (T, 17, 2), (T, 17)
    if not score.any():
        raise InputError(f"{path}: mediapipe found no person in any of its {len(frames)} frames")
    return {
        "frame_dir": path.stem,
        "img_shape": img_shape,
        "original_shape": img_shape,
        "total_frames": len(frames),
        "keypoint": kp[None],  # (1, T, 17, 2): one person
        "keypoint_score": score[None],  # (1, T, 17)
    }


def label_index(label: object, classes: list[str] | None = None) -> int:
    """A clip's label as a class index: a non-negative integer (or a string of one) as it is, a class name by
    its place in `classes`; -1 when absent, negative or a name the classes do not hold."""
    if isinstance(label, (bool, np.bool_)) or label is None:
        return -1
    if isinstance(label, (int, np.integer)) or (isinstance(label, float) and label.is_integer()):
        return int(label) if label >= 0 else -1
    if isinstance(label, str):
        if label.strip().isdigit():
            return int(label)
        return classes.index(label) if classes and label in classes else -1
    return -1


def pack_unlabelled(
    annotations: list[dict], source: str, layout: object = None, classes: list[str] | None = None
) -> tuple[KeypointStore, list[int]]:
    """Validate and pack annotations whose 'label' (and 'frame_dir') may be absent.

    layout: the file-level joint layout (`read_input`), which the store's `layout` carries with the
    clips' own entries (all must agree; datasets/store/annotations.py). classes: the model's class names,
    which a label given as a name is looked up in (`label_index`).
    Returns the store (absent labels stored as 0, which only the data path sees) and the true label
    of each clip, -1 where the input has none.
    """
    anns, labels = [], []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise InputError(f"{source}: annotation {i} is a {type(ann).__name__}, not a dict")
        label = label_index(ann.get("label"), classes)
        labels.append(label)
        anns.append({**ann, "label": max(label, 0), "frame_dir": ann.get("frame_dir", f"{source}#{i}")})
    return pack_annotations({"split": {}, "annotations": anns, "layout": layout}), labels
