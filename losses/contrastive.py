"""TCL's training losses: instance and group contrastive losses, pseudo-label loss, their sum.

TCL (Singh et al., "Semi-Supervised Action Recognition with Temporal Contrastive Learning", CVPR 2021)
trains on two views of every clip. Here the first view (``a``, TCL's "fast" pathway) is the clean clip and
the second (``b``, TCL's "slow") the noisy one. Both losses compare *class-probability* vectors (softmax of
the logits), not features, and both use the same NT-Xent ("SimCLR") loss with cosine similarity:

- instance loss: NT-Xent between the N per-sample probability vectors of the two views;
- group loss: samples of each view are grouped by their arg-max class (pseudo-label), each group is
  averaged, and NT-Xent is applied to the K group means whose pseudo-label occurs in both views.

All functions are pure functions of tensors: no host synchronisation, no Python loop over samples, and
every tensor they create lives on the device of their inputs. Reference values produced by TCL's own code
are in ``tests/fixtures/tcl/`` (see ``tests/test_losses.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "group_contrastive_loss",
    "instance_contrastive_loss",
    "nt_xent",
    "pseudo_label_loss",
    "pseudo_labels",
    "shared_groups",
]


def nt_xent(
    z_a: Tensor, z_b: Tensor, temperature: float = 0.5, valid: Tensor | None = None, groups: Tensor | None = None
) -> Tensor:
    """Symmetric NT-Xent loss with cosine similarity (TCL's ``simclr_loss`` with ``normalize=True``).

    The K pairs ``(z_a[i], z_b[i])`` are positives; every other of the 2K vectors is a negative. With
    ``s(u, v) = cos(u, v) / temperature`` and ``z = cat(z_a, z_b)``, the loss is the mean over the 2K rows

        l_i = -log( exp(s(z_i, z_pos(i))) / sum_{j != i} exp(s(z_i, z_j)) ).

    TCL computes the denominator as the sum over *all* j minus the constant ``exp(1 / temperature)``,
    assuming ``cos(z_i, z_i) == 1``; excluding j = i instead is the same quantity without that rounding
    (the two differ by ~1e-7 in float32), and it makes the loss of a single pair exactly 0.

    Args:
        z_a: (K, D) first vectors of the pairs.
        z_b: (K, D) second vectors of the pairs.
        temperature: softmax temperature of the similarities (TCL's ``--Temperature``, default 0.5).
        valid: optional (K,) bool mask. Pairs where it is False take no part at all: they are neither
            anchors nor negatives, and the mean runs over the 2 * valid.sum() remaining rows (0 when no
            pair is valid). This lets the group loss keep a fixed shape instead of indexing on the host.
        groups: optional (K,) integer class of each pair. A vector is then no negative of the vectors of
            its own class (other pairs of the same class are left out of the denominator, as supervised
            contrastive learning leaves out same-class samples); None is TCL's loss, every other vector a
            negative.

    Returns:
        Scalar loss tensor (natural-log units, dtype of the inputs).
    """
    k = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b], dim=0), dim=1)  # (2K, D), unit rows (zero rows stay zero)
    sim = z @ z.T / temperature  # (2K, 2K) cosine similarity / temperature
    rows = torch.arange(2 * k, device=z.device)
    positive = sim[rows, (rows + k) % (2 * k)]  # (2K,) row i pairs with i + K (mod 2K)
    exclude = torch.eye(2 * k, dtype=torch.bool, device=z.device)  # (2K, 2K) never contrast with itself
    if valid is not None:
        valid2 = torch.cat([valid, valid])  # (2K,) the mask of z = cat(z_a, z_b)
        # Invalid columns are no negatives. Invalid rows keep all their columns so that their (discarded)
        # logsumexp stays finite: a row of only -inf would put NaN into the backward pass.
        exclude = (exclude | ~valid2[None, :]) & valid2[:, None]
    if groups is not None:
        g = torch.cat([groups, groups])  # (2K,)
        same = (g[:, None] == g[None, :]) & ~torch.eye(2 * k, dtype=torch.bool, device=z.device)
        same[rows, (rows + k) % (2 * k)] = False  # the positive stays
        if valid is not None:
            same &= valid2[:, None]  # discarded rows keep their columns (see above)
        exclude = exclude | same
    row_loss = torch.logsumexp(sim.masked_fill(exclude, float("-inf")), dim=1) - positive  # (2K,)
    if valid is None:
        return row_loss.mean()
    weight = valid2.to(row_loss.dtype)  # (2K,)
    # torch.where rather than a product: the discarded rows must not leak inf/NaN into the sum.
    return torch.where(valid2, row_loss, 0.0).sum() / weight.sum().clamp(min=1.0)


def instance_contrastive_loss(
    logits_a: Tensor, logits_b: Tensor, temperature: float = 0.5, detach_a: bool = True, groups: Tensor | None = None
) -> Tensor:
    """TCL's instance contrastive loss: NT-Xent between the softmax outputs of two views.

    As TCL's ``train()`` calls it: ``simclr_loss(softmax(logits_fast.detach()), softmax(logits_slow))``.

    Args:
        logits_a: (N, C) logits of the first (clean) view.
        logits_b: (N, C) logits of the second (noisy) view; sample i of both views is the same clip.
        temperature: NT-Xent temperature.
        detach_a: stop gradients into the first view, as TCL does (it acts as the target).
        groups: optional (N,) class of each clip (label, or pseudo-label): clips of one class are then no
            negatives of each other (`nt_xent`); None is TCL's loss.

    Returns:
        Scalar loss tensor.
    """
    if detach_a:
        logits_a = logits_a.detach()
    return nt_xent(logits_a.softmax(dim=1), logits_b.softmax(dim=1), temperature, groups=groups)


def _group_means(probs: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Mean probability vector of each pseudo-label group.

    Args:
        probs: (N, C) softmax outputs.
        labels: (N,) int64 pseudo-labels in [0, num_classes).
        num_classes: C.

    Returns:
        (C, C) row c = mean of probs over the samples labelled c (zeros for an empty group), and (C,)
        number of samples per group.
    """
    # A one-hot matmul instead of index_add: deterministic on every device (no atomics).
    one_hot = F.one_hot(labels, num_classes).to(probs.dtype)  # (N, C)
    counts = one_hot.sum(dim=0)  # (C,)
    means = (one_hot.T @ probs) / counts.clamp(min=1.0)[:, None]  # (C, C)
    return means, counts


def group_contrastive_loss(
    logits_a: Tensor, logits_b: Tensor, temperature: float = 0.5, detach_a: bool = True
) -> Tensor:
    """TCL's group contrastive loss (``get_group`` + ``compute_group_contrastive_loss``), vectorised.

    Each view's samples are grouped by their pseudo-label (arg-max of the softmax), each group's softmax
    vectors are averaged, and NT-Xent is applied to the pairs of group means whose pseudo-label occurs in
    both views. TCL stacks these pairs in the order in which the labels first appear in view a; NT-Xent
    does not depend on that order, so all C possible groups are kept here with a mask of the shared ones
    (see :func:`shared_groups` for the list itself). The result is ``max(0, loss)`` as in TCL.

    Fewer than two shared groups: the loss is exactly 0 (K = 1: a single pair has no negative, and TCL's
    value is 0 up to rounding, ~1e-14; K = 0: no pair). Unlike TCL, which returns the constant
    ``tensor(0.)`` when K = 0 or when rounding makes the loss <= 0, the result here always stays on the
    autograd graph (with zero gradient in those cases), so ``backward()`` and DDP never see a loss without
    a graph. Values and gradients are the same as TCL's.

    Args:
        logits_a: (N, C) logits of the first (clean) view.
        logits_b: (N, C) logits of the second (noisy) view.
        temperature: NT-Xent temperature.
        detach_a: stop gradients into the first view, as TCL does.

    Returns:
        Scalar loss tensor, >= 0.
    """
    if detach_a:
        logits_a = logits_a.detach()
    num_classes = logits_a.shape[1]
    probs_a, probs_b = logits_a.softmax(dim=1), logits_b.softmax(dim=1)  # (N, C) each
    # Arg-max of the probabilities, not of the logits, as TCL: rounding can tie two probabilities.
    means_a, counts_a = _group_means(probs_a, probs_a.argmax(dim=1), num_classes)
    means_b, counts_b = _group_means(probs_b, probs_b.argmax(dim=1), num_classes)
    shared = (counts_a > 0) & (counts_b > 0)  # (C,) pseudo-labels present in both views
    loss = nt_xent(means_a, means_b, temperature, valid=shared)
    # TCL's max(tensor(0.), loss): a loss that rounds to <= 0 becomes 0 with no gradient.
    return torch.where(loss > 0, loss, 0.0)


def shared_groups(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """Pseudo-labels present in both views, in order of first appearance in view a (TCL's stacking order).

    A diagnostic (e.g. to log how many groups the group loss sees); the loss itself does not need it.
    Its output size depends on the data, so it synchronises with the host on accelerators.

    Args:
        logits_a: (N, C) logits of the first view.
        logits_b: (N, C) logits of the second view.

    Returns:
        (K,) int64 shared pseudo-labels.
    """
    labels_a = pseudo_labels(logits_a)[1]  # (N,)
    labels_b = pseudo_labels(logits_b)[1]  # (N,)
    n, num_classes = logits_a.shape
    positions = torch.arange(n, device=logits_a.device)
    # First sample index of every class in view a; n for classes that never occur.
    first = torch.full((num_classes,), n, dtype=torch.long, device=logits_a.device)
    first = first.scatter_reduce(0, labels_a, positions, reduce="amin")  # (C,)
    in_b = torch.zeros(num_classes, dtype=torch.bool, device=logits_a.device)
    in_b[labels_b] = True
    order = torch.argsort(first, stable=True)  # (C,) classes by first appearance in view a
    keep = (first[order] < n) & in_b[order]
    return order[keep]


def pseudo_labels(logits: Tensor) -> tuple[Tensor, Tensor]:
    """Confidence and arg-max class of the softmax, computed without gradient.

    Args:
        logits: (N, C) logits.

    Returns:
        (N,) max softmax probability and (N,) int64 arg-max class (the first one on ties).
    """
    confidence, labels = logits.detach().softmax(dim=1).max(dim=1)
    return confidence, labels


def pseudo_label_loss(logits_weak: Tensor, logits_strong: Tensor, threshold: float) -> Tensor:
    """Pseudo-label loss of TCL's fine-tuning stage (FixMatch-style), on unlabelled samples.

    With p_i = softmax(logits_weak[i]) (detached), y_i = argmax_c p_i,c and m_i = 1[max_c p_i,c >= threshold],

        L = (1 / N) * sum_i m_i * CE(logits_strong[i], y_i),

    i.e. the mean runs over *all* N samples, not only the confident ones, so the loss shrinks as fewer
    samples pass the threshold (as in FixMatch).

    Args:
        logits_weak: (N, C) logits of the weakly augmented (clean) view; it only provides targets.
        logits_strong: (N, C) logits of the strongly augmented (noisy) view; gradients flow here.
        threshold: confidence a pseudo-label needs to count, in [0, 1].

    Returns:
        Scalar loss tensor (0 for an empty batch).
    """
    confidence, labels = pseudo_labels(logits_weak)
    mask = (confidence >= threshold).to(logits_strong.dtype)  # (N,)
    per_sample = F.cross_entropy(logits_strong, labels, reduction="none")  # (N,)
    return (per_sample * mask).sum() / max(logits_strong.shape[0], 1)
