"""The training objective, and which views each step of an epoch feeds it.

    loss = CE(ce_views) + gamma x instance contrastive + gamma2 x group contrastive
           + consistency_weight x consistency (JS or KL)   [+ gamma_finetune x pseudo-label, TCL's last stage]

With weighting 'mean' (the CLI's default) this sum is divided by the sum of its weights (1 + gamma + ...);
'sum' is TCL's loss as written. The weights of the terms that compare views may rise over a ramp of the
first epochs (`ramp_factor`).

CE on the clean view is plain training; on the corrupted view it is noise augmentation, on both the two
together (their mean); the consistency terms (losses/consistency.py) are the baselines that TCL's
contrastive terms are measured against.

A step's batch is a concatenation of views along dim 0, in the order the epoch's plan names them (`VIEWS`,
the one definition of a step's layout: which loader a view's clips come from and whether they are the
corrupted copy):

    'labelled'          labelled clips, clean                        -> cross-entropy
    'labelled_noisy'    the same clips, corrupted (when --percentage 0, the contrastive pair)
    'unlabelled'        unlabelled clips, clean                      -> contrastive / pseudo-label
    'unlabelled_noisy'  the same clips, corrupted

`plan_epoch` decides the views once per epoch; `EpochPlan.inputs` picks them out of the loaders' batches and
`EpochPlan.split` cuts the logits back into them; `objective` is a pure function of the logits of those views,
the labels and a frozen `LossConfig`, and returns the loss (assembled there, and only there) and its named terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from datasets.pipeline.clips import NOISY_PREFIX
from losses import CONSISTENCY, group_contrastive_loss, instance_contrastive_loss, pseudo_label_loss

STAGES = ("supervised", "contrastive", "finetune")  # 'contrastive': the terms that compare two views are on
CE_VIEWS = {"clean": ("labelled",), "noisy": ("labelled_noisy",), "both": ("labelled", "labelled_noisy")}


@dataclass(frozen=True)
class View:
    """One view of a step's batch: the loader its clips come from ('labelled' or 'unlabelled') and whether
    it is the corrupted copy (the item's arrays under the key prefix NOISY_PREFIX, datasets/pipeline/clips.py)."""

    loader: str
    noisy: bool

    @property
    def prefix(self) -> str:
        return NOISY_PREFIX if self.noisy else ""


VIEWS = {
    "labelled": View("labelled", noisy=False),
    "labelled_noisy": View("labelled", noisy=True),
    "unlabelled": View("unlabelled", noisy=False),
    "unlabelled_noisy": View("unlabelled", noisy=True),
}


@dataclass(frozen=True)
class LossConfig:
    """CE + gamma x instance contrastive + gamma2 x group contrastive (+ gamma_finetune x pseudo-label).

    group: compute the group term (TCL's --use_group_contrastive). detach_clean: no contrastive gradient
    through the clean view (TCL's practice). sup_epochs: first epochs with cross-entropy only.
    ramp_epochs: the weights of the terms that compare views (gamma, gamma2, consistency_weight) rise
    linearly over the first ramp_epochs contrastive epochs, by 1 / (ramp_epochs + 1) per epoch, and hold
    from then on (0: full weight from the first contrastive epoch, TCL's loss; see `ramp_factor`).
    finetune_from: first epoch of TCL's pseudo-label stage (None: no such stage); threshold: its
    confidence threshold. weighting: 'sum' is TCL's loss, the weighted sum of the terms; 'mean' divides it
    by the sum of the weights of the terms the step computes (1 for CE + ramp x gamma + ...), so the weights
    set the terms' shares and a large gamma does not also multiply the step size (README, Results: "`--gamma 5`").
    """

    gamma: float = 0.0
    gamma2: float = 0.0
    group: bool = False
    temperature: float = 0.5
    detach_clean: bool = True
    sup_epochs: int = 0
    ramp_epochs: int = 0
    finetune_from: int | None = None
    threshold: float = 0.8
    gamma_finetune: float = 1.0
    ce_views: str = "clean"
    negatives: str = "all"
    consistency: str = "none"
    consistency_weight: float = 1.0
    weighting: str = "sum"
    label_smoothing: float = 0.0  # of the cross-entropy on labelled clips (F.cross_entropy's)

    @property
    def compares_views(self) -> bool:
        """Whether any term compares a clean and a corrupted view (otherwise training is cross-entropy)."""
        return self.gamma > 0 or self.group or self.finetune_from is not None or self.consistency != "none"


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch's steps compute: the stage, the views of each step's batch, in order, and the factor
    on the weights of the terms that compare views (below 1 during the ramp)."""

    stage: str
    views: tuple[str, ...]
    ramp: float = 1.0

    @property
    def uses_unlabelled(self) -> bool:
        return any(VIEWS[v].loader == "unlabelled" for v in self.views)

    def inputs(self, batches: dict[str, dict]) -> list[tuple[dict, str]]:
        """The views of a step, in order: (the collated batch of its loader, the key prefix of its arrays).
        batches: {'labelled': batch, 'unlabelled': batch (when the plan uses it)}."""
        return [(batches[VIEWS[v].loader], VIEWS[v].prefix) for v in self.views]

    def split(self, logits: Tensor, n_labelled: int) -> dict[str, Tensor]:
        """The logits (N, C) of a step, cut back into its views: labelled views hold n_labelled rows,
        the unlabelled views share the rest equally."""
        n_lab = sum(VIEWS[v].loader == "labelled" for v in self.views)
        n_ul = len(self.views) - n_lab
        per_ul = (logits.shape[0] - n_lab * n_labelled) // max(n_ul, 1)
        out, start = {}, 0
        for view in self.views:
            n = n_labelled if VIEWS[view].loader == "labelled" else per_ul
            out[view] = logits[start : start + n]
            start += n
        return out


def ramp_factor(epoch: int, cfg: LossConfig) -> float:
    """Factor on gamma, gamma2 and consistency_weight at `epoch`: (k + 1) / (ramp_epochs + 1) in the k-th
    contrastive epoch (k = epoch - sup_epochs) while k < ramp_epochs, then 1. E.g. ramp_epochs 4: 0.2, 0.4,
    0.6, 0.8, then 1. Why: at full weight from the first step, `--gamma 5`'s instance term outweighs the
    cross-entropy of a network that predicts nothing yet, and the run never learns (README, Results: "`--gamma 5`")."""
    k = epoch - cfg.sup_epochs
    return 1.0 if k >= cfg.ramp_epochs else (max(k, 0) + 1) / (cfg.ramp_epochs + 1)


def plan_epoch(epoch: int, cfg: LossConfig, has_unlabelled: bool) -> EpochPlan:
    """The stage of `epoch` and the views its steps need.

    has_unlabelled: the run holds unlabelled clips (--percentage > 0); the corrupted pair then comes
    from them, otherwise from the labelled clips.
    """
    if epoch < cfg.sup_epochs or not cfg.compares_views:
        stage = "supervised"
    elif cfg.finetune_from is not None and epoch >= cfg.finetune_from:
        stage = "finetune"
    elif cfg.gamma > 0 or cfg.group or cfg.consistency != "none":
        stage = "contrastive"
    else:
        stage = "supervised"  # fine-tuning alone, before it starts
    ce = CE_VIEWS[cfg.ce_views]
    if stage == "supervised":
        return EpochPlan(stage, ce)
    ramp = ramp_factor(epoch, cfg) if stage == "contrastive" else 1.0
    if has_unlabelled:
        return EpochPlan(stage, (*ce, "unlabelled", "unlabelled_noisy"), ramp)
    return EpochPlan(stage, ("labelled", "labelled_noisy"), ramp)


def objective(
    logits: dict[str, Tensor], labels: Tensor, stage: str, cfg: LossConfig, ramp: float = 1.0
) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of one step and its named terms ('ce', 'instance', 'group', 'consistency', 'pseudo'; the
    terms unweighted).

    logits: (B_view, C) per view, named as in the module docstring; labels: (B,) of the 'labelled' view;
    ramp: factor on gamma, gamma2 and consistency_weight (the epoch plan's, 1 after the ramp).
    """
    ce = [F.cross_entropy(logits[v], labels, label_smoothing=cfg.label_smoothing) for v in CE_VIEWS[cfg.ce_views]]
    terms = {"ce": ce[0] if len(ce) == 1 else (ce[0] + ce[1]) / 2}
    if stage != "supervised":
        pair = ("unlabelled", "unlabelled_noisy") if "unlabelled" in logits else ("labelled", "labelled_noisy")
        clean, noisy = logits[pair[0]], logits[pair[1]]
        if stage == "finetune":
            terms["pseudo"] = pseudo_label_loss(clean, noisy, cfg.threshold)
        else:
            if cfg.gamma > 0 or cfg.group:
                groups = None
                if cfg.negatives == "other_class":
                    groups = labels if pair[0] == "labelled" else clean.detach().argmax(dim=1)
                terms["instance"] = instance_contrastive_loss(
                    clean, noisy, cfg.temperature, detach_a=cfg.detach_clean, groups=groups
                )
            if cfg.group:
                terms["group"] = group_contrastive_loss(clean, noisy, cfg.temperature, detach_a=cfg.detach_clean)
            if cfg.consistency != "none":
                terms["consistency"] = CONSISTENCY[cfg.consistency](clean, noisy)
    w = term_weights(cfg, ramp)
    loss = terms["ce"]
    for name in ("instance", "group", "pseudo", "consistency"):  # TCL's sum, in its order
        if name in terms:
            loss = loss + w[name] * terms[name]
    if cfg.weighting == "mean":
        loss = loss / sum(w[name] for name in terms)
    return loss, terms


def term_weights(cfg: LossConfig, ramp: float = 1.0) -> dict[str, float]:
    """The weight of each term of the loss at this ramp factor (the one table `objective` and
    scripts/diagnose_objective.py read): CE 1, the view-comparing terms ramp x their flag, pseudo-label
    gamma_finetune."""
    return {"ce": 1.0, "instance": ramp * cfg.gamma, "group": ramp * cfg.gamma2,
            "consistency": ramp * cfg.consistency_weight, "pseudo": cfg.gamma_finetune}  # fmt: skip
