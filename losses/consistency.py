"""Consistency between the class distributions of two views of the same clips: the baselines the
contrastive terms are compared with.

- Jensen-Shannon, as AugMix (Hendrycks et al., ICLR 2020) uses it between a clip and its augmented
  copies: with p = softmax(a), q = softmax(b) and m = (p + q) / 2,
      JS(p, q) = (KL(p || m) + KL(q || m)) / 2,   averaged over the batch; 0 <= JS <= ln 2.
  Symmetric: gradients reach both views.
- KL to the clean view: KL(p || q) = sum_c p_c (ln p_c - ln q_c) with p the clean view's distribution
  taken as a fixed target (detached), so the corrupted view is pulled towards the clean prediction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def js_consistency(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """Jensen-Shannon divergence between softmax(logits_a) and softmax(logits_b), (N, C) each; batch mean."""
    log_p, log_q = logits_a.log_softmax(dim=1), logits_b.log_softmax(dim=1)
    # log m = log((p + q) / 2), computed stably in log space.
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - math.log(2.0)
    kl_pm = F.kl_div(log_m, log_p, log_target=True, reduction="batchmean")  # KL(p || m)
    kl_qm = F.kl_div(log_m, log_q, log_target=True, reduction="batchmean")  # KL(q || m)
    return (kl_pm + kl_qm) / 2


def kl_consistency(logits_clean: Tensor, logits_noisy: Tensor) -> Tensor:
    """KL(softmax(clean) || softmax(noisy)), (N, C) each, the clean distribution detached; batch mean."""
    log_p = logits_clean.detach().log_softmax(dim=1)
    return F.kl_div(logits_noisy.log_softmax(dim=1), log_p, log_target=True, reduction="batchmean")


CONSISTENCY = {"js": js_consistency, "kl": kl_consistency}
