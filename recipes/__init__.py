"""The published training recipes as presets: `python main.py ntu60 --recipe NAME`.

A recipe is data: the flag values (argparse destinations of opts.py) that reproduce one upstream
configuration, the config file they come from, the published top-1 and what the project does not
reproduce. Values are facts from the upstream files (pyskl 3f6795f `configs/posec3d/`, `configs/stgcn++/`,
`configs/ctrgcn/`, MotionBERT dccfe7b `configs/action/`); tests/test_recipes.py checks every preset against a
table of them written out independently.

Precedence (opts.parse_args): command line > recipe > dataset defaults (opts.DATASET_DEFAULTS) > parser
defaults. A recipe belongs to one dataset; on `synthetic` every recipe runs (a smoke run; its split is
then left to the synthetic data, which has only xsub).

Learning rates: a recipe gives upstream's learning rates together with the total batch they were set
for (`lr_batch`, e.g. 0.4 for 8 GPUs x 32 clips = 256); the run scales them linearly to its own total
batch, `-b` x world size (`lr_scale`, the linear scaling rule of Goyal et al. 2017; pyskl's configs
note that their lr "is used for 8 gpus"). pyskl runs 24 epochs over its dataset repeated 10 times
(RepeatDataset): the same steps and the same per-iteration cosine as 240 plain epochs, which is how the
recipes express it. The limb.py recipes render limbs in limb.py's own order, declared as a layout next
to this file (coco17_pyskl_limb.json).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

# pyskl's SlowOnly-R50 (ResNet3dSlowOnly), as constructor arguments of models/poseconv3d.py (in_channels is
# derived from --input_f; these are the constructor's defaults, written out so that the recipe says them).
SLOWONLY_R50 = [
    ("base_channels", 32),
    ("num_stages", 3),
    ("stage_blocks", (4, 6, 3)),
    ("out_indices", (2,)),
    ("conv1_stride", (1, 1)),
    ("pool1_stride", (1, 1)),
    ("inflate", (0, 1, 1)),
    ("spatial_strides", (2, 2, 2)),
    ("temporal_strides", (1, 1, 2)),
]

# The schedule and test protocol of every pyskl slowonly_r50 NTU config (joint.py and limb.py alike).
POSEC3D_SCHEDULE = {
    "model_type": "poseconv",
    "model_cfg": SLOWONLY_R50,
    "dropout": 0.5,  # I3DHead dropout
    "clip_len": 48,  # UniformSampleFrames clip_len
    "input_size": 56,  # training crop resized to (56, 56), after Resize (-1, 64) and RandomResizedCrop
    "test_input_size": 64,  # val and test pipelines: Resize (64, 64)
    "num_clips": 10,  # test: 10 clips, probabilities averaged (average_clips 'prob')
    "test_flip": True,  # test: GeneratePoseTarget double=True
    "batch_size": 32,  # videos_per_gpu
    "lr": 0.4,
    "lr_batch": 256,  # "lr is used for 8 gpus": 8 x 32
    "lr_type": "cos",  # CosineAnnealing by iteration, min_lr 0
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 3e-4,
    "gd": 40.0,  # grad_clip max_norm
    "epochs": 240,  # total_epochs 24 over RepeatDataset times=10
    "val_fraction": 0.0,  # upstream trains on the whole training split and reports the last checkpoint
    "gamma": 0.0,  # upstream's loss is cross-entropy alone
}

# Upstream settings that every PoseConv3D recipe does not reproduce, or reproduces differently.
POSEC3D_NOT_REPRODUCED = (
    "pyskl renders every person of a clip; the project keeps the --max_persons (2) most confident",
)
# pyskl's limb.py configs list the 17 COCO limbs in an order of their own (`skeletons`), not GeneratePoseTarget's
# default (the built-in coco17 layout's): a limb.py checkpoint reads its input channels in that order. This
# declared layout (datasets/store/layouts.py) is COCO-17 with that limb order; its flip permutation of the limbs is
# limb.py's left_limb/right_limb pairing. NTU120's joint.py renders limbs in the default order.
PYSKL_LIMB_LAYOUT = Path(__file__).with_name("coco17_pyskl_limb.json")
CLASS_PROB = (
    "NTU120 xsub samples the training clips of classes 61-120 twice as often (class_prob [1]*60 + [2]*60); the "
    "project samples uniformly"
)

# Published top-1 (%), 10 clips x flip (pyskl README), by (dataset, split, config).
POSEC3D_PUBLISHED = {
    ("ntu60", "xsub", "joint"): 93.7,
    ("ntu60", "xsub", "limb"): 93.4,
    ("ntu60", "xview", "joint"): 96.5,
    ("ntu60", "xview", "limb"): 96.0,
    ("ntu120", "xsub", "joint"): 85.9,
    ("ntu120", "xsub", "limb"): 85.9,
    ("ntu120", "xset", "joint"): 89.7,
    ("ntu120", "xset", "limb"): 89.7,
}

# MotionBERT's DSTformer and ActionNet as constructor arguments of models/motionbert.py (num_joints is the
# data's: 17 for the HRNet COCO-17 files, mapped to H36M-17 by the preprocessing).
DSTFORMER = [
    ("dim_feat", 512),
    ("dim_rep", 512),
    ("depth", 5),
    ("num_heads", 8),
    ("mlp_ratio", 2),
    ("maxlen", 243),
    ("hidden_dim", 2048),
]

MOTIONBERT_FINETUNE = {
    "model_type": "motionbert",
    "input_f": "Skeleton",
    "model_cfg": DSTFORMER,
    "dropout": 0.5,  # dropout_ratio
    "clip_len": 243,
    "epochs": 300,
    "batch_size": 32,
    "lr_backbone1": 1e-4,
    "lr_head1": 1e-3,
    "lr_batch": 32,  # one process with DataParallel: batch_size is the total batch
    "weight_decay1": 0.01,
    "lr_decay1": 0.99,  # every epoch
    "num_clips": 1,  # test: the whole sequence resampled to clip_len frames, once, no flip
    "test_flip": False,
    "val_fraction": 0.0,
    "gamma": 0.0,
}

MOTIONBERT_PUBLISHED = {"xsub": 93.0, "xview": 97.2}  # fine-tuned (MotionBERT README, values per split)


# pyskl's graph networks (configs/stgcn++/, configs/ctrgcn/ at 3f6795f): one recipe for every GCN config, the
# backbone, the keypoints (3dkp: the Kinect's 3D joints, layout nturgb+d; hrnet: HRNet 2D, coco) and the stream
# (j, b, jm, bm) aside. The backbones' other arguments are their constructors' defaults (models/stgcn.py,
# models/ctrgcn.py), pyskl's.
GCN_SCHEDULE = {
    "input_f": "Skeleton",
    "model_cfg": [("base_channels", 64)],  # GCNHead in_channels 256 = 4 x 64
    "dropout": 0.0,  # GCNHead's default
    "clip_len": 100,  # UniformSample clip_len
    "max_persons": 2,  # FormatGCNInput num_person
    "num_clips": 10,  # test: 10 clips, probabilities averaged
    "test_flip": False,
    "batch_size": 16,  # videos_per_gpu
    "lr": 0.1,
    "lr_batch": 128,  # 8 GPUs x 16
    "lr_type": "cos",  # CosineAnnealing by iteration, min_lr 0
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "gd": 0.0,  # no gradient clipping
    "epochs": 80,  # total_epochs 16 over RepeatDataset times=5
    "val_fraction": 0.0,
    "gamma": 0.0,
}
GCN_STREAMS = {"j": "joint", "b": "bone", "jm": "joint_motion", "bm": "bone_motion"}
GCN_KEYPOINTS = {"3dkp": "3d", "hrnet": "2d"}
GCN_NOT_REPRODUCED = (
    "bone streams of the built-in ntu25 / coco17 layouts use pyskl's JointToBone pairs; the corruption suite and "
    "the training noise act on the raw keypoints before PreNormalize, which upstream never corrupts",
)
# Published top-1 (%), pyskl READMEs (configs/stgcn++/README.md, configs/ctrgcn/README.md), by
# (model, dataset, split, keypoints) -> (j, b, jm, bm).
GCN_PUBLISHED = {
    ("stgcnpp", "ntu60", "xsub", "3dkp"): (89.3, 90.1, 87.5, 87.3),
    ("stgcnpp", "ntu60", "xsub", "hrnet"): (89.3, 92.3, 84.0, 88.8),
    ("stgcnpp", "ntu60", "xview", "3dkp"): (95.6, 95.5, 94.3, 93.8),
    ("stgcnpp", "ntu60", "xview", "hrnet"): (97.4, 97.2, 93.4, 95.4),
    ("stgcnpp", "ntu120", "xsub", "3dkp"): (83.2, 85.6, 80.4, 81.5),
    ("stgcnpp", "ntu120", "xset", "3dkp"): (85.6, 87.5, 84.3, 83.0),
    ("ctrgcn", "ntu60", "xsub", "3dkp"): (89.6, 90.0, 88.0, 87.5),
    ("ctrgcn", "ntu60", "xsub", "hrnet"): (90.6, 92.7, 89.4, 90.3),
    ("ctrgcn", "ntu60", "xview", "3dkp"): (95.6, 95.4, 94.4, 93.6),
    ("ctrgcn", "ntu120", "xsub", "3dkp"): (84.0, 85.9, 81.1, 82.2),
    ("ctrgcn", "ntu120", "xset", "3dkp"): (85.9, 87.4, 84.1, 83.9),
}
GCN_FOLDERS = {"stgcnpp": "stgcn++/stgcn++", "ctrgcn": "ctrgcn/ctrgcn_pyskl"}


@dataclass(frozen=True)
class Recipe:
    """One upstream configuration as flag values.

    name: what --recipe takes. dataset: the dataset it is for (ntu60, ntu120).
    upstream: the configuration file it reproduces. published: upstream's top-1 % (None: not published).
    settings: flag destination -> value (opts.py), `split` included.
    not_reproduced: upstream settings the project does not reproduce, in words.
    needs_pretrained: the recipe fine-tunes: --pretrained FILE is required (except on synthetic).
    summary: what it trains, in a few words.
    """

    name: str
    dataset: str
    upstream: str
    published: float | None
    settings: dict
    not_reproduced: tuple[str, ...] = ()
    needs_pretrained: bool = False
    summary: str = ""  # one phrase for tables


def _posec3d_recipes() -> list[Recipe]:
    out = []
    for dataset, split in (("ntu60", "xsub"), ("ntu60", "xview"), ("ntu120", "xsub"), ("ntu120", "xset")):
        folder = f"pyskl configs/posec3d/slowonly_r50_{dataset}_{split}"
        notes = POSEC3D_NOT_REPRODUCED + ((CLASS_PROB,) if (dataset, split) == ("ntu120", "xsub") else ())
        # NTU120's joint.py renders limbs (with_limb, GeneratePoseTarget's default order), despite its name.
        joint_input = "Limb" if dataset == "ntu120" else "Heatmap"
        limb_order = {"layout": str(PYSKL_LIMB_LAYOUT)}
        for config, input_f, extra in (("joint", joint_input, {}), ("limb", "Limb", limb_order)):
            out.append(
                Recipe(
                    name=f"posec3d_{dataset}_{split}_{config}",
                    dataset=dataset,
                    upstream=f"{folder}/{config}.py",
                    published=POSEC3D_PUBLISHED[(dataset, split, config)],
                    settings={**POSEC3D_SCHEDULE, "split": split, "input_f": input_f, **extra},
                    not_reproduced=notes,
                    summary=f"PoseConv3D SlowOnly-R50, {input_f.lower()} heatmaps",
                )
            )
        # The seed's --input_f variants (joint heatmaps as NCTHW_Heatmap, one grayscale volume, coordinates)
        # on the same schedule: no upstream config, no published accuracy.
        for variant, input_f in (("heatmap", "Heatmap"), ("grayscale", "Grayscale"), ("skeleton", "Skeleton")):
            out.append(
                Recipe(
                    name=f"posec3d_{dataset}_{split}_{variant}",
                    dataset=dataset,
                    upstream=f"{folder}/joint.py schedule, the seed's --input_f {input_f}",
                    published=None,
                    settings={**POSEC3D_SCHEDULE, "split": split, "input_f": input_f},
                    not_reproduced=notes,
                    summary=f"PoseConv3D SlowOnly-R50, --input_f {input_f}",
                )
            )
    return out


def _motionbert_recipes() -> list[Recipe]:
    return [
        Recipe(
            name=f"motionbert_ntu60_{split}_ft",
            dataset="ntu60",
            upstream=f"MotionBERT configs/action/MB_ft_NTU60_{split}.yaml",
            published=MOTIONBERT_PUBLISHED[split],
            settings={**MOTIONBERT_FINETUNE, "split": split},
            needs_pretrained=True,
            summary="MotionBERT fine-tuned from its pretrained backbone",
        )
        for split in ("xsub", "xview")
    ]


def _gcn_recipes() -> list[Recipe]:
    out = []
    splits = (("ntu60", "xsub"), ("ntu60", "xview"), ("ntu120", "xsub"), ("ntu120", "xset"))
    for model, (dataset, split), kind in itertools.product(GCN_FOLDERS, splits, GCN_KEYPOINTS):
        published = GCN_PUBLISHED.get((model, dataset, split, kind))
        for k, (feat, stream) in enumerate(GCN_STREAMS.items()):
            out.append(
                Recipe(
                    name=f"{model}_{dataset}_{split}_{kind}_{feat}",
                    dataset=dataset,
                    upstream=f"pyskl configs/{GCN_FOLDERS[model]}_{dataset}_{split}_{kind}/{feat}.py",
                    published=published[k] if published else None,
                    settings={
                        **GCN_SCHEDULE,
                        "model_type": model,
                        "split": split,
                        "stream": stream,
                        "keypoints": GCN_KEYPOINTS[kind],
                    },  # fmt: skip
                    not_reproduced=GCN_NOT_REPRODUCED,
                    summary=f"{'ST-GCN++' if model == 'stgcnpp' else 'CTR-GCN'}, {stream} stream",
                )
            )
    return out


RECIPES: dict[str, Recipe] = {r.name: r for r in _posec3d_recipes() + _motionbert_recipes() + _gcn_recipes()}


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; an unknown name raises ValueError listing the known ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_defaults(name: str, dataset: str) -> dict:
    """The flag values recipe `name` sets for a run on `dataset` (flag destination -> value).

    Raises ValueError (one line) for an unknown name or a recipe of another dataset; on `synthetic`
    every recipe is accepted for smoke runs, without its split (the synthetic data has only xsub).
    """
    recipe = get_recipe(name)
    if dataset not in (recipe.dataset, "synthetic"):
        others = ", ".join(n for n, r in RECIPES.items() if r.dataset == dataset) or "none"
        raise ValueError(
            f"recipe {name} is for {recipe.dataset}, not {dataset}: run `main.py {recipe.dataset} --recipe {name}`"
            f" (recipes for {dataset}: {others})"
        )
    settings = {k: (list(v) if isinstance(v, list) else v) for k, v in recipe.settings.items()}
    if dataset == "synthetic":  # a smoke run on the built-in 2D data
        settings.pop("split")
        settings.pop("keypoints", None)
    return settings


def lr_scale(lr_batch: int, batch_size: int, world_size: int = 1) -> float:
    """Linear scaling rule: the factor that takes a learning rate set for a total batch of `lr_batch`
    clips to the run's total batch `batch_size` x `world_size` (clips per step). 0 means no scaling (1.0)."""
    if lr_batch == 0:
        return 1.0
    return batch_size * world_size / lr_batch


def _shown(value) -> str:
    if isinstance(value, list):  # --model_cfg pairs
        return " ".join(f"{k}={v}".replace(" ", "") for k, v in value)
    return str(value)


def recipe_line(
    name: str, settings: dict, given: set[str], effective_lrs: dict[str, float], lr_batch: int, total_batch: int
) -> str:
    """The run's `recipe:` line: the settings the recipe set (those not given on the command line), those
    the command line overrode, and the learning rates the optimiser starts from.

    settings: recipe_defaults(); given: flag destinations written on the command line (opts.given_flags);
    effective_lrs: flag destination -> learning rate after scaling; lr_batch: the total batch they were
    given for (0: not scaled); total_batch: the run's, -b x world size.
    """
    recipe = get_recipe(name)
    applied = [f"{k}={_shown(v)}" for k, v in settings.items() if k not in given]
    overridden = [k for k in settings if k in given]
    line = f"recipe: {name} ({recipe.upstream}) set {' '.join(applied)}"
    if overridden:
        line += f"; command line overrides {', '.join(overridden)}"
    line += "; effective " + ", ".join(f"{k} {v:.6g}" for k, v in effective_lrs.items())
    if lr_batch:
        line += f" (given for a total batch of {lr_batch}, x {total_batch}/{lr_batch} for this run's {total_batch})"
    return line
