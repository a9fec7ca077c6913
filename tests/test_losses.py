"""Tests of losses/contrastive.py against TCL's own outputs (tests/fixtures/tcl/) and hand-computed values."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from losses import (
    group_contrastive_loss,
    instance_contrastive_loss,
    nt_xent,
    pseudo_label_loss,
    pseudo_labels,
    shared_groups,
)

TCL = Path(__file__).resolve().parent / "fixtures" / "tcl"
CASES = json.loads((TCL / "cases.json").read_text())
TEMPERATURE = CASES["temperature"]
DTYPES = [torch.float32, torch.float64]


def _load(case: str, dtype: torch.dtype) -> tuple[dict, torch.Tensor, torch.Tensor]:
    ref = dict(np.load(TCL / f"{case}.npz"))
    fast = torch.tensor(ref["logits_fast"], dtype=dtype)
    slow = torch.tensor(ref["logits_slow"], dtype=dtype, requires_grad=True)
    return ref, fast, slow


def _reference_group_loss(fast: torch.Tensor, slow: torch.Tensor, temperature: float) -> torch.Tensor:
    """Loop-based group loss written from the description of TCL's algorithm (float64, no masking)."""
    groups = []
    for probs in (fast.softmax(dim=1), slow.softmax(dim=1)):
        by_label: dict[int, list[torch.Tensor]] = {}
        for p in probs:
            by_label.setdefault(int(p.argmax()), []).append(p)
        groups.append(by_label)
    keys = [k for k in groups[0] if k in groups[1]]
    if len(keys) < 2:
        return torch.zeros((), dtype=fast.dtype)
    a = torch.stack([torch.stack(groups[0][k]).mean(0) for k in keys])
    b = torch.stack([torch.stack(groups[1][k]).mean(0) for k in keys])
    z = torch.cat([a, b])
    k = len(keys)
    terms = []
    for i in range(2 * k):
        sims = [torch.exp(torch.cosine_similarity(z[i], z[j], dim=0) / temperature) for j in range(2 * k)]
        positive = sims[(i + k) % (2 * k)]
        terms.append(-torch.log(positive / (sum(sims) - sims[i])))
    return torch.stack(terms).mean().clamp(min=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES["cases"]))
def test_golden_instance_and_group(case: str, dtype: torch.dtype) -> None:
    ref, fast, slow = _load(case, dtype)
    info = CASES["cases"][case]

    instance = instance_contrastive_loss(fast, slow, TEMPERATURE)
    (grad_instance,) = torch.autograd.grad(instance, slow)
    group = group_contrastive_loss(fast, slow, TEMPERATURE)
    assert group.requires_grad == info["group_loss_has_grad"]
    (grad_group,) = torch.autograd.grad(group, slow)

    assert instance.dtype == dtype and group.dtype == dtype
    # The one-shared-group case is 1e-14 upstream: absolute tolerances everywhere.
    np.testing.assert_allclose(instance.item(), ref["instance_loss"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(group.item(), ref["group_loss"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(instance.item(), info["instance_loss"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(grad_instance.numpy(), ref["grad_instance_wrt_slow"], rtol=0, atol=2e-7)
    np.testing.assert_allclose(grad_group.numpy(), ref["grad_group_wrt_slow"], rtol=0, atol=2e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES["cases"]))
def test_golden_pseudo_labels_and_shared_groups(case: str, dtype: torch.dtype) -> None:
    ref, fast, slow = _load(case, dtype)
    np.testing.assert_array_equal(pseudo_labels(fast)[1].numpy(), ref["pseudo_labels_fast"])
    np.testing.assert_array_equal(pseudo_labels(slow)[1].numpy(), ref["pseudo_labels_slow"])
    groups = shared_groups(fast, slow)
    np.testing.assert_array_equal(groups.numpy(), ref["shared_groups"])
    assert groups.tolist() == CASES["cases"][case]["shared_groups"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_equals_instance_when_every_sample_is_its_own_group(dtype: torch.dtype) -> None:
    _, fast, slow = _load("n2_c5", dtype)
    instance = instance_contrastive_loss(fast, slow, TEMPERATURE)
    group = group_contrastive_loss(fast, slow, TEMPERATURE)
    torch.testing.assert_close(group, instance, rtol=0, atol=1e-6)
    grads = [torch.autograd.grad(loss, slow)[0] for loss in (instance, group)]
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=1e-7)


@pytest.mark.parametrize("loss_fn", [instance_contrastive_loss, group_contrastive_loss])
def test_first_view_is_detached_by_default(loss_fn) -> None:
    _, fast, slow = _load("n8_c10", torch.float32)
    fast.requires_grad_(True)
    loss_fn(fast, slow).backward()
    assert fast.grad is None
    assert slow.grad is not None and slow.grad.abs().max() > 0


@pytest.mark.parametrize("loss_fn", [instance_contrastive_loss, group_contrastive_loss])
def test_detach_a_false_gives_gradients_to_both_views(loss_fn) -> None:
    _, fast, slow = _load("n8_c10", torch.float64)
    fast.requires_grad_(True)
    detached = loss_fn(fast, slow, detach_a=True)
    loss = loss_fn(fast, slow, detach_a=False)
    torch.testing.assert_close(loss, detached, rtol=0, atol=0)
    loss.backward()
    assert fast.grad.abs().max() > 1e-4 and slow.grad.abs().max() > 1e-4
    inputs = (fast.detach().requires_grad_(), slow.detach().requires_grad_())
    assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b, detach_a=False), inputs)


def test_gradcheck_wrt_second_view() -> None:
    _, fast, slow = _load("n24_c60", torch.float64)
    for loss_fn in (instance_contrastive_loss, group_contrastive_loss):
        assert torch.autograd.gradcheck(lambda b, f=loss_fn: f(fast, b), (slow.detach().requires_grad_(),))


def test_group_loss_matches_loop_reference_on_random_batches() -> None:
    # Few classes for many samples, so that groups collide and K takes every value from 0 to C.
    gen = torch.Generator().manual_seed(0)
    seen_k = set()
    for _ in range(60):
        n, c = int(torch.randint(1, 12, (1,), generator=gen)), int(torch.randint(2, 6, (1,), generator=gen))
        fast = torch.randn(n, c, generator=gen, dtype=torch.float64) * 2
        slow = torch.randn(n, c, generator=gen, dtype=torch.float64) * 2
        seen_k.add(len(shared_groups(fast, slow)))
        for temperature in (0.5, 0.1):
            expected = _reference_group_loss(fast, slow, temperature)
            got = group_contrastive_loss(fast, slow, temperature)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert {0, 1, 2, 3} <= seen_k


def test_group_loss_without_shared_groups_is_zero_with_a_graph() -> None:
    fast = torch.tensor([[3.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    slow = torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 1.0]], requires_grad=True)
    assert shared_groups(fast, slow).numel() == 0
    loss = group_contrastive_loss(fast, slow)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(slow.grad, torch.zeros_like(slow))


def test_single_shared_group_is_exactly_zero() -> None:
    _, fast, slow = _load("n6_c8_one_shared_group", torch.float32)
    loss = group_contrastive_loss(fast, slow)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(slow.grad, torch.zeros_like(slow))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nt_xent_hand_computed(dtype: torch.dtype) -> None:
    # Two orthogonal pairs of identical vectors: every row has its positive at cos 1 and two negatives
    # at cos 0, so l = -log(e^2 / (e^2 + 2)) with temperature 0.5. Scaling must not matter (cosine).
    z = torch.eye(2, dtype=dtype)
    expected = math.log(1 + 2 * math.exp(-2))
    assert nt_xent(z, 3 * z, 0.5).item() == pytest.approx(expected, abs=1e-7)
    # An invalid pair takes no part: one valid pair left, so no negatives and a loss of 0.
    z3 = torch.eye(3, dtype=dtype)
    valid = torch.tensor([True, False, True])
    assert nt_xent(z3, z3, 0.5, valid=valid).item() == pytest.approx(expected, abs=1e-7)
    assert nt_xent(z3, z3, 0.5, valid=torch.tensor([False, False, True])).item() == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_pseudo_label_loss_hand_computed(dtype: torch.dtype) -> None:
    # Sample 0: softmax([2, 0]) = (0.881, 0.119) passes 0.8 -> label 0; strong logits (0, 0) -> CE log 2.
    # Sample 1: (0.5, 0.5) fails the threshold. Sample 2: softmax([0, ln 4]) = (0.2, 0.8) is exactly at
    # the threshold and counts -> label 1; strong logits (ln 3, 0) -> CE = -log(1/4) = log 4.
    # Mean over all 3 samples.
    weak = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, math.log(4.0)]], dtype=dtype, requires_grad=True)
    strong = torch.tensor([[0.0, 0.0], [1.0, 0.0], [math.log(3.0), 0.0]], dtype=dtype, requires_grad=True)
    confidence, labels = pseudo_labels(weak)
    assert labels.tolist() == [0, 0, 1]
    threshold = confidence[2].item()  # 0.8 up to rounding; the comparison is >=
    loss = pseudo_label_loss(weak, strong, threshold)
    assert loss.dtype == dtype
    assert loss.item() == pytest.approx((math.log(2.0) + math.log(4.0)) / 3, abs=1e-6)
    loss.backward()
    assert weak.grad is None
    assert torch.equal(strong.grad[1], torch.zeros(2, dtype=dtype))  # masked sample
    # d CE / d logits = softmax - one_hot, divided by N = 3.
    torch.testing.assert_close(strong.grad[0], torch.tensor([-0.5, 0.5], dtype=dtype) / 3)
    torch.testing.assert_close(strong.grad[2], torch.tensor([0.75, -0.75], dtype=dtype) / 3)
    assert pseudo_label_loss(weak, strong, 0.99).item() == 0.0


def test_consistency_losses_on_a_hand_computed_case():
    """p = (0.5, 0.5), q = (0.9, 0.1): m = (0.7, 0.3), JS = (KL(p||m) + KL(q||m)) / 2, KL(p||q)."""
    from losses import js_consistency, kl_consistency

    p, q = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.9, 0.1]])
    kl_pm = 0.5 * math.log(0.5 / 0.7) + 0.5 * math.log(0.5 / 0.3)
    kl_qm = 0.9 * math.log(0.9 / 0.7) + 0.1 * math.log(0.1 / 0.3)
    assert js_consistency(p.log(), q.log()).item() == pytest.approx((kl_pm + kl_qm) / 2, rel=1e-5)
    assert js_consistency(q.log() + 3.0, p.log()).item() == pytest.approx((kl_pm + kl_qm) / 2, rel=1e-5)  # symmetric
    assert kl_consistency(p.log(), q.log()).item() == pytest.approx(
        0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5), rel=1e-5
    )
    # Batch mean, identical views give 0, JS is bounded by ln 2.
    a = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    assert js_consistency(a, a).item() == pytest.approx(0.0, abs=1e-6)
    far = torch.tensor([[40.0, 0.0]]), torch.tensor([[0.0, 40.0]])
    assert js_consistency(*far).item() == pytest.approx(math.log(2), rel=1e-4)
    # KL pulls only the corrupted view: no gradient reaches the clean logits.
    clean, noisy = a.clone().requires_grad_(), (a + 1).requires_grad_()
    kl_consistency(clean, noisy * 2).backward()
    assert clean.grad is None and noisy.grad.abs().sum() > 0


def test_nt_xent_without_same_class_negatives_on_a_hand_computed_case():
    """Three pairs of identical vectors e0, e0, e1 with classes 0, 0, 1, temperature 0.5: a row of class 0
    keeps only the two vectors of class 1 as negatives (cos 0), a row of class 1 all four."""
    from losses import nt_xent

    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    got = nt_xent(z, z, 0.5, groups=torch.tensor([0, 0, 1])).item()
    e2 = math.exp(2.0)
    expected = (4 * (math.log(e2 + 2) - 2) + 2 * (math.log(e2 + 4) - 2)) / 6
    assert got == pytest.approx(expected, rel=1e-6)
    # Every pair its own class: TCL's loss; one class for all: only positives, loss 0.
    a, b = torch.rand(5, 4), torch.rand(5, 4)
    assert torch.allclose(nt_xent(a, b, 0.5, groups=torch.arange(5)), nt_xent(a, b, 0.5))
    assert nt_xent(a, b, 0.5, groups=torch.zeros(5, dtype=torch.long)).item() == pytest.approx(0.0, abs=1e-6)


def test_tcl_instance_term_rewards_putting_one_class_into_several():
    """Why --gamma 5 stops learning (README): on a batch with two clips of a class, confident correct
    predictions cost more instance loss than giving every clip its own (wrong) class; without same-class
    negatives both cost the same, and cross-entropy decides."""
    from losses import instance_contrastive_loss

    y = torch.tensor([0, 0, 1, 2])
    correct = 10 * torch.nn.functional.one_hot(y, 4).float()
    spread = 10 * torch.eye(4)  # clip i -> class i: the second clip of class 0 is wrong
    assert instance_contrastive_loss(spread, spread) < instance_contrastive_loss(correct, correct) - 0.1
    masked = instance_contrastive_loss(correct, correct, groups=y), instance_contrastive_loss(spread, spread, groups=y)
    assert masked[0].item() == pytest.approx(masked[1].item(), abs=1e-5)
