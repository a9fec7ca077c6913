"""Tests for models/tsm.py: the TSM (2D ResNet + temporal shift) backbone, on tiny clips (8 x 32 x 32)."""

import pytest
import torch
from torch import nn

from models.registry import create_model
from models.tsm import (
    TSM,
    BasicBlock,
    Bottleneck,
    ResNet,
    TemporalShift,
    temporal_shift,
)

T = 8


@pytest.fixture(autouse=True)
def _seeded():
    # Module initialisation draws from torch's global generator: fork it so tests are repeatable and
    # leave the global state as they found it.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


def _volume(n: int = 2, c: int = 3, t: int = T, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, t, size, size, generator=g)  # (N, C, T, H, W)


@pytest.mark.parametrize("arch,dim", [("resnet18", 512), ("resnet50", 2048)])
@pytest.mark.parametrize("shift", [False, True])
def test_output_shapes(arch, dim, shift):
    model = create_model("tsm", arch=arch, in_channels=3, num_classes=7, num_segments=T, shift=shift).eval()
    x = _volume()
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        assert model.forward_features(x).shape == (2, dim)
    assert model.num_features == dim and model.num_classes == 7
    groups = model.param_groups()
    assert [id(p) for p in groups["backbone"] + groups["head"]] == [id(p) for p in model.parameters()]


@pytest.mark.parametrize("arch,params", [("resnet18", 11_176_512), ("resnet50", 23_508_032)])
def test_backbone_matches_torchvision(arch, params):
    # torchvision's resnet18 / resnet50 have 11,689,512 / 25,557,032 parameters, of which the 1000-class
    # fc holds 513,000 / 2,049,000; our trunk is the same network without the fc.
    backbone = ResNet(arch, in_channels=3)
    assert sum(p.numel() for p in backbone.parameters()) == params
    keys = set(backbone.state_dict())
    for k in ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight"]:
        assert k in keys
    assert ("layer4.2.bn3.bias" in keys) == (arch == "resnet50")
    assert ("layer4.1.bn2.num_batches_tracked" in keys) and not any("shift" in k for k in keys)


def test_in_channels_changes_only_conv1():
    a, b = ResNet("resnet18", in_channels=17), ResNet("resnet18", in_channels=1)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["conv1.weight"].shape == (64, 17, 7, 7) and sb["conv1.weight"].shape == (64, 1, 7, 7)
    assert all(sa[k].shape == sb[k].shape for k in sa if k != "conv1.weight")


def _distinct(n: int, t: int, c: int) -> torch.Tensor:
    """(N * T, C, 2, 1) frames whose value encodes (clip, frame, channel): 10000 n + 100 (t + 1) + c + 1."""
    x = torch.empty(n * t, c, 2, 1)
    for i in range(n):
        for j in range(t):
            for k in range(c):
                x[i * t + j, k] = 10000 * i + 100 * (j + 1) + k + 1
    return x


@pytest.mark.parametrize("c,shift_div,fold", [(16, 8, 2), (20, 8, 2), (12, 4, 3)])
def test_temporal_shift_semantics(c, shift_div, fold):
    n, t = 2, 4
    x = _distinct(n, t, c)
    out = temporal_shift(x, num_segments=t, shift_div=shift_div)
    assert out.shape == x.shape
    for i in range(n):
        for j in range(t):
            for k in range(c):
                got = out[i * t + j, k]
                if k < fold:  # first fold: the next frame, zero after the last
                    want = 10000 * i + 100 * (j + 2) + k + 1 if j < t - 1 else 0.0
                elif k < 2 * fold:  # second fold: the previous frame, zero before the first
                    want = 10000 * i + 100 * j + k + 1 if j > 0 else 0.0
                else:  # remainder untouched
                    want = 10000 * i + 100 * (j + 1) + k + 1
                assert torch.all(got == want), (i, j, k, got, want)
    # exactly 1/shift_div of the channels moves each way: count channels that differ from the input
    moved = (out != x).any(dim=(2, 3)).view(n, t, c).any(dim=(0, 1))
    assert moved.sum().item() == 2 * fold and moved[: 2 * fold].all()


def test_temporal_shift_rejects_partial_clips():
    with pytest.raises(ValueError, match="whole number of clips"):
        temporal_shift(torch.zeros(6, 8, 1, 1), num_segments=4)


def _randomise_bn(module: nn.Module, g: torch.Generator) -> None:
    # Non-trivial BN statistics/affines, so a wrong path would change the result.
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.1
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5


@pytest.mark.parametrize("block_cls", [BasicBlock, Bottleneck])
def test_shift_place_on_a_single_block(block_cls):
    """blockres: branch(shift(x)) + downsample(x); block: branch(shift(x)) + downsample(shift(x))."""
    g = torch.Generator().manual_seed(1)
    inplanes, planes, stride = 16, 8, 2
    down = nn.Sequential(
        nn.Conv2d(inplanes, planes * block_cls.expansion, 1, stride, bias=False),
        nn.BatchNorm2d(planes * block_cls.expansion),
    )
    blocks = {
        place: block_cls(inplanes, planes, stride, down, shift_place=place, num_segments=T, shift_div=4)
        for place in ["blockres", "block", None]
    }
    _randomise_bn(down, g)
    for b in blocks.values():
        _randomise_bn(b, g)
        b.load_state_dict(blocks["blockres"].state_dict())  # same weights in all three
        b.eval()
    x = torch.randn(2 * T, inplanes, 6, 6, generator=g)  # (N * T, C, H, W)
    xs = temporal_shift(x, T, 4)
    ref = blocks[None]  # the unshifted block, used as the manual reference for each path
    with torch.no_grad():
        want_blockres = torch.relu(ref.branch(xs) + down(x))
        want_block = torch.relu(ref.branch(xs) + down(xs))
        got_blockres = blocks["blockres"](x)
        got_block = blocks["block"](x)
    torch.testing.assert_close(got_blockres, want_blockres)
    torch.testing.assert_close(got_block, want_block)
    assert not torch.allclose(got_blockres, got_block, atol=1e-3)


def test_blockres_shift_modules_see_only_branch_inputs():
    """Hooks: in blockres every block's shift input is the block input, and the shift feeds conv1 only."""
    model = TSM("resnet18", in_channels=3, num_segments=T, shift=True, shift_place="blockres").eval()
    seen = []
    for block in model.backbone.modules():
        if isinstance(block, BasicBlock):
            assert isinstance(block.shift, TemporalShift)
            record = {}
            block.register_forward_pre_hook(lambda m, a, r=record: r.__setitem__("block_in", a[0]))
            block.shift.register_forward_hook(lambda m, a, o, r=record: r.__setitem__("shift_out", o))
            block.conv1.register_forward_pre_hook(lambda m, a, r=record: r.__setitem__("conv1_in", a[0]))
            seen.append(record)
    with torch.no_grad():
        model(_volume())
    assert len(seen) == 8
    for r in seen:
        assert r["conv1_in"] is r["shift_out"]
        torch.testing.assert_close(r["shift_out"], temporal_shift(r["block_in"], T, 8))


@pytest.mark.parametrize("partial_bn", [True, False])
def test_gradients_reach_every_trainable_parameter(partial_bn):
    model = TSM("resnet18", in_channels=3, num_classes=5, num_segments=T, shift=True, partial_bn=partial_bn)
    model.train()
    target = torch.tensor([1, 3])
    nn.functional.cross_entropy(model(_volume()), target).backward()
    frozen = {id(p) for bn in model.frozen_bns() for p in (bn.weight, bn.bias)}
    assert len(frozen) == 38  # the 19 BN layers after bn1 in resnet18, weight and bias
    for name, p in model.named_parameters():
        if partial_bn and id(p) in frozen:
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad, name
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_partial_bn_modes():
    model = TSM("resnet18", in_channels=3, num_segments=T, partial_bn=True)
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns[0] is model.backbone.bn1 and len(bns) == 20
    model.train()
    assert model.training and model.dropout.training and model.backbone.training
    assert bns[0].training and not any(bn.training for bn in bns[1:])
    assert model.backbone.bn1.weight.requires_grad
    # frozen BN statistics do not move in a train-mode forward; the first BN's do
    before = {i: bn.running_mean.clone() for i, bn in enumerate(bns)}
    model(_volume())
    assert not torch.equal(bns[0].running_mean, before[0])
    assert all(torch.equal(bn.running_mean, before[i]) for i, bn in enumerate(bns) if i > 0)
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()  # and again after a round trip through eval
    assert bns[0].training and not any(bn.training for bn in bns[1:])

    plain = TSM("resnet18", in_channels=3, num_segments=T, partial_bn=False).train()
    assert all(m.training for m in plain.modules())
    assert all(p.requires_grad for p in plain.parameters())


def test_logits_are_the_mean_of_per_frame_logits():
    """Without shift, frames are independent: logits == mean_t fc(backbone(frame t)) (checks the layout)."""
    model = TSM("resnet18", in_channels=3, num_classes=4, num_segments=T, shift=False).eval()
    nn.init.normal_(model.fc.weight, 0.0, 0.1)
    x = _volume(c=3)
    with torch.no_grad():
        per_frame = torch.stack([model.backbone(x[:, :, t]) for t in range(T)], dim=1)  # (N, T, D)
        torch.testing.assert_close(model.forward_features(x), per_frame.mean(1))
        torch.testing.assert_close(model(x), model.fc(per_frame).mean(1))


def test_shift_mixes_frames_within_a_clip_only():
    model = TSM("resnet18", in_channels=3, num_segments=T, shift=True).eval()
    x = _volume()
    y = x.clone()
    y[1, :, 0] += 1.0  # perturb the first frame of clip 1
    with torch.no_grad():
        fx, fy = model._frame_features(x), model._frame_features(y)  # (N, T, D)
    torch.testing.assert_close(fx[0], fy[0])  # clip 0 untouched
    assert not torch.allclose(fx[1, 1:], fy[1, 1:])  # the shift carries frame 0 into later frames

    plain = TSM("resnet18", in_channels=3, num_segments=T, shift=False).eval()
    with torch.no_grad():
        px, py = plain._frame_features(x), plain._frame_features(y)
    torch.testing.assert_close(px[1, 1:], py[1, 1:])  # no shift: other frames are unaffected


def test_input_validation():
    model = TSM("resnet18", in_channels=3, num_segments=T)
    with pytest.raises(ValueError, match="num_segments"):
        model(_volume(t=T - 2))
    with pytest.raises(ValueError, match="in_channels"):
        model(_volume(c=4))
    with pytest.raises(ValueError, match="N, C, T, H, W"):
        model(torch.zeros(2 * T, 3, 32, 32))


def test_constructor_validation():
    with pytest.raises(ValueError, match="consensus_type"):
        TSM(consensus_type="max")
    with pytest.raises(ValueError, match="shift_place"):
        TSM(shift=True, shift_place="inplace")
    with pytest.raises(ValueError, match="arch"):
        TSM(arch="resnet101")
    with pytest.raises(ValueError, match="shift_div"):
        TSM(shift_div=1)


def test_defaults_and_classifier():
    model = create_model("tsm")
    assert model.num_classes == 60 and model.num_segments == 8 and model.in_channels == 17
    assert model.backbone.conv1.weight.shape == (64, 17, 7, 7)
    assert not any(isinstance(m, TemporalShift) for m in model.modules())  # shift=False by default
    assert model.dropout.p == 0.5 and model.partial_bn
    assert model.get_classifier() is model.fc
    model.reset_classifier(11)
    assert model.num_classes == 11 and model.fc.out_features == 11 and model.fc.in_features == 512
    with torch.no_grad():
        assert model.eval()(_volume(n=1, c=17, size=32)).shape == (1, 11)
