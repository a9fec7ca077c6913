"""TSM: a 2D ResNet with the temporal shift module, TCL's own backbone.

TCL (CVIR/TCL) trains the Temporal Shift Module network of Lin et al., "TSM: Temporal Shift Module for
Efficient Video Understanding" (ICCV 2019): a 2D ResNet applied to each of `num_segments` frames, with a
parameter-free shift of a few channels along time inside every residual block, and the per-frame logits
averaged over the frames (TSN's 'avg' consensus). Here it runs over the frames rendered by this project
(per-joint / per-limb heatmaps or grayscale skeleton images, one image channel each).

Layout: frames of one clip are contiguous along the batch axis, (N * T, C, H, W), as in TSM.

Parameter names follow torchvision's ResNet (`backbone.conv1.weight`, `backbone.layer1.0.conv1.weight`,
`backbone.layer2.0.downsample.0.weight`, ...), so an ImageNet ResNet state dict (without its `fc`) loads
into `.backbone` directly. (TSM/TCL checkpoints name the same tensors differently: the shift wraps a
module as `.net`; the CLI does not load them.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.registry import register_model

SHIFT_PLACES = ("blockres", "block")
CONSENSUS_TYPES = ("avg",)


def temporal_shift(x: Tensor, num_segments: int, shift_div: int = 8) -> Tensor:
    """Shift a fraction of the channels by one frame along time, TSM's zero-padded shift.

    Args:
        x: (N * T, C, H, W) frames, the T = `num_segments` frames of each clip contiguous.
        num_segments: frames per clip, T.
        shift_div: the shifted fold is `fold = C // shift_div` channels each way.

    Returns:
        (N * T, C, H, W), a new tensor where, for every clip and frame t:
        - channels [0, fold) take the value of frame t + 1 (shifted backward in time, "left");
        - channels [fold, 2 * fold) take the value of frame t - 1 (shifted forward in time, "right");
        - channels [2 * fold, C) are unchanged;
        the frames shifted in from outside the clip are zeros (last frame of the first fold, first frame
        of the second fold).
    """
    nt, c, h, w = x.shape
    if nt % num_segments != 0:
        raise ValueError(f"batch of {nt} frames is not a whole number of clips of {num_segments} frames")
    x = x.reshape(nt // num_segments, num_segments, c, h, w)  # (N, T, C, H, W)
    fold = c // shift_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.reshape(nt, c, h, w)  # (N * T, C, H, W)


class TemporalShift(nn.Module):
    """`temporal_shift` as a parameter-free module (so hooks can see it); (N * T, C, H, W) -> same."""

    def __init__(self, num_segments: int, shift_div: int = 8) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.shift_div = shift_div

    def forward(self, x: Tensor) -> Tensor:
        return temporal_shift(x, self.num_segments, self.shift_div)

    def extra_repr(self) -> str:
        return f"num_segments={self.num_segments}, shift_div={self.shift_div}"


class _Block(nn.Module):
    """Shared forward of the residual blocks, with the temporal shift placed as TSM places it.

    shift_place None: no shift. 'blockres': only the residual branch sees shifted features (the shift
    sits at the input of the branch's first conv); the identity / downsample path gets the block input
    unshifted. 'block': the block input is shifted before it splits, so both paths see it shifted.
    """

    def _init_shift(self, shift_place: str | None, num_segments: int, shift_div: int) -> None:
        self.shift_place = shift_place
        # No parameters, so the state-dict keys are the same with and without the shift.
        self.shift = TemporalShift(num_segments, shift_div) if shift_place else nn.Identity()

    def branch(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if self.shift_place == "block":
            x = self.shift(x)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.branch(self.shift(x) if self.shift_place == "blockres" else x)
        return self.relu(out + identity)


class BasicBlock(_Block):
    """ResNet-18/34 block: 3x3 conv (stride) -> BN -> ReLU -> 3x3 conv -> BN, plus the shortcut.

    (N * T, inplanes, H, W) -> (N * T, planes, H / stride, W / stride).
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        shift_place: str | None = None,
        num_segments: int = 8,
        shift_div: int = 8,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self._init_shift(shift_place, num_segments, shift_div)

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(_Block):
    """ResNet-50 block (torchvision's, stride on the 3x3 conv): 1x1 -> 3x3 (stride) -> 1x1 (x4 channels).

    (N * T, inplanes, H, W) -> (N * T, 4 * planes, H / stride, W / stride).
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        shift_place: str | None = None,
        num_segments: int = 8,
        shift_div: int = 8,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self._init_shift(shift_place, num_segments, shift_div)

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


ARCHS: dict[str, tuple[type[_Block], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """The 2D ResNet trunk (torchvision layout and names, no `fc`), shift in every block if asked.

    (N * T, in_channels, H, W) -> (N * T, num_features) globally average-pooled features, with
    num_features 512 (resnet18) or 2048 (resnet50). The spatial stride is 32 (conv1 and max-pool 4,
    layers 2-4 another 8).
    """

    def __init__(
        self,
        arch: str = "resnet18",
        in_channels: int = 3,
        num_segments: int = 8,
        shift_place: str | None = None,
        shift_div: int = 8,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
        block, layers = ARCHS[arch]
        # bn1 must be registered first: partial BN keeps "the first BatchNorm" trainable, in module order.
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = 64
        shift_kw = dict(shift_place=shift_place, num_segments=num_segments, shift_div=shift_div)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, shift_kw)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, shift_kw)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, shift_kw)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, shift_kw)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 512 * block.expansion

        # torchvision's initialisation (used when training from scratch).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: type[_Block], planes: int, blocks: int, stride: int, shift_kw: dict) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, **shift_kw)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, **shift_kw) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)  # (N * T, num_features)


@register_model("tsm", reads="volume", clip_len=8, clip_len_arg="num_segments")
class TSM(nn.Module):
    """TSN/TSM video classifier over rendered frames: per-frame 2D ResNet, logits averaged over frames.

    Args:
        arch: 'resnet18' (BasicBlock, 512 features) or 'resnet50' (Bottleneck, 2048 features).
        in_channels: image channels of a frame (17 for per-joint heatmaps, 1 for grayscale, ...).
        num_classes: classifier outputs.
        num_segments: frames per clip, T; inputs must have exactly this many frames.
        shift: insert TSM's temporal shift in every residual block (off: a plain TSN).
        shift_div: 1/shift_div of the channels shift backward in time and another 1/shift_div forward.
        shift_place: 'blockres' (TSM's default: shift at the input of each block's residual branch only,
            the identity path unshifted) or 'block' (shift the whole block input). Ignored without `shift`.
        consensus_type: how per-frame logits become clip logits; only 'avg' (the mean over frames).
        dropout: dropout probability on each frame's pooled features before `fc`.
        partial_bn: TSN's partial BatchNorm. While the model is in train mode, every BatchNorm2d of the
            backbone except the first (`backbone.bn1`) stays in eval mode (normalises with its running
            statistics and does not update them) and its weight and bias have `requires_grad=False`
            (set at construction and again by every `train()` call, as TSM does). `eval()` is
            unaffected. The frozen statistics only make sense when the backbone starts from trained
            weights: from scratch they are mean 0, variance 1, i.e. those BN layers do nothing.
            `partial_bn=False` is the CLI's `--npb`.

    Attributes:
        backbone: the `ResNet` trunk, (N * T, C, H, W) -> (N * T, num_features).
        fc: the classifier, `nn.Linear(num_features, num_classes)`.
        num_classes, num_features, num_segments.

    Input: x (N, C, T, H, W) rendered volume, float. Output of `forward`: logits (N, num_classes).
    """

    def __init__(
        self,
        arch: str = "resnet18",
        in_channels: int = 17,
        num_classes: int = 60,
        num_segments: int = 8,
        shift: bool = False,
        shift_div: int = 8,
        shift_place: str = "blockres",
        consensus_type: str = "avg",
        dropout: float = 0.5,
        partial_bn: bool = True,
    ) -> None:
        super().__init__()
        if consensus_type not in CONSENSUS_TYPES:
            raise ValueError(f"consensus_type {consensus_type!r} is not supported; only 'avg' is")
        if shift_place not in SHIFT_PLACES:
            raise ValueError(f"shift_place {shift_place!r} is unknown; choose one of {', '.join(SHIFT_PLACES)}")
        if shift_div < 2:
            raise ValueError(f"shift_div must be >= 2 (two folds of C // shift_div channels), got {shift_div}")
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.num_segments = num_segments
        self.partial_bn = partial_bn
        self.backbone = ResNet(arch, in_channels, num_segments, shift_place if shift else None, shift_div)
        self.num_features = self.backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.fc = self._new_fc(num_classes)
        if partial_bn:
            self._freeze_bn()

    def _new_fc(self, num_classes: int) -> nn.Linear:
        # TSN initialises its new classifier with N(0, 0.001^2) weights and zero bias.
        fc = nn.Linear(self.num_features, num_classes)
        nn.init.normal_(fc.weight, 0.0, 0.001)
        nn.init.zeros_(fc.bias)
        return fc

    def frozen_bns(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm layers partial BN freezes: all of the backbone's but the first (`bn1`)."""
        return [m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm2d)][1:]

    def _freeze_bn(self) -> None:
        for bn in self.frozen_bns():
            bn.eval()
            bn.weight.requires_grad_(False)
            bn.bias.requires_grad_(False)

    def train(self, mode: bool = True) -> TSM:
        """Set train/eval mode; with `partial_bn`, train mode leaves all BN but the first frozen."""
        super().train(mode)
        if self.partial_bn and mode:
            self._freeze_bn()
        return self

    def _frame_features(self, x: Tensor) -> Tensor:
        """(N, C, T, H, W) -> (N, T, num_features) pooled features of every frame."""
        if x.dim() != 5:
            raise ValueError(f"expected a volume (N, C, T, H, W), got shape {tuple(x.shape)}")
        n, c, t, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels (in_channels), got {c}: shape (N, C, T, H, W)")
        if t != self.num_segments:
            raise ValueError(
                f"expected T == num_segments == {self.num_segments} frames, got {t}: shape (N, C, T, H, W); "
                "sample clips with as many frames as the model's num_segments"
            )
        # Frames of a clip contiguous along the batch axis, as the temporal shift expects.
        x = x.transpose(1, 2).reshape(n * t, c, h, w)  # (N * T, C, H, W)
        return self.backbone(x).view(n, t, -1)  # (N, T, D)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, C, T, H, W) rendered volume -> (N, num_features) pooled features averaged over frames."""
        return self._frame_features(x).mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, T, H, W) rendered volume -> (N, num_classes) logits, the mean of per-frame logits.

        Dropout and the classifier act on each frame before the average, as in TSN, so in train mode
        every frame gets its own dropout mask.
        """
        feats = self._frame_features(x)  # (N, T, D)
        return self.fc(self.dropout(feats)).mean(dim=1)  # (N, T, K) -> (N, K)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The optimiser groups: the 2D ResNet trunk and the classifier."""
        return {"backbone": list(self.backbone.parameters()), "head": list(self.fc.parameters())}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace `fc` by a freshly initialised one with `num_classes` outputs (same device and dtype)."""
        w = self.fc.weight
        self.fc = self._new_fc(num_classes).to(device=w.device, dtype=w.dtype)
        self.num_classes = num_classes
