"""Typed configuration of a run. The CLI (opts.py) turns its flags into these; nothing in the engine
reads an argparse Namespace.

- `RunConfig`: what the model and the data path depend on; saved in every checkpoint, so `--evaluate`,
  `--resume` and `predict` rebuild exactly the trained model and its test path.
- `TrainConfig`, `OptimConfig`, `EvalConfig`: how a run trains and evaluates; `LossConfig` (the
  objective) lives with the objective in engine/objective.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from datasets.batch.render import input_channels
from datasets.batch.streams import STREAMS
from datasets.pipeline.augment import AugmentConfig
from datasets.pipeline.clips import JOINTS, READS
from datasets.pipeline.motionbert_prep import JOINT_ORDERS
from datasets.store.layouts import Layout, definition, get_layout
from models import ModelSpec, check_kwargs, model_spec
from utils.errors import UserError


@dataclass(frozen=True)
class RunConfig:
    """What the model and the data path depend on; saved in every checkpoint."""

    model_name: str  # registry name
    model_cfg: dict  # constructor keyword arguments
    reads: str  # what the model reads, which decides the data path: 'volume' or 'joints' (models/registry.py)
    input_format: str  # Heatmap | Limb | Grayscale | Skeleton
    clip_len: int
    input_size: int
    max_persons: int
    layout: str
    num_classes: int
    coord_dim: int = 2  # of the training keypoints: 2 (pixels + scores) or 3 (metres)
    # Class names: a built-in map ('ntu60', 'ntu120': a custom file of NTU clips) or the file's own 'classes'
    # (label i is label_map[i]); None: by the dataset's name.
    label_map: str | list[str] | None = None
    stream: str = "joint"  # coordinate inputs: joint, bone, joint_motion or bone_motion (datasets/batch/streams.py)
    layout_def: dict | None = None  # a declared layout's definition (datasets/store/layouts.py); None: built in
    test_input_size: int | None = None  # side of the rendered frames at evaluation; None: input_size
    # The Skeleton input of a volume model on 3D clips carries each joint's depth (x, y, depth per joint);
    # False: the front view alone (runs before it existed).
    skeleton_depth: bool = False
    # Coordinate inputs carry a seen (1) / missing (0) channel per joint (--visibility): Skeleton volumes, GCNs.
    visibility: bool = False

    @cached_property
    def joint_layout(self) -> Layout:
        """The joint layout of the model's input: the built-in one of that name, or the declared one rebuilt
        from its definition (datasets/store/layouts.py)."""
        return get_layout(self.layout, self.layout_def)

    @property
    def joints_prep(self) -> str:
        """How the clips of a model of joint coordinates are prepared: 'motionbert' or 'gcn' (models/registry.py)."""
        return model_spec(self.model_name).joints_prep

    @property
    def test_size(self) -> int:
        """Side in pixels of the frames rendered for evaluation (validation, test, predict)."""
        return self.test_input_size or self.input_size


# Checkpoints written before the data path took the registry's vocabulary name it `pipeline`, 'pose' or
# 'motionbert'; `saved_config` maps them, the one place that knows the old names.
_OLD_READS = {"pose": "volume", "motionbert": "joints"}


def saved_config(saved: dict) -> dict:
    """A checkpoint's saved run configuration (a dict) in today's vocabulary: an old `pipeline` entry becomes
    `reads`. Returns a new dict; a dict of today's fields comes back equal."""
    saved = dict(saved)
    if "pipeline" in saved and "reads" not in saved:
        old = saved.pop("pipeline")
        saved["reads"] = _OLD_READS.get(old, old)
    return saved


def load_run_config(saved: dict) -> RunConfig:
    """The RunConfig of a checkpoint's saved configuration (any version). Raises TypeError for unknown or
    missing fields and ValueError for an unknown input kind."""
    cfg = RunConfig(**saved_config(saved))
    if cfg.reads not in READS:
        raise ValueError(f"unknown input kind {cfg.reads!r}")
    return cfg


def resolve_run_config(
    model_name: str,
    *,
    input_format: str,
    layout: Layout,
    num_joints: int,
    coord_dim: int,
    num_classes: int,
    dropout: float,
    clip_len: int | None,
    input_size: int,
    max_persons: int,
    in_channels: int | None = None,
    model_kwargs: dict | None = None,
    label_map: str | list[str] | None = None,
    stream: str = "joint",
    test_input_size: int | None = None,
    visibility: bool = False,
) -> RunConfig:
    """The run configuration of a backbone on data of `num_joints` joints in `coord_dim` dimensions.

    in_channels: what the user asked for (None: derived), checked against the input format.
    clip_len: frames per clip (None: the backbone's default, or its `clip_len_arg`).
    model_kwargs: backbone-specific constructor arguments (its own flags, then --model_cfg), applied last.
    stream: the input stream of coordinate inputs (Skeleton, MotionBERT): joints, bones or their motions.
    test_input_size: side of the rendered frames at evaluation (None: input_size; pyskl trains at 56, tests at 64).
    visibility: a seen / missing channel per joint in a coordinate input (Skeleton volumes, graph networks).
    Raises UserError (one line) for a combination that cannot work, or `model_kwargs` the backbone rejects.
    """
    spec = model_spec(model_name)
    fmt = "Heatmap" if input_format == "NCTHW_Heatmap" else input_format
    if num_joints != layout.num_joints:
        raise UserError(f"the data has {num_joints} joints but layout {layout.name} has {layout.num_joints}")
    _check_input(spec, fmt, stream, coord_dim, layout)
    depth = spec.reads == "volume" and fmt == "Skeleton" and coord_dim == 3
    if visibility and not ((spec.reads == "volume" and fmt == "Skeleton") or spec.joints_prep == "gcn"):
        raise UserError(f"--visibility is a channel of coordinate inputs: --input_f Skeleton or a graph network, "
                        f"not {model_name} on {fmt}")  # fmt: skip
    size = _input_kwargs(spec, fmt, layout, max_persons, in_channels, depth, visibility)
    cfg = _model_cfg(model_name, {"num_classes": num_classes, "dropout": dropout, **size}, model_kwargs or {})
    return RunConfig(
        model_name=model_name,
        model_cfg=cfg,
        reads=spec.reads,
        input_format=fmt,
        clip_len=_clip_len(spec, cfg, clip_len),
        input_size=input_size,
        test_input_size=test_input_size,
        max_persons=max_persons,
        layout=layout.name,
        layout_def=definition(layout),  # so that --evaluate and predict rebuild a declared layout
        num_classes=num_classes,
        coord_dim=coord_dim,
        label_map=label_map,
        stream=stream,
        skeleton_depth=depth,
        visibility=visibility,
    )


def _model_cfg(model_name: str, derived: dict, model_kwargs: dict) -> dict:
    """The constructor arguments of the backbone: those `derived` from the data and flags, then `model_kwargs`
    (its own flags and --model_cfg), checked by building it on the meta device (models.check_kwargs), so that a
    value its constructor rejects is one line (UserError) before anything is written."""
    cfg = {**derived, **model_kwargs}
    try:
        check_kwargs(model_name, **cfg)
    except ValueError as e:
        if not model_kwargs:  # the arguments derived from the data alone: a bug, not the user's
            raise
        given = " ".join(f"{k}={v}".replace(" ", "") for k, v in model_kwargs.items())
        raise UserError(f"--model_cfg {given}: {e}") from e
    return cfg


def _input_kwargs(
    spec: ModelSpec,
    fmt: str,
    layout: Layout,
    max_persons: int,
    in_channels: int | None,
    depth: bool = False,
    visibility: bool = False,
) -> dict:
    """The constructor arguments that size a backbone's input: `in_channels` of a rendered volume (checked
    against what the user asked for), or `num_joints` of joint coordinates, with a graph network's layout
    (a declared one by its definition) and persons. Raises UserError."""
    if spec.reads == "volume":
        needed = input_channels(fmt, max_persons, layout, depth, visibility)
        if in_channels is not None and in_channels != needed:
            raise UserError(
                f"--in_channels {in_channels} does not fit --input_f {fmt} with {max_persons} "
                f"persons and {layout.num_joints} joints: use --in_channels {needed}"
            )
        return {"in_channels": needed}
    out = {"num_joints": layout.num_joints}
    if spec.joints_prep == "gcn":  # the graph of the layout's joints
        out["layout"] = definition(layout) or layout.name
        if "num_person" in spec.kwargs():  # input batch norms per person
            out["num_person"] = max_persons
        if visibility:  # x, y, z (or score) and the seen / missing channel
            out["in_channels"] = spec.default("in_channels") + 1
    return out


def _check_input(spec: ModelSpec, fmt: str, stream: str, coord_dim: int, layout: Layout) -> None:
    """The input format, stream and keypoints must be ones the backbone `spec` reads. Raises UserError."""
    if stream not in STREAMS:
        raise UserError(f"unknown --stream {stream!r}; choose one of {', '.join(STREAMS)}")
    if stream != "joint" and spec.reads != JOINTS and fmt != "Skeleton":
        raise UserError(
            f"--stream {stream} is for coordinate inputs: use --input_f Skeleton (or MotionBERT), not {fmt} volumes"
        )
    if spec.reads == JOINTS and spec.joints_prep == "motionbert" and coord_dim == 2 and layout.name not in JOINT_ORDERS:
        raise UserError(
            f"{spec.name} reads 2D keypoints in coco17 (mapped to its H36M order) or h36m17 (its own order), "
            f"not {layout.name}: convert the keypoints to one of them, give 3D keypoints (any layout), or train "
            "--model_type poseconv"
        )


def _clip_len(spec: ModelSpec, model_cfg: dict, clip_len: int | None) -> int:
    """Frames per clip: the one the model's constructor fixes (`clip_len_arg`), else `clip_len`, else the
    backbone's default; within the bound its constructor sets (`max_clip_len_arg`). Raises UserError."""
    if spec.clip_len_arg is not None:  # the model reads exactly this many frames
        clip_len = model_cfg.get(spec.clip_len_arg, spec.default(spec.clip_len_arg))
    clip_len = clip_len or spec.clip_len
    if spec.max_clip_len_arg is not None:
        limit = model_cfg.get(spec.max_clip_len_arg, spec.default(spec.max_clip_len_arg))
        if clip_len > limit:
            raise UserError(f"--clip_len {clip_len} exceeds {spec.name}'s {spec.max_clip_len_arg} {limit}")
    return clip_len


@dataclass(frozen=True)
class TrainConfig:
    """How the training clips are drawn and the epochs run.

    batch_size: labelled clips per step; mu: unlabelled batch = mu x batch_size.
    unlabelled_fraction, label_strategy: TCL's --percentage and --strategy.
    noise_alpha: jitter of the second view, unless `corruptions` ((family, severity) pairs of
    datasets/pipeline/corruptions.py) are given: then each item's corrupted view is drawn from one of them.
    val_fraction: part of the training clips held out to choose the best epoch (datasets/store/splits.hold_out).
    val_group_field: the clips' field whose values the validation part holds out whole (--val_group_field):
    None for the default ('subject' when every training clip has that field), 'none' for no field.
    augment: the skeleton augmentations of the training clips (datasets/pipeline/augment.py; default: none).
    max_steps: cap on steps per epoch (0: none).
    eval_every: validate every N epochs (and after the last). log_every: log every N steps.
    channels_last, compile: the model's memory format (volumes) and torch.compile of the training model.
    """

    epochs: int
    batch_size: int
    seed: int = 0
    workers: int = 0
    mu: int = 1
    unlabelled_fraction: float = 0.0
    label_strategy: str = "classwise"
    noise_alpha: float = 0.0
    corruptions: tuple[tuple[str, float], ...] = ()
    val_fraction: float = 0.0
    val_group_field: str | None = None
    max_steps: int = 0
    eval_every: int = 1
    log_every: int = 20
    channels_last: bool = False
    compile: bool = False
    ckpt_every: float = 0.0  # seconds between mid-epoch checkpoints (0: only at the end of each epoch)
    augment: AugmentConfig = AugmentConfig()
    repair: tuple[str, ...] = ()  # datasets/pipeline/repair.py steps on every training view (after corruption)


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser and its schedule (models/registry.py `optimizer` says which family a backbone uses).

    SGD: lr, momentum (Nesterov's when `nesterov`), weight_decay; schedule 'cos' (cosine to 0 over the run) or 'step'
    (x0.1 at each epoch of lr_steps), both per step. AdamW: lr_backbone, lr_head, weight_decay_adamw,
    x lr_decay after every epoch. clip_grad: max gradient norm (0: off). warmup_epochs: both families'
    learning rates rise linearly, step by step, over the first warmup_epochs epochs (0: off).
    """

    epochs: int
    lr: float = 0.1
    lr_type: str = "cos"
    lr_steps: tuple[int, ...] = ()
    momentum: float = 0.9
    nesterov: bool = True  # TCL's SGD; pyskl's is plain momentum
    weight_decay: float = 3e-4
    lr_backbone: float = 1e-4
    lr_head: float = 1e-3
    lr_decay: float = 0.99
    weight_decay_adamw: float = 0.01
    clip_grad: float = 0.0
    warmup_epochs: float = 0.0


@dataclass(frozen=True)
class EvalConfig:
    """Test-time path: clips per video (probabilities averaged), the flipped view; the robustness sweep:
    the jitter levels `alphas` and the corruption suite's (family, severity) pairs (their mean is the mCA)."""

    alphas: tuple[float, ...] = (0.0,)
    corruptions: tuple[tuple[str, float], ...] = ()
    checkpoints: tuple[str, ...] = ("best", "last")  # scored at the end of training
    num_clips: int = 1
    test_flip: bool = False
    batch_size: int = 16
    workers: int = 0
    seed: int = 0
    repair: tuple[str, ...] = ()  # datasets/pipeline/repair.py steps on every test clip (after its corruption)
