"""Class probabilities for new clips from a trained checkpoint.

    python predict.py --checkpoint runs/NAME/best.pt --input clips.pkl          (= python main.py predict ...)
    python predict.py --checkpoint runs/NAME/best.pt --input S001C001P001R001A001.skeleton
    python predict.py --checkpoint runs/NAME/best.pt --input video.mp4 --save_probs probs.json

Inputs (datasets/sources/inputs.py): a pyskl pickle (a whole `{'split', 'annotations'}` file, a list of
annotations, or one annotation; labels optional), a raw NTU RGB+D `.skeleton` file (3D metres, or
colour pixels for a model trained on `datasets.convert ntu --2d` files), or a video, whose one person
is found by mediapipe's legacy pose model (optional: `pip install mediapipe==0.10.21`).
Every clip takes the test path of training evaluation (engine/predict.py). Options: opts.py.
"""

from __future__ import annotations

from engine.predict import run_predict
from opts import parse_predict_args
from utils.errors import exit_on_user_error


def main(argv: list[str] | None = None) -> dict:
    """Returns {frame_dir: {'probs', 'top5', 'label'}}; a user error exits 2 with one line."""
    return exit_on_user_error("predict", run_predict, parse_predict_args(argv))


if __name__ == "__main__":
    main()
