"""PoseConv3D: a SlowOnly 3D ResNet over stacked keypoint heatmap volumes, with an I3D head.

Reimplements pyskl's `Recognizer3D(ResNet3dSlowOnly, I3DHead)` (Duan et al., "Revisiting Skeleton-based
Action Recognition", CVPR 2022) so that pyskl checkpoints load unchanged: every submodule carries the
upstream name (`backbone.layer2.0.conv1.conv.weight`, `cls_head.fc_cls.bias`, ...).

Defaults are pyskl's NTU60 joint config (`configs/posec3d/slowonly_r50_ntu60_xsub/joint.py`):
17 input channels (one heatmap per COCO joint), 3 stages of (4, 6, 3) bottlenecks, 32 base channels,
no stride in the stem, temporal inflation in stages 2 and 3 only, 512-d pooled features, 60 classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.recognizer import Recognizer
from models.registry import register_model

IntOrSeq = int | Sequence[int]


def _per_stage(value: IntOrSeq, num_stages: int, name: str) -> tuple[int, ...]:
    """Broadcast an int to one value per stage, or check a sequence has one value per stage."""
    if isinstance(value, int):
        return (value,) * num_stages
    value = tuple(int(v) for v in value)
    if len(value) != num_stages:
        raise ValueError(f"{name} needs one value per stage ({num_stages}), got {value}")
    return value


class ConvModule(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d -> optional ReLU, named `conv` / `bn` as mmcv's ConvModule.

    Input (N, C_in, T, H, W) -> output (N, C_out, T', H', W').
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int],
        stride: tuple[int, int, int] = (1, 1, 1),
        padding: tuple[int, int, int] = (0, 0, 0),
        act: bool = True,
    ) -> None:
        super().__init__()
        # No conv bias: the BatchNorm that follows has its own shift.
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.relu(x) if self.relu is not None else x


class Bottleneck3d(nn.Module):
    """pyskl's Bottleneck3d with the '3x1x1' inflate style: 1x1x1 (or 3x1x1) -> 1x3x3 -> 1x1x1 (x4 channels).

    Strides (temporal, spatial, spatial) sit in the second (1x3x3) conv. Input (N, inplanes, T, H, W) ->
    output (N, 4 * planes, T / temporal_stride, H / spatial_stride, W / spatial_stride), rounded up.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        downsample: nn.Module | None = None,
        inflate: bool = True,
    ) -> None:
        super().__init__()
        # Inflated blocks mix time only in the first conv; SlowOnly leaves the early stages purely spatial.
        k1, p1 = ((3, 1, 1), (1, 0, 0)) if inflate else ((1, 1, 1), (0, 0, 0))
        self.conv1 = ConvModule(inplanes, planes, k1, padding=p1)
        self.conv2 = ConvModule(
            planes,
            planes,
            (1, 3, 3),
            stride=(temporal_stride, spatial_stride, spatial_stride),
            padding=(0, 1, 1),
        )
        self.conv3 = ConvModule(planes, planes * self.expansion, (1, 1, 1), act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.conv2(self.conv1(x)))
        return self.relu(out + identity)


class ResNet3dSlowOnly(nn.Module):
    """pyskl's ResNet3dSlowOnly (depth-50 style bottlenecks, conv1 kernel (1, 7, 7)).

    Args:
        in_channels: channels of the input volume (17 joint heatmaps, 1 for grayscale, ...).
        base_channels: width of the stem; stage i has `base_channels * 2**i` bottleneck planes.
        num_stages: number of residual stages (1 to 4), named `layer1` ... `layer{num_stages}`.
        stage_blocks: bottlenecks per stage; only the first `num_stages` entries are used (as pyskl).
        out_indices: stages whose outputs `forward` returns (one -> a tensor, several -> a tuple).
        conv1_stride: (temporal, spatial) stride of the stem conv.
        pool1_stride: (temporal, spatial) stride of the stem's 1x3x3 max-pool.
        inflate: per stage, 1 for a 3x1x1 first conv in its bottlenecks, 0 for 1x1x1; an entry may also be
            a per-block sequence.
        spatial_strides, temporal_strides: per-stage strides, applied in the first block of the stage.

    Input (N, in_channels, T, H, W) -> feature map (N, 4 * base_channels * 2**i, T', H', W') of stage i.
    """

    def __init__(
        self,
        in_channels: int = 17,
        base_channels: int = 32,
        num_stages: int = 3,
        stage_blocks: Sequence[int] = (4, 6, 3),
        out_indices: Sequence[int] = (2,),
        conv1_stride: Sequence[int] = (1, 1),
        pool1_stride: Sequence[int] = (1, 1),
        inflate: Sequence[int | Sequence[int]] | int = (0, 1, 1),
        spatial_strides: Sequence[int] = (2, 2, 2),
        temporal_strides: Sequence[int] = (1, 1, 2),
    ) -> None:
        super().__init__()
        if not 1 <= num_stages <= 4:
            raise ValueError(f"num_stages must be in 1..4, got {num_stages}")
        if len(stage_blocks) < num_stages:
            raise ValueError(f"stage_blocks {tuple(stage_blocks)} has fewer than {num_stages} entries")
        self.out_indices = tuple(int(i) for i in out_indices)
        if not self.out_indices or not all(0 <= i < num_stages for i in self.out_indices):
            raise ValueError(f"out_indices {self.out_indices} must be stage indices in 0..{num_stages - 1}")
        spatial_strides = _per_stage(spatial_strides, num_stages, "spatial_strides")
        temporal_strides = _per_stage(temporal_strides, num_stages, "temporal_strides")
        inflations = (inflate,) * num_stages if isinstance(inflate, int) else tuple(inflate)
        if len(inflations) != num_stages:
            raise ValueError(f"inflate needs one entry per stage ({num_stages}), got {inflate}")
        ct, cs = conv1_stride
        pt, ps = pool1_stride

        self.conv1 = ConvModule(in_channels, base_channels, (1, 7, 7), stride=(ct, cs, cs), padding=(0, 3, 3))
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(pt, ps, ps), padding=(0, 1, 1))
        self.res_layers: list[str] = []
        inplanes = base_channels
        for i in range(num_stages):
            planes = base_channels * 2**i
            layer = self._make_res_layer(
                inplanes,
                planes,
                stage_blocks[i],
                spatial_strides[i],
                temporal_strides[i],
                _per_stage(inflations[i], stage_blocks[i], f"inflate[{i}]"),
            )
            inplanes = planes * Bottleneck3d.expansion
            self.add_module(f"layer{i + 1}", layer)
            self.res_layers.append(f"layer{i + 1}")
        self.out_channels = [base_channels * 2**i * Bottleneck3d.expansion for i in range(num_stages)]
        self.init_weights()

    @staticmethod
    def _make_res_layer(
        inplanes: int,
        planes: int,
        blocks: int,
        spatial_stride: int,
        temporal_stride: int,
        inflate: tuple[int, ...],
    ) -> nn.Sequential:
        downsample = None
        # Same condition as pyskl: a temporal-only stride with matching widths keeps an identity shortcut.
        if spatial_stride != 1 or inplanes != planes * Bottleneck3d.expansion:
            downsample = ConvModule(
                inplanes,
                planes * Bottleneck3d.expansion,
                (1, 1, 1),
                stride=(temporal_stride, spatial_stride, spatial_stride),
                act=False,
            )
        first = Bottleneck3d(inplanes, planes, spatial_stride, temporal_stride, downsample, inflate[0] == 1)
        layers = [first]
        for j in range(1, blocks):
            layers.append(Bottleneck3d(planes * Bottleneck3d.expansion, planes, inflate=inflate[j] == 1))
        return nn.Sequential(*layers)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """pyskl's initialisation: kaiming-normal (fan-out, ReLU) convs, BN weight 1 / bias 0, and the last
        BN of every bottleneck zeroed so that each residual block starts as the identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Bottleneck3d):
                nn.init.zeros_(m.conv3.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x = self.maxpool(self.conv1(x))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return outs[0] if len(outs) == 1 else tuple(outs)


class I3DHead(nn.Module):
    """pyskl's I3DHead: global average pool over (T, H, W) -> dropout -> linear `fc_cls`.

    Input (N, in_channels, T, H, W) feature map -> logits (N, num_classes).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.5, init_std: float = 0.01) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.init_std = init_std
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Normal(0, init_std) weights and zero bias, as pyskl's `normal_init(fc_cls, std=0.01)`."""
        nn.init.normal_(self.fc_cls.weight, std=self.init_std, generator=generator)
        nn.init.zeros_(self.fc_cls.bias)

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> (N, C): mean over time and space, independent of memory format."""
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_cls(self.dropout(self.pool(x)))


@register_model("poseconv3d", reads="volume", clip_len=24)
class PoseConv3D(Recognizer):
    """PoseConv3D recogniser with pyskl's Recognizer3D state-dict layout (`backbone.*`, `cls_head.*`).

    Keyword arguments are pyskl's backbone/head names (see `ResNet3dSlowOnly`); `dropout` and
    `num_classes` go to the head, whose input width follows from the backbone (512 for the defaults).
    A tiny test variant: `PoseConv3D(base_channels=8, stage_blocks=(1, 1, 1))`.

    Input x: (N, in_channels, T, H, W) float heatmap volume (pixel values in [0, 1]); `extract_feat` gives
    (N, num_features, T', H', W'), (N, 512, T/2, H/8, W/8) rounded up for the defaults.
    """

    def __init__(
        self,
        in_channels: int = 17,
        num_classes: int = 60,
        base_channels: int = 32,
        num_stages: int = 3,
        stage_blocks: Sequence[int] = (4, 6, 3),
        out_indices: Sequence[int] = (2,),
        conv1_stride: Sequence[int] = (1, 1),
        pool1_stride: Sequence[int] = (1, 1),
        inflate: Sequence[int | Sequence[int]] | int = (0, 1, 1),
        spatial_strides: Sequence[int] = (2, 2, 2),
        temporal_strides: Sequence[int] = (1, 1, 2),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if len(tuple(out_indices)) != 1:
            raise ValueError(f"the classification head takes one feature map; got out_indices={out_indices}")
        self.backbone = ResNet3dSlowOnly(
            in_channels=in_channels,
            base_channels=base_channels,
            num_stages=num_stages,
            stage_blocks=stage_blocks,
            out_indices=out_indices,
            conv1_stride=conv1_stride,
            pool1_stride=pool1_stride,
            inflate=inflate,
            spatial_strides=spatial_strides,
            temporal_strides=temporal_strides,
        )
        self.num_features = self.backbone.out_channels[tuple(out_indices)[0]]
        self.cls_head = I3DHead(self.num_features, num_classes, dropout=dropout)


def average_clips(logits: torch.Tensor, num_clips: int) -> torch.Tensor:
    """pyskl's `average_clips='prob'`: softmax per clip, then the mean over the clips of each video.

    logits: (N * num_clips, C), the clips of one video consecutive (video-major, as pyskl reshapes
    (N, num_clips, ...) inputs). Returns class probabilities (N, C).
    """
    if logits.ndim != 2 or logits.shape[0] % num_clips:
        raise ValueError(f"logits {tuple(logits.shape)} is not (N * {num_clips}, C)")
    per_clip = logits.reshape(-1, num_clips, logits.shape[1])  # (N, num_clips, C)
    return per_clip.softmax(dim=2).mean(dim=1)
