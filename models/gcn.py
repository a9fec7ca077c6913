"""What the skeleton GCNs share: the joint layout and its graph, the input BatchNorm, the temporal conv, the
stage plan, pyskl's GCNHead and the recogniser that wraps a backbone with it.

The backbones live one per file (models/stgcn.py: ST-GCN and ST-GCN++, models/ctrgcn.py, models/aagcn.py) and
reimplement pyskl's (`kennymckormick/pyskl`, `pyskl/models/gcns/`) with its parameter names, so that a pyskl
`RecognizerGCN` checkpoint (`backbone.*`, `cls_head.fc_cls.*`) loads with strict=True.

Every GCN reads joint coordinates (N, M, T, V, C): clips, persons, frames, joints, channels (x, y, z in
metres, or x, y, score), and its backbone returns (N, M, C', T', V) with C' = 4 * base_channels and
T' = ceil(ceil(T / 2) / 2) for the default 10 stages.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from datasets.store.layouts import Layout, get_layout
from models.gcn_graph import adjacency
from models.recognizer import Recognizer

LayoutArg = Layout | str | dict


def resolve_graph(layout: LayoutArg, num_joints: int, mode: str) -> torch.Tensor:
    """The float32 (3, V, V) adjacency (models/gcn_graph.py) of `layout`: a Layout, a built-in layout name
    ('ntu25', 'coco17', ...) or a declared layout dict (`Layout.to_dict()`, as run configurations carry it).
    Raises ValueError when `num_joints` is not the layout's joint count."""
    if isinstance(layout, dict):
        layout = get_layout(layout.get("name", ""), layout)
    elif isinstance(layout, str):
        layout = get_layout(layout)
    if num_joints != layout.num_joints:
        raise ValueError(f"num_joints={num_joints} but layout {layout.name!r} has {layout.num_joints} joints")
    return torch.tensor(adjacency(layout, mode), dtype=torch.float32)


def data_bn(in_channels: int, num_joints: int, num_person: int, kind: str | None) -> nn.Module:
    """The BatchNorm over the raw input: 'VC' (one feature per joint and channel, shared by the persons),
    'MVC' (one per person, joint and channel) or None (none)."""
    if kind not in ("VC", "MVC", None):
        raise ValueError(f"data_bn_type must be 'VC', 'MVC' or None, got {kind!r}")
    if kind is None:
        return nn.Identity()
    return nn.BatchNorm1d((num_person if kind == "MVC" else 1) * num_joints * in_channels)


def normalize_input(x: torch.Tensor, bn: nn.Module, per_person: bool) -> torch.Tensor:
    """(N, M, T, V, C) -> the BatchNorm'd input as (N * M, C, T, V). The feature index is v * C + c ('VC',
    N * M samples) or m * V * C + v * C + c ('MVC', `per_person`, N samples), as pyskl's."""
    if x.ndim != 5:
        raise ValueError(f"expected input (N, M, T, V, C), got shape {tuple(x.shape)}")
    n, m, t, v, c = x.shape
    x = x.permute(0, 1, 3, 4, 2).contiguous()  # (N, M, V, C, T)
    if isinstance(bn, nn.BatchNorm1d) and bn.num_features != (m if per_person else 1) * v * c:
        raise ValueError(f"input (N, M, T, V, C) = {(n, m, t, v, c)} does not fit data_bn ({bn.num_features})")
    x = bn(x.view(n, m * v * c, t) if per_person else x.view(n * m, v * c, t))
    return x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)  # (N*M, C, T, V)


def stage_plan(
    in_channels: int,
    base_channels: int,
    num_stages: int = 10,
    inflate_stages: Sequence[int] = (5, 8),
    down_stages: Sequence[int] = (5, 8),
    first_stage: bool = True,
) -> list[tuple[int, int, int, bool]]:
    """(in width, out width, temporal stride, residual) of every block: stage 1 maps `in_channels` to
    `base_channels` without a residual; stage i >= 2 doubles the width when i is in `inflate_stages` and
    halves T when i is in `down_stages` (1-based, as pyskl). first_stage=False leaves stage 1 out (pyskl's
    ST-GCN and AAGCN do when in_channels == base_channels)."""
    plan = [(in_channels, base_channels, 1, False)] if first_stage else []
    width = base_channels
    for i in range(2, num_stages + 1):
        out = width * 2 if i in inflate_stages else width
        plan.append((width, out, 2 if i in down_stages else 1, True))
        width = out
    return plan


def residual_branch(in_channels: int, out_channels: int, stride: int, residual: bool) -> nn.Module | None:
    """A block's shortcut: None (no residual), identity, or a strided 1x1 conv + BN (pyskl's `unit_tcn`)."""
    if not residual:
        return None
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return UnitTCN(in_channels, out_channels, kernel_size=1, stride=stride)


@torch.no_grad()
def conv_init(conv: nn.Conv1d | nn.Conv2d) -> None:
    """pyskl's `conv_init`: kaiming-normal weights (fan-out), zero bias."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


@torch.no_grad()
def bn_init(bn: nn.BatchNorm2d, scale: float) -> None:
    """pyskl's `bn_init`: weight `scale`, zero bias."""
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


class UnitTCN(nn.Module):
    """pyskl's `unit_tcn`: a (kernel_size x 1) temporal conv (with bias), then BatchNorm (or none: `norm=False`).

    (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V); padding keeps T at stride 1 for any dilation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 9,
        stride: int = 1,
        dilation: int = 1,
        norm: bool = True,
    ) -> None:
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=(kernel_size, 1),
            padding=(pad, 0),
            stride=(stride, 1),
            dilation=(dilation, 1),
        )
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class GCNHead(nn.Module):
    """pyskl's GCNHead: mean over (T', V) per person, mean over persons, dropout, linear `fc_cls`.

    (N, M, C, T', V) -> logits (N, num_classes).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0, init_std: float = 0.01) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.init_std = init_std
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Normal(0, init_std) weights and zero bias, as pyskl's `normal_init(fc_cls, std=0.01)`."""
        nn.init.normal_(self.fc_cls.weight, std=self.init_std)
        nn.init.zeros_(self.fc_cls.bias)

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        """(N, M, C, T', V) -> (N, C): mean over frames and joints, then over persons (zero persons count)."""
        return x.mean(dim=(3, 4)).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_cls(self.dropout(self.pool(x)))


class GCNRecognizer(Recognizer):
    """A GCN backbone and a GCNHead, with pyskl's `RecognizerGCN` state-dict layout (`backbone.*`,
    `cls_head.fc_cls.*`). The registered factories (stgcn, stgcnpp, ctrgcn, aagcn) build it.

    backbone: (N, M, T, V, C) -> (N, M, num_features, T', V). Input x: (N, M, T, V, C) float.
    """

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.cls_head = GCNHead(num_features, num_classes, dropout=dropout)
