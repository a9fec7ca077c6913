"""Losses: TCL's instance/group contrastive losses, pseudo-label loss and their weighted sum; consistency
baselines (Jensen-Shannon, KL)."""

from losses.consistency import CONSISTENCY, js_consistency, kl_consistency
from losses.contrastive import (
    group_contrastive_loss,
    instance_contrastive_loss,
    nt_xent,
    pseudo_label_loss,
    pseudo_labels,
    shared_groups,
    total_loss,
)

__all__ = [
    "CONSISTENCY",
    "js_consistency",
    "kl_consistency",
    "group_contrastive_loss",
    "instance_contrastive_loss",
    "nt_xent",
    "pseudo_label_loss",
    "pseudo_labels",
    "shared_groups",
    "total_loss",
]
