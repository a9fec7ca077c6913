"""Unit tests of the engine's own logic (engine/, the CLI's flag plumbing, the registry contract).

Fast CPU tests: no training runs, tiny models, expected values computed by hand where possible.
"""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models
import models.registry as registry
from datasets.store.layouts import COCO17, KINECT20, NTU25
from datasets.store.splits import load_split, save_split, split_labelled
from engine.config import OptimConfig, resolve_run_config
from engine.data import ShardedSampler, load_run_data
from engine.objective import EpochPlan, LossConfig, objective, plan_epoch
from engine.optim import build_optimizer, lr_factor, set_lr
from losses import group_contrastive_loss, instance_contrastive_loss, pseudo_label_loss
from opts import backbone_kwargs, ignored_flags, parse_args, settings
from utils.errors import UserError
from utils.runtime import Runtime

LAB2 = ("labelled", "labelled_noisy")
LAB_UL = ("labelled", "unlabelled", "unlabelled_noisy")


def _logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------------
# plan_epoch


@pytest.mark.parametrize("has_ul", [False, True])
def test_plan_supervised_during_sup_epochs_then_contrastive(has_ul):
    cfg = LossConfig(gamma=1.0, sup_epochs=2)
    for epoch in (0, 1):
        assert plan_epoch(epoch, cfg, has_ul) == EpochPlan("supervised", ("labelled",))
    for epoch in (2, 7):
        assert plan_epoch(epoch, cfg, has_ul) == EpochPlan("contrastive", LAB_UL if has_ul else LAB2)


@pytest.mark.parametrize("has_ul", [False, True])
def test_plan_supervised_when_nothing_compares_views(has_ul):
    cfg = LossConfig(gamma=0.0, gamma2=3.0, group=False, finetune_from=None)
    assert not cfg.compares_views
    for epoch in (0, 5, 100):
        plan = plan_epoch(epoch, cfg, has_ul)
        assert plan == EpochPlan("supervised", ("labelled",))
        assert not plan.uses_unlabelled


def test_plan_contrastive_views_with_and_without_unlabelled():
    cfg = LossConfig(gamma=1.0)
    with_ul = plan_epoch(0, cfg, has_unlabelled=True)
    without = plan_epoch(0, cfg, has_unlabelled=False)
    assert with_ul == EpochPlan("contrastive", ("labelled", "unlabelled", "unlabelled_noisy"))
    assert with_ul.uses_unlabelled
    assert without == EpochPlan("contrastive", ("labelled", "labelled_noisy"))
    assert not without.uses_unlabelled


def test_plan_group_alone_is_contrastive():
    cfg = LossConfig(gamma=0.0, group=True)
    assert cfg.compares_views
    assert plan_epoch(0, cfg, True).stage == "contrastive"


@pytest.mark.parametrize("has_ul", [False, True])
def test_plan_finetune_from_its_epoch(has_ul):
    cfg = LossConfig(gamma=1.0, finetune_from=5)
    assert plan_epoch(4, cfg, has_ul).stage == "contrastive"
    for epoch in (5, 6, 50):
        assert plan_epoch(epoch, cfg, has_ul) == EpochPlan("finetune", LAB_UL if has_ul else LAB2)


def test_plan_finetune_alone_is_supervised_before_it_starts():
    cfg = LossConfig(gamma=0.0, group=False, finetune_from=3)
    assert cfg.compares_views
    for epoch in (0, 1, 2):
        assert plan_epoch(epoch, cfg, True) == EpochPlan("supervised", ("labelled",))
    assert plan_epoch(3, cfg, True) == EpochPlan("finetune", LAB_UL)


def test_plan_sup_epochs_win_over_finetune():
    cfg = LossConfig(gamma=1.0, sup_epochs=5, finetune_from=3)
    assert plan_epoch(4, cfg, True).stage == "supervised"
    assert plan_epoch(5, cfg, True).stage == "finetune"


# ---------------------------------------------------------------------------------------------------
# EpochPlan.split


def test_split_labelled_pair():
    logits = _logits(6, 5)
    parts = EpochPlan("contrastive", LAB2).split(logits, n_labelled=3)
    assert list(parts) == list(LAB2)
    assert torch.equal(parts["labelled"], logits[0:3])
    assert torch.equal(parts["labelled_noisy"], logits[3:6])


def test_split_unlabelled_views_with_their_own_batch_size():
    # 2 labelled clips, an unlabelled batch of 5 (mu x batch, or a smaller last batch): 2 + 5 + 5 rows.
    logits = _logits(12, 4)
    parts = EpochPlan("contrastive", LAB_UL).split(logits, n_labelled=2)
    assert list(parts) == list(LAB_UL)
    assert torch.equal(parts["labelled"], logits[0:2])
    assert torch.equal(parts["unlabelled"], logits[2:7])
    assert torch.equal(parts["unlabelled_noisy"], logits[7:12])


def test_split_supervised_is_the_whole_batch():
    logits = _logits(4, 3)
    parts = EpochPlan("supervised", ("labelled",)).split(logits, n_labelled=4)
    assert list(parts) == ["labelled"] and torch.equal(parts["labelled"], logits)


# ---------------------------------------------------------------------------------------------------
# objective


def test_objective_supervised_is_plain_cross_entropy():
    # Uniform logits over 4 classes: CE = ln 4 whatever the label.
    logits = {"labelled": torch.zeros(3, 4)}
    loss, terms = objective(logits, torch.tensor([0, 2, 3]), "supervised", LossConfig(gamma=5.0, group=True))
    assert set(terms) == {"ce"}
    assert loss.item() == pytest.approx(math.log(4))
    assert terms["ce"].item() == pytest.approx(math.log(4))


def test_objective_supervised_ignores_other_views():
    lab, labels = _logits(4, 5, seed=1), torch.tensor([0, 1, 2, 3])
    logits = {"labelled": lab, "labelled_noisy": _logits(4, 5, seed=2)}
    loss, terms = objective(logits, labels, "supervised", LossConfig(gamma=2.0))
    assert set(terms) == {"ce"}
    torch.testing.assert_close(loss, F.cross_entropy(lab, labels))


def test_objective_contrastive_on_labelled_pair():
    cfg = LossConfig(gamma=2.0, gamma2=3.0, group=False, temperature=0.3)
    lab, noisy, labels = _logits(6, 5, seed=1), _logits(6, 5, seed=2), torch.tensor([0, 1, 2, 3, 4, 0])
    loss, terms = objective({"labelled": lab, "labelled_noisy": noisy}, labels, "contrastive", cfg)
    assert set(terms) == {"ce", "instance"}
    ce = F.cross_entropy(lab, labels)
    inst = instance_contrastive_loss(lab, noisy, 0.3)
    torch.testing.assert_close(terms["ce"], ce)
    torch.testing.assert_close(terms["instance"], inst)
    torch.testing.assert_close(loss, ce + 2.0 * inst)  # gamma2 unused without group


def test_objective_contrastive_with_group_on_unlabelled_views():
    cfg = LossConfig(gamma=2.0, gamma2=3.0, group=True, temperature=0.5)
    lab, labels = _logits(2, 4, seed=1), torch.tensor([1, 3])
    ul, ul_noisy = _logits(8, 4, seed=3), _logits(8, 4, seed=4)
    loss, terms = objective(
        {"labelled": lab, "unlabelled": ul, "unlabelled_noisy": ul_noisy}, labels, "contrastive", cfg
    )
    assert set(terms) == {"ce", "instance", "group"}
    ce = F.cross_entropy(lab, labels)
    inst = instance_contrastive_loss(ul, ul_noisy, 0.5)
    group = group_contrastive_loss(ul, ul_noisy, 0.5)
    assert group.item() > 0  # so that gamma2 is actually checked
    torch.testing.assert_close(terms["instance"], inst)
    torch.testing.assert_close(terms["group"], group)
    torch.testing.assert_close(loss, ce + 2.0 * inst + 3.0 * group)


@pytest.mark.parametrize("detach", [True, False])
def test_objective_detach_clean_stops_gradient_into_clean_view(detach):
    cfg = LossConfig(gamma=1.0, detach_clean=detach)
    lab = _logits(2, 4, seed=1).requires_grad_()
    ul = _logits(6, 4, seed=3).requires_grad_()
    ul_noisy = _logits(6, 4, seed=4).requires_grad_()
    loss, _ = objective(
        {"labelled": lab, "unlabelled": ul, "unlabelled_noisy": ul_noisy}, torch.tensor([0, 1]), "contrastive", cfg
    )
    loss.backward()
    assert ul_noisy.grad.abs().sum() > 0
    if detach:
        assert ul.grad is None or ul.grad.abs().sum() == 0
    else:
        assert ul.grad.abs().sum() > 0


def test_objective_finetune_pseudo_label_by_hand():
    # Clean view: sample 0 confident (softmax of [5, 0, 0] = 0.987), sample 1 uniform (1/3 < threshold).
    # Noisy view uniform: CE = ln 3 for the one confident sample, mean over both samples -> ln(3) / 2.
    cfg = LossConfig(gamma=4.0, finetune_from=0, threshold=0.6, gamma_finetune=0.5)
    lab, labels = torch.zeros(2, 3), torch.tensor([0, 1])
    ul = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    ul_noisy = torch.zeros(2, 3)
    logits = {"labelled": lab, "unlabelled": ul, "unlabelled_noisy": ul_noisy}
    loss, terms = objective(logits, labels, "finetune", cfg)
    assert set(terms) == {"ce", "pseudo"}
    assert terms["pseudo"].item() == pytest.approx(math.log(3) / 2)
    torch.testing.assert_close(terms["pseudo"], pseudo_label_loss(ul, ul_noisy, 0.6))
    assert loss.item() == pytest.approx(math.log(3) + 0.5 * math.log(3) / 2)
    # A threshold above the confidence masks every sample.
    _, terms = objective(logits, labels, "finetune", LossConfig(finetune_from=0, threshold=0.99))
    assert terms["pseudo"].item() == 0.0


def test_objective_finetune_on_labelled_pair():
    cfg = LossConfig(finetune_from=0, threshold=0.3, gamma_finetune=2.0)
    lab, noisy, labels = _logits(5, 3, seed=5) * 3, _logits(5, 3, seed=6), torch.tensor([0, 1, 2, 0, 1])
    loss, terms = objective({"labelled": lab, "labelled_noisy": noisy}, labels, "finetune", cfg)
    pseudo = pseudo_label_loss(lab, noisy, 0.3)
    torch.testing.assert_close(terms["pseudo"], pseudo)
    torch.testing.assert_close(loss, F.cross_entropy(lab, labels) + 2.0 * pseudo)


# ---------------------------------------------------------------------------------------------------
# lr_factor, build_optimizer, set_lr


def test_lr_factor_sgd_cos():
    cfg = OptimConfig(epochs=4, lr_type="cos")
    assert lr_factor("sgd", cfg, 0, 0, 10) == pytest.approx(1.0)
    assert lr_factor("sgd", cfg, 2, 0, 10) == pytest.approx(0.5)  # halfway through the run
    # t = epoch * steps + step = 10 of T = 40: 0.5 (1 + cos(pi / 4))
    assert lr_factor("sgd", cfg, 1, 0, 10) == pytest.approx(0.5 * (1 + math.sqrt(2) / 2))
    # t = 15 of 40: 0.5 (1 + cos(3 pi / 8)), cos(3 pi / 8) = 0.3826834324
    assert lr_factor("sgd", cfg, 1, 5, 10) == pytest.approx(0.5 * (1 + 0.3826834324))
    # The same position in the run with another epoch length gives the same factor.
    assert lr_factor("sgd", cfg, 1, 10, 20) == pytest.approx(lr_factor("sgd", cfg, 1, 5, 10))
    # Decreasing within the run, close to 0 at its last step.
    values = [lr_factor("sgd", cfg, e, s, 10) for e in range(4) for s in range(10)]
    assert all(a > b for a, b in zip(values[:-1], values[1:], strict=True))
    assert values[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 39 / 40)))


def test_lr_factor_sgd_step():
    cfg = OptimConfig(epochs=10, lr_type="step", lr_steps=(2, 5))
    expected = {0: 1.0, 1: 1.0, 2: 0.1, 4: 0.1, 5: 0.01, 9: 0.01}
    for epoch, factor in expected.items():
        for step in (0, 7):  # per epoch, whatever the step
            assert lr_factor("sgd", cfg, epoch, step, 8) == pytest.approx(factor)


def test_lr_factor_adamw_decays_per_epoch():
    # The sgd schedule fields are ignored: AdamW decays by lr_decay ** epoch.
    cfg = OptimConfig(epochs=10, lr_type="step", lr_steps=(1,), lr_decay=0.9)
    assert lr_factor("adamw", cfg, 0, 0, 10) == pytest.approx(1.0)
    assert lr_factor("adamw", cfg, 0, 9, 10) == pytest.approx(1.0)
    assert lr_factor("adamw", cfg, 3, 4, 10) == pytest.approx(0.729)


def test_lr_factor_unknown_lr_type():
    with pytest.raises(ValueError, match="lr_type"):
        lr_factor("sgd", OptimConfig(epochs=1, lr_type="poly"), 0, 0, 1)


def _tiny_poseconv() -> nn.Module:
    return models.create_model("poseconv3d", in_channels=3, num_classes=4, base_channels=4, stage_blocks=(1, 1, 1))


def _tiny_motionbert() -> nn.Module:
    return models.create_model(
        "motionbert", dim_feat=16, dim_rep=16, depth=1, num_heads=2, hidden_dim=32, num_classes=4
    )


def test_build_optimizer_sgd_and_set_lr():
    model = _tiny_poseconv()
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    cfg = OptimConfig(epochs=3, lr=0.2, momentum=0.8, weight_decay=1e-3)
    opt = build_optimizer(model, "sgd", cfg)
    assert isinstance(opt, torch.optim.SGD) and len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert group["lr"] == 0.2 and group["initial_lr"] == 0.2
    assert group["momentum"] == 0.8 and group["weight_decay"] == 1e-3 and group["nesterov"]
    ids = {id(p) for p in group["params"]}
    assert ids == {id(p) for p in model.parameters() if p.requires_grad}
    assert id(frozen) not in ids
    assert set_lr(opt, 0.5) == pytest.approx(0.1)
    assert group["lr"] == pytest.approx(0.1)
    # Always relative to the initial learning rate: a second call does not compound.
    assert set_lr(opt, 0.25) == pytest.approx(0.05)
    assert group["initial_lr"] == 0.2
    factor = lr_factor("sgd", cfg, 1, 0, 4)  # t = 4 of 12: 0.5 (1 + cos(pi / 3)) = 0.75
    assert set_lr(opt, factor) == pytest.approx(0.15)


def test_build_optimizer_adamw_two_groups_and_set_lr():
    model = _tiny_motionbert()
    cfg = OptimConfig(epochs=3, lr_backbone=2e-4, lr_head=3e-3, lr_decay=0.5, weight_decay_adamw=0.05)
    opt = build_optimizer(model, "adamw", cfg)
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 2
    backbone, head = opt.param_groups
    groups = model.param_groups()
    assert [id(p) for p in backbone["params"]] == [id(p) for p in groups["backbone"] if p.requires_grad]
    assert [id(p) for p in head["params"]] == [id(p) for p in groups["head"] if p.requires_grad]
    assert head["params"]  # the head group is not empty
    assert backbone["lr"] == backbone["initial_lr"] == 2e-4
    assert head["lr"] == head["initial_lr"] == 3e-3
    assert backbone["weight_decay"] == head["weight_decay"] == 0.05
    factor = lr_factor("adamw", cfg, 2, 0, 10)  # 0.5 ** 2
    assert set_lr(opt, factor) == pytest.approx(5e-5)
    assert backbone["lr"] == pytest.approx(5e-5)
    assert head["lr"] == pytest.approx(7.5e-4)


def test_build_optimizer_unknown_family():
    with pytest.raises(ValueError, match="family"):
        build_optimizer(_tiny_poseconv(), "lamb", OptimConfig(epochs=1))


# ---------------------------------------------------------------------------------------------------
# ShardedSampler


def _rt(rank: int, world: int) -> Runtime:
    return Runtime(device=torch.device("cpu"), rank=rank, world_size=world)


def _shards(n: int, world: int, seed: int, shuffle: bool, epoch: int = 0) -> list[list[int]]:
    out = []
    for rank in range(world):
        sampler = ShardedSampler(n, _rt(rank, world), seed, shuffle=shuffle)
        sampler.set_epoch(epoch)
        idx = list(sampler)
        assert len(sampler) == len(idx)
        out.append(idx)
    return out


def test_sampler_train_reproducible_and_reshuffled_per_epoch():
    a = _shards(50, 1, seed=3, shuffle=True, epoch=0)[0]
    assert a == _shards(50, 1, seed=3, shuffle=True, epoch=0)[0]  # a fresh sampler, the same order
    assert sorted(a) == list(range(50)) and a != list(range(50))
    assert a != _shards(50, 1, seed=3, shuffle=True, epoch=1)[0]
    assert a != _shards(50, 1, seed=4, shuffle=True, epoch=0)[0]
    # set_epoch on one sampler changes its order, and going back restores it.
    sampler = ShardedSampler(50, _rt(0, 1), 3, shuffle=True)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_sampler_train_pads_to_equal_shards():
    n, world = 10, 3
    shards = _shards(n, world, seed=0, shuffle=True, epoch=2)
    assert [len(s) for s in shards] == [4, 4, 4]  # ceil(10 / 3) each
    # Interleaved back (rank r holds positions r, r + world, ...), the shards are one permutation of
    # the n indices followed by its first (12 - 10) entries again.
    full = [shards[i % world][i // world] for i in range(4 * world)]
    assert sorted(full[:n]) == list(range(n))
    assert full[n:] == full[: 4 * world - n]
    assert set().union(*map(set, shards)) == set(range(n))


def test_sampler_eval_does_not_pad():
    shards = _shards(10, 3, seed=0, shuffle=False)
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    counts = np.bincount(np.concatenate(shards), minlength=10)
    assert (counts == 1).all()
    # The epoch does not matter for evaluation.
    assert _shards(10, 3, seed=5, shuffle=False, epoch=7) == shards


def test_sampler_train_divisible_world_has_no_duplicates():
    shards = _shards(12, 4, seed=1, shuffle=True)
    assert sorted(sum(shards, [])) == list(range(12))


# ---------------------------------------------------------------------------------------------------
# load_run_data


def test_load_run_data_synthetic(tmp_path):
    data = load_run_data("synthetic", str(tmp_path), None, "xsub", {"clips_per_class_per_subject": 1, "seed": 0})
    assert data.num_classes == int(data.store.labels.max()) + 1
    assert data.layout.name == "coco17" and data.label_map is None
    train, test = set(data.train_idx.tolist()), set(data.test_idx.tolist())
    assert train and test and not train & test
    with pytest.raises(UserError, match="xview"):
        load_run_data("synthetic", str(tmp_path), None, "xview", {"clips_per_class_per_subject": 1, "seed": 0})


# ---------------------------------------------------------------------------------------------------
# split_labelled, save_split, load_split


def _check_partition(lab: np.ndarray, ul: np.ndarray, n: int) -> None:
    assert list(lab) == sorted(lab) and list(ul) == sorted(ul)
    assert not set(lab.tolist()) & set(ul.tolist())
    assert sorted(lab.tolist() + ul.tolist()) == list(range(n))


def test_split_classwise_counts():
    # 10 clips of class 0, 4 of class 1, 1 of class 2, shuffled; 60% unlabelled:
    # round(10 * 0.4) = 4, round(4 * 0.4) = round(1.6) = 2, round(1 * 0.4) = 0 -> at least 1.
    labels = np.array([0] * 10 + [1] * 4 + [2])
    labels = labels[np.random.default_rng(0).permutation(len(labels))]
    lab, ul = split_labelled(labels, 0.6, "classwise", seed=1)
    _check_partition(lab, ul, len(labels))
    assert np.bincount(labels[lab], minlength=3).tolist() == [4, 2, 1]
    assert np.bincount(labels[ul], minlength=3).tolist() == [6, 2, 0]


def test_split_overall_counts():
    labels = np.arange(15) % 3
    lab, ul = split_labelled(labels, 0.6, "overall", seed=0)
    _check_partition(lab, ul, 15)
    assert len(lab) == 6  # round(15 * 0.4)
    lab, ul = split_labelled(labels, 0.99, "overall", seed=0)  # round(0.15) = 0 -> at least one
    _check_partition(lab, ul, 15)
    assert len(lab) == 1
    lab, ul = split_labelled(labels, 0.0, "overall", seed=0)
    assert lab.tolist() == list(range(15)) and ul.tolist() == []


def test_split_same_seed_same_split():
    labels = np.arange(40) % 4
    for strategy in ("classwise", "overall"):
        a = split_labelled(labels, 0.5, strategy, seed=7)
        b = split_labelled(labels, 0.5, strategy, seed=7)
        c = split_labelled(labels, 0.5, strategy, seed=8)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert not np.array_equal(a[0], c[0])


def test_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unlabelled fraction"):
        split_labelled(np.zeros(4, dtype=int), 1.0, "classwise", 0)
    with pytest.raises(ValueError, match="strategy"):
        split_labelled(np.zeros(4, dtype=int), 0.5, "random", 0)


def test_save_and_load_split_by_names(tmp_path):
    names = [f"clip{i:02d}" for i in range(12)]
    lab, ul = split_labelled(np.arange(12) % 3, 0.5, "classwise", seed=2)
    path = tmp_path / "split.json"
    save_split(path, names, labelled=lab, unlabelled=ul)
    assert not path.with_suffix(".tmp").exists()
    lab2, ul2 = load_split(path, names).values()
    assert np.array_equal(lab2, lab) and np.array_equal(ul2, ul)
    assert lab2.dtype == np.int64
    # A re-ordered annotation file: the same clips, by name, at their new positions (sorted).
    reordered = names[::-1]
    lab3, ul3 = load_split(path, reordered).values()
    assert sorted(reordered[i] for i in lab3) == sorted(names[i] for i in lab)
    assert sorted(reordered[i] for i in ul3) == sorted(names[i] for i in ul)
    assert list(lab3) == sorted(lab3) and list(ul3) == sorted(ul3)


def test_load_split_names_a_clip_not_in_the_training_split(tmp_path):
    names = [f"clip{i:02d}" for i in range(6)]
    path = tmp_path / "split.json"
    save_split(path, names, labelled=np.array([0, 2, 4]), unlabelled=np.array([1, 3, 5]))
    with pytest.raises(ValueError, match="clip03"):
        load_split(path, [n for n in names if n != "clip03"])


# ---------------------------------------------------------------------------------------------------
# opts: ignored_flags, backbone_kwargs, settings


def _ignored(argv: list[str]) -> list[str]:
    return ignored_flags(parse_args(argv), argv)


def test_ignored_flags_poseconv():
    assert _ignored(["synthetic", "--shift", "--lr_backbone1", "0.1"]) == ["--lr_backbone1", "--shift"]
    assert _ignored(["synthetic", "--lr", "0.05", "--in_channels", "17", "--lr_type", "step"]) == []
    assert _ignored(["synthetic"]) == []


def test_ignored_flags_motionbert():
    argv = ["synthetic", "--model_type", "motionbert", "--input_f", "Skeleton", "--lr", "0.1", "--in_channels", "68"]
    assert _ignored(argv) == ["--in_channels", "--lr"]
    argv = ["synthetic", "--model_type", "motionbert", "--input_f", "Skeleton", "--lr_backbone1", "0.1"]
    assert _ignored(argv) == []


def test_ignored_flags_tsm():
    argv = ["synthetic", "--model_type", "tsm", "--shift", "--num_segments", "4", "--lr", "0.1"]
    assert _ignored(argv) == []
    assert _ignored(["synthetic", "--model_type", "tsm", "--lr_head1", "0.1"]) == ["--lr_head1"]


def test_ignored_flags_names_real_options():
    """Flags are reported as options of main.py, not as their argparse destinations (--npb's is partial_bn)."""
    parser_options = {"--npb", "--no_partialbn", "--wd", "--weight-decay"}
    reported = _ignored(["synthetic", "--npb"])
    reported += _ignored(["synthetic", "--model_type", "motionbert", "--input_f", "Skeleton", "--wd", "0.1"])
    assert len(reported) == 2
    assert set(reported) <= parser_options, reported


def test_backbone_kwargs_tsm():
    args = parse_args(["synthetic", "--model_type", "tsm", "--shift", "--num_segments", "4"])
    assert backbone_kwargs(args) == {
        "arch": "resnet18",
        "num_segments": 4,
        "shift": True,
        "shift_div": 8,
        "shift_place": "blockres",
        "consensus_type": "avg",
        "partial_bn": True,
    }  # second_segments is a flag, not a constructor argument
    assert backbone_kwargs(parse_args(["synthetic", "--model_type", "tsm", "--npb"]))["partial_bn"] is False
    # --model_cfg comes last and wins.
    args = parse_args(["synthetic", "--model_type", "tsm", "--shift_div", "4", "--model_cfg", "shift_div=16"])
    assert backbone_kwargs(args)["shift_div"] == 16


def test_backbone_kwargs_poseconv_and_motionbert_only_model_cfg():
    argv = ["synthetic", "--shift", "--num_segments", "4", "--model_cfg", "base_channels=8", "stage_blocks=(1,1,1)"]
    args = parse_args(argv)
    assert backbone_kwargs(args) == {"base_channels": 8, "stage_blocks": (1, 1, 1)}
    assert backbone_kwargs(parse_args(["ntu60"])) == {}
    assert backbone_kwargs(parse_args(["synthetic"])) == {"base_channels": 16, "stage_blocks": (2, 2, 2)}  # the demo
    args = parse_args(["synthetic", "--model_type", "motionbert", "--input_f", "Skeleton", "--model_cfg", "depth=2"])
    assert backbone_kwargs(args) == {"depth": 2}


def test_settings_maps_the_flags():
    argv = ["synthetic", "--percentage", "0.5", "--use_finetuning", "--finetune_start_epoch", "3", "--gamma", "2",
            "--use_group_contrastive", "--no_detach_clean", "--sup_thresh", "1", "--lr_steps", "4", "8",
            "--lr_decay1", "0.7", "--eval_alphas", "0", "0.1", "--mu", "3", "--gd", "0"]  # fmt: skip
    train, optim, loss, ev = settings(parse_args(argv))
    assert loss == LossConfig(
        gamma=2.0, group=True, detach_clean=False, sup_epochs=1, finetune_from=3, weighting="mean"
    )
    assert train.unlabelled_fraction == 0.5 and train.mu == 3 and train.label_strategy == "classwise"
    assert optim.lr_steps == (4, 8) and optim.lr_decay == 0.7 and optim.clip_grad == 0.0
    assert ev.alphas == (0.0, 0.1)
    _, _, loss, _ = settings(parse_args(["synthetic", "--finetune_start_epoch", "3"]))
    assert loss.finetune_from is None  # without --use_finetuning


# ---------------------------------------------------------------------------------------------------
# resolve_run_config


def _resolve(model: str, **kw):
    args = {"input_format": "Heatmap", "layout": COCO17, "num_joints": 17, "coord_dim": 2, "num_classes": 5,
            "dropout": 0.3, "clip_len": None, "input_size": 32, "max_persons": 2}  # fmt: skip
    return resolve_run_config(model, **{**args, **kw})


def test_resolve_in_channels_from_the_input_format():
    cfg = _resolve("poseconv3d")
    assert cfg.model_cfg == {"in_channels": 17, "num_classes": 5, "dropout": 0.3}
    assert cfg.reads == "volume" and cfg.clip_len == 24 and cfg.layout == "coco17" and cfg.input_format == "Heatmap"
    assert _resolve("poseconv3d", input_format="NCTHW_Heatmap").input_format == "Heatmap"
    assert _resolve("poseconv3d", input_format="Grayscale").model_cfg["in_channels"] == 1
    assert _resolve("poseconv3d", input_format="Limb", layout=NTU25, num_joints=25).model_cfg["in_channels"] == 24
    assert _resolve("poseconv3d", input_format="Skeleton").model_cfg["in_channels"] == 2 * 17 * 2
    assert _resolve("poseconv3d", input_format="Grayscale", in_channels=1).model_cfg["in_channels"] == 1
    assert _resolve("poseconv3d", clip_len=48).clip_len == 48


def test_resolve_wrong_in_channels():
    with pytest.raises(UserError, match="--in_channels 1"):
        _resolve("poseconv3d", in_channels=3)  # Heatmap of coco17 needs 17
    with pytest.raises(UserError, match="--in_channels 17"):
        _resolve("poseconv3d", input_format="Grayscale", in_channels=17)


def test_resolve_motionbert():
    cfg = _resolve("motionbert", input_format="Skeleton")
    assert cfg.reads == "joints" and cfg.clip_len == 243
    assert cfg.model_cfg == {"num_classes": 5, "dropout": 0.3, "num_joints": 17}
    # 3D keypoints of another layout are fine, and size the model by their joints.
    cfg = _resolve("motionbert", input_format="Skeleton", layout=KINECT20, num_joints=20, coord_dim=3)
    assert cfg.model_cfg["num_joints"] == 20 and cfg.coord_dim == 3
    assert _resolve("motionbert", input_format="Skeleton", clip_len=100).clip_len == 100
    cfg = _resolve("motionbert", input_format="Skeleton", clip_len=300, model_kwargs={"maxlen": 300})
    assert cfg.clip_len == 300 and cfg.model_cfg["maxlen"] == 300


def test_resolve_motionbert_errors():
    with pytest.raises(UserError, match="maxlen 243"):
        _resolve("motionbert", input_format="Skeleton", clip_len=244)
    with pytest.raises(UserError, match="maxlen 64"):
        _resolve("motionbert", input_format="Skeleton", clip_len=100, model_kwargs={"maxlen": 64})
    with pytest.raises(UserError, match="ntu25"):
        _resolve("motionbert", input_format="Skeleton", layout=NTU25, num_joints=25, coord_dim=2)


def test_resolve_tsm_clip_len_from_num_segments():
    assert _resolve("tsm").clip_len == 8  # the constructor's default num_segments
    cfg = _resolve("tsm", model_kwargs={"num_segments": 16, "shift": True})
    assert cfg.clip_len == 16
    assert cfg.model_cfg == {"in_channels": 17, "num_classes": 5, "dropout": 0.3, "num_segments": 16, "shift": True}


def test_resolve_joint_count_mismatch():
    with pytest.raises(UserError, match="data has 25 joints but layout coco17 has 17"):
        _resolve("poseconv3d", num_joints=25)
    with pytest.raises(UserError, match="data has 20 joints but layout coco17 has 17"):
        _resolve("motionbert", input_format="Skeleton", layout=COCO17, num_joints=17 + 3, coord_dim=3)


def test_old_checkpoint_vocabulary_is_read_as_today(tmp_path):
    """Checkpoints written before the data path took the registry's vocabulary say pipeline 'pose' or
    'motionbert'; they load, rebuild and compare as reads 'volume' / 'joints'."""
    from dataclasses import asdict

    from engine.checkpoint import config_differences, load_run_model
    from engine.config import load_run_config, saved_config

    for model, fmt, old, new in (
        ("poseconv3d", "Heatmap", "pose", "volume"),
        ("motionbert", "Skeleton", "motionbert", "joints"),
    ):
        cfg = _resolve(
            model,
            input_format=fmt,
            model_kwargs={"dim_feat": 8, "depth": 1, "dim_rep": 8} if model == "motionbert" else {},
        )
        saved = {k: v for k, v in asdict(cfg).items() if k != "reads"} | {"pipeline": old}
        assert saved_config(saved) == asdict(cfg) and load_run_config(saved) == cfg and cfg.reads == new
        assert config_differences(saved, cfg) == []
        assert config_differences({**saved, "pipeline": "motionbert" if old == "pose" else "pose"}, cfg) != []
        path = tmp_path / f"{model}.pt"
        torch.save({"config": saved, "model": models.create_model(model, **cfg.model_cfg).state_dict()}, path)
        assert load_run_model(path, torch.device("cpu"))[1] == cfg
    with pytest.raises(ValueError, match="unknown input kind"):
        load_run_config({**asdict(cfg), "reads": "pixels"})


# ---------------------------------------------------------------------------------------------------
# The registry contract


@pytest.fixture
def registry_copy(monkeypatch):
    """Registrations made by a test go into a copy of the registry, dropped after it."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))


def _name() -> str:
    return f"test_engine_{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    ("reads", "missing", "factory"),
    [
        ("volume", "num_classes", lambda in_channels=3, dropout=0.0: nn.Identity()),
        ("volume", "dropout", lambda in_channels=3, num_classes=2: nn.Identity()),
        ("volume", "in_channels", lambda num_joints=17, num_classes=2, dropout=0.0: nn.Identity()),
        ("joints", "num_joints", lambda in_channels=3, num_classes=2, dropout=0.0: nn.Identity()),
    ],
)
def test_register_model_rejects_a_missing_core_keyword(registry_copy, reads, missing, factory):
    name = _name()
    with pytest.raises(TypeError, match=missing):
        models.register_model(name, reads=reads, clip_len=8)(factory)
    assert name not in models.list_models()  # a rejected registration does not register
    with pytest.raises(KeyError):
        models.model_spec(name)


def test_register_model_rejects_a_missing_clip_len_argument(registry_copy):
    name = _name()
    with pytest.raises(TypeError, match="frames"):
        models.register_model(name, reads="volume", clip_len=8, clip_len_arg="frames")(
            lambda in_channels=3, num_classes=2, dropout=0.0: nn.Identity()
        )
    assert name not in models.list_models()


def test_register_model_accepts_the_contract(registry_copy):
    name = _name()

    def factory(num_joints: int = 17, num_classes: int = 2, dropout: float = 0.0, frames: int = 8) -> nn.Module:
        return nn.Linear(num_joints, num_classes)

    assert models.register_model(name, reads="joints", clip_len=8, max_clip_len_arg="frames")(factory) is factory
    spec = models.model_spec(name)
    assert spec.size_arg == "num_joints" and spec.default("frames") == 8
    assert models.create_model(name, num_joints=5, num_classes=3).out_features == 3
    with pytest.raises(ValueError, match="twice"):
        models.register_model(name, reads="joints", clip_len=8)(factory)
    with pytest.raises(ValueError, match="reads"):
        models.register_model(_name(), reads="pixels", clip_len=8)(factory)


def test_registry_copy_left_the_global_registry_alone():
    assert not [n for n in models.list_models() if n.startswith("test_engine_")]


def test_noise_augmentation_and_consistency_objectives():
    """--ce_views noisy|both and --consistency js|kl: the views each plan feeds, and the loss they make."""
    from losses import js_consistency, kl_consistency

    y = torch.tensor([0, 1, 2])
    aug = LossConfig(ce_views="noisy")
    assert not aug.compares_views
    plan = plan_epoch(0, aug, has_unlabelled=False)
    assert plan.stage == "supervised" and plan.views == ("labelled_noisy",)
    both = plan_epoch(0, LossConfig(ce_views="both"), has_unlabelled=False)
    assert both.views == ("labelled", "labelled_noisy")
    lc, ln = _logits(3, 4, seed=1), _logits(3, 4, seed=2)
    loss, terms = objective({"labelled": lc, "labelled_noisy": ln}, y, both.stage, LossConfig(ce_views="both"))
    expected = (F.cross_entropy(lc, y) + F.cross_entropy(ln, y)) / 2
    assert set(terms) == {"ce"} and torch.allclose(loss, expected)
    for name, fn in (("js", js_consistency), ("kl", kl_consistency)):
        cfg = LossConfig(consistency=name, consistency_weight=3.0)
        plan = plan_epoch(0, cfg, has_unlabelled=False)
        assert cfg.compares_views and plan.stage == "contrastive" and plan.views == LAB2
        loss, terms = objective({"labelled": lc, "labelled_noisy": ln}, y, plan.stage, cfg)
        assert set(terms) == {"ce", "consistency"}  # no instance term at gamma 0
        assert torch.allclose(loss, F.cross_entropy(lc, y) + 3.0 * fn(lc, ln))
    # With unlabelled clips the pair comes from them; CE on the labelled corrupted view still applies.
    cfg = LossConfig(ce_views="noisy", gamma=1.0)
    assert plan_epoch(0, cfg, has_unlabelled=True).views == ("labelled_noisy", "unlabelled", "unlabelled_noisy")


# ---------------------------------------------------------------------------------------------------
# the ramp on the weights of the terms that compare views (--gamma_ramp)


def test_ramp_factor_by_hand_after_supervised_epochs():
    cfg = LossConfig(gamma=5.0, sup_epochs=2, ramp_epochs=4)
    # epochs 0, 1 are cross-entropy only; the ramp counts contrastive epochs: 1/5, 2/5, ..., then 1
    factors = [plan_epoch(e, cfg, False).ramp for e in range(9)]
    assert factors == pytest.approx([1.0, 1.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])
    assert [plan_epoch(e, cfg, False).stage for e in (1, 2)] == ["supervised", "contrastive"]


def test_ramp_zero_is_tcl_loss_at_full_weight_from_the_start():
    cfg = LossConfig(gamma=5.0)
    assert all(plan_epoch(e, cfg, True).ramp == 1.0 for e in range(5))


def test_objective_ramp_scales_every_view_comparing_term_but_not_ce():
    cfg = LossConfig(gamma=2.0, gamma2=3.0, group=True, consistency="js", consistency_weight=4.0)
    lab, labels = _logits(2, 4, seed=1), torch.tensor([1, 3])
    ul, ul_noisy = _logits(8, 4, seed=3), _logits(8, 4, seed=4)
    views = {"labelled": lab, "unlabelled": ul, "unlabelled_noisy": ul_noisy}
    loss, terms = objective(views, labels, "contrastive", cfg, ramp=0.25)
    expected = terms["ce"] + 0.25 * (2.0 * terms["instance"] + 3.0 * terms["group"] + 4.0 * terms["consistency"])
    torch.testing.assert_close(loss, expected)
    full, _ = objective(views, labels, "contrastive", cfg)
    assert full.item() > loss.item()


def test_gamma_ramp_flag_reaches_the_loss_config():
    *_, loss, _ = settings(parse_args(["synthetic", "--gamma", "5", "--gamma_ramp", "3"]))
    assert loss.ramp_epochs == 3 and loss.gamma == 5.0


def test_objective_mean_weighting_divides_by_the_weights_of_the_computed_terms():
    cfg = LossConfig(gamma=5.0, gamma2=3.0, group=True, weighting="mean")
    lab, labels = _logits(2, 4, seed=1), torch.tensor([1, 3])
    ul, ul_noisy = _logits(8, 4, seed=3), _logits(8, 4, seed=4)
    views = {"labelled": lab, "unlabelled": ul, "unlabelled_noisy": ul_noisy}
    loss, terms = objective(views, labels, "contrastive", cfg, ramp=0.5)
    expected = (terms["ce"] + 2.5 * terms["instance"] + 1.5 * terms["group"]) / (1 + 2.5 + 1.5)
    torch.testing.assert_close(loss, expected)
    # a supervised step computes CE alone: the mean of one term is the term
    loss, terms = objective(views, labels, "supervised", cfg)
    torch.testing.assert_close(loss, terms["ce"])
    *_, parsed, _ = settings(parse_args(["synthetic", "--loss_weighting", "mean"]))
    assert parsed.weighting == "mean"


def test_lr_warmup_rises_linearly_per_step_then_follows_the_schedule():
    cfg = OptimConfig(epochs=10, lr_type="step", lr_steps=(5,), warmup_epochs=2)
    # 4 steps per epoch: the first 8 steps rise 1/8, 2/8, ..., 8/8; then the step schedule alone
    assert [lr_factor("sgd", cfg, e, s, 4) for e in (0, 1) for s in range(4)] == pytest.approx(
        [k / 8 for k in range(1, 9)]
    )
    assert lr_factor("sgd", cfg, 2, 0, 4) == 1.0 and lr_factor("sgd", cfg, 6, 0, 4) == pytest.approx(0.1)
    adamw = OptimConfig(epochs=10, lr_decay=0.5, warmup_epochs=0.5)
    assert lr_factor("adamw", adamw, 0, 0, 4) == pytest.approx(0.5)  # 1 / (0.5 x 4) of the way
    assert lr_factor("adamw", adamw, 1, 0, 4) == pytest.approx(0.5)  # warm-up over; 0.5 ** 1
    assert lr_factor("sgd", OptimConfig(epochs=10), 0, 0, 4) == 1.0  # off by default


def test_objective_label_smoothing_by_hand():
    logits, labels = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    _, terms = objective({"labelled": logits}, labels, "supervised", LossConfig(label_smoothing=0.3))
    logp = logits.log_softmax(dim=1)[0]
    expected = -(0.8 * logp[0] + 0.1 * logp[1] + 0.1 * logp[2])  # (1 - 0.3) on the label + 0.3 / 3 on each
    torch.testing.assert_close(terms["ce"], expected)
    _, optim, loss, _ = settings(parse_args(["synthetic", "--label_smoothing", "0.1", "--warmup_epochs", "2"]))
    assert loss.label_smoothing == 0.1 and optim.warmup_epochs == 2.0
