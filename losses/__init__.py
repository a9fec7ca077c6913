"""Losses: TCL's instance/group contrastive losses and pseudo-label loss; consistency baselines (Jensen-Shannon,
KL). Their weighted sum, the training loss, is assembled in one place: engine/objective.objective."""

from losses.consistency import CONSISTENCY, js_consistency, kl_consistency
from losses.contrastive import (
    group_contrastive_loss,
    instance_contrastive_loss,
    nt_xent,
    pseudo_label_loss,
    pseudo_labels,
    shared_groups,
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
]
