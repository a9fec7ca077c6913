"""CTR-GCN (Chen et al., "Channel-wise Topology Refinement Graph Convolution", ICCV 2021), as pyskl's `CTRGCN`.

Each graph conv learns, per subset and per output channel, a refinement of a learnt graph from the pairwise
differences of pooled joint features; the temporal conv is CTR-GCN's multi-scale one (two dilated 5x1 convs,
a max-pool and a 1x1 branch). Parameter names follow pyskl (`backbone.A`, `backbone.data_bn`,
`backbone.net.{i}.{gcn1,tcn1,residual}`), so pyskl checkpoints load strictly (tests/test_gcn.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.gcn import (
    GCNRecognizer,
    LayoutArg,
    UnitTCN,
    bn_init,
    conv_init,
    data_bn,
    normalize_input,
    residual_branch,
    resolve_graph,
    stage_plan,
)
from models.registry import register_model

__all__ = ["CTRGC", "UnitCTRGCN", "MSTCN", "CTRGCNBlock", "CTRGCN", "ctrgcn"]


class CTRGC(nn.Module):
    """One subset's channel-wise topology refinement (pyskl's `CTRGC`).

    conv1, conv2: 1x1 convs to R relation channels, pooled over T; tanh of their pairwise joint differences
    -> conv4 to C_out channels: a (C_out, V, V) refinement, scaled by `alpha` and added to the shared graph
    A (V, V); conv3 maps the input to C_out channels, which are aggregated over joints with it.
    R = 8 for in_channels <= 16, else in_channels // rel_reduction. (N, C_in, T, V) -> (N, C_out, T, V).
    """

    def __init__(self, in_channels: int, out_channels: int, rel_reduction: int = 8) -> None:
        super().__init__()
        rel = 8 if in_channels <= 16 else in_channels // rel_reduction
        self.conv1 = nn.Conv2d(in_channels, rel, kernel_size=1)
        self.conv2 = nn.Conv2d(in_channels, rel, kernel_size=1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.conv4 = nn.Conv2d(rel, out_channels, kernel_size=1)
        self.tanh = nn.Tanh()
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            conv_init(conv)

    def forward(self, x: torch.Tensor, A: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, T, V), A (V, V), alpha (1,) -> (N, C_out, T, V)."""
        q, k = self.conv1(x).mean(dim=-2), self.conv2(x).mean(dim=-2)  # (N, R, V) each
        rel = self.tanh(q.unsqueeze(-1) - k.unsqueeze(-2))  # (N, R, V, V): [u, v] = q_u - k_v
        graph = self.conv4(rel) * alpha + A[None, None]  # (N, C_out, V, V)
        # out_v = sum_u graph[u, v] x_u, as pyskl (and its other GCNs); the original CTR-GCN sums over v instead
        return torch.einsum("ncuv,nctu->nctv", graph, self.conv3(x))


class UnitCTRGCN(nn.Module):
    """pyskl's `unit_ctrgcn`: the sum of one CTRGC per subset of a learnt graph `A` (initialised with the
    layout's), BatchNorm (gamma 1e-6 at first), plus the input (through a 1x1 conv + BN when the widths
    differ), ReLU. `alpha` (0 at first, as pyskl) scales the refinements. (N, C_in, T, V) -> (N, C_out, T, V).
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor) -> None:
        super().__init__()
        self.convs = nn.ModuleList(CTRGC(in_channels, out_channels) for _ in range(A.shape[0]))
        self.down: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
            conv_init(self.down[0])
            bn_init(self.down[1], 1)
        self.A = nn.Parameter(A.clone())
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        bn_init(self.bn, 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = sum(conv(x, a, self.alpha) for conv, a in zip(self.convs, self.A, strict=True))  # (N, C_out, T, V)
        return self.relu(self.bn(y) + self.down(x))


class MSTCN(nn.Module):
    """CTR-GCN's multi-scale temporal conv as pyskl has it (`MSTCN`, used without its own residual).

    Branches, concatenated, then a ReLU: per dilation, 1x1 conv -> BN -> ReLU -> (kernel_size x 1) conv + BN;
    1x1 conv -> BN -> ReLU -> 3x1 max-pool -> BN; a strided 1x1 conv -> BN, which takes the channels that do
    not divide by the branch count. Unlike the original CTR-GCN, pyskl's applies the ReLU after the
    concatenation, so the block computes relu(relu(tcn) + residual); the golden outputs need it.
    (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        stride: int = 1,
        dilations: Sequence[int] = (1, 2),
    ) -> None:
        super().__init__()
        num_branches = len(dilations) + 2
        if out_channels < num_branches:
            raise ValueError(f"MSTCN needs at least one channel per branch ({num_branches}), got {out_channels}")
        mid = out_channels // num_branches
        rest = out_channels - mid * (num_branches - 1)
        branches = [
            self._pointwise(in_channels, mid, UnitTCN(mid, mid, kernel_size, stride, dilation))
            for dilation in dilations
        ]
        pool = nn.MaxPool2d(kernel_size=(3, 1), stride=(stride, 1), padding=(1, 0))
        branches.append(nn.Sequential(*self._pointwise(in_channels, mid, pool), nn.BatchNorm2d(mid)))
        branches.append(
            nn.Sequential(nn.Conv2d(in_channels, rest, kernel_size=1, stride=(stride, 1)), nn.BatchNorm2d(rest))
        )
        self.branches = nn.ModuleList(branches)

    @staticmethod
    def _pointwise(in_channels: int, width: int, temporal: nn.Module) -> nn.Sequential:
        """1x1 conv -> BN -> ReLU -> `temporal` (indices 0, 1, 2, 3 as pyskl's Sequential)."""
        return nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True), temporal
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.cat([branch(x) for branch in self.branches], dim=1))  # (N, C_out, T', V)


class CTRGCNBlock(nn.Module):
    """pyskl's `CTRGCNBlock`: UnitCTRGCN (`gcn1`) -> MSTCN (`tcn1`), + residual, ReLU.

    (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        A: torch.Tensor,
        stride: int = 1,
        residual: bool = True,
        kernel_size: int = 5,
        dilations: Sequence[int] = (1, 2),
    ) -> None:
        super().__init__()
        self.gcn1 = UnitCTRGCN(in_channels, out_channels, A)
        self.tcn1 = MSTCN(out_channels, out_channels, kernel_size=kernel_size, stride=stride, dilations=dilations)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual_branch(in_channels, out_channels, stride, residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.residual(x) if self.residual is not None else 0
        return self.relu(self.tcn1(self.gcn1(x)) + res)


class CTRGCN(nn.Module):
    """pyskl's `CTRGCN` backbone: per-person input BatchNorm ('MVC'), then `num_stages` CTRGCNBlocks (`net`).

    A: the (K, V, V) graph (models/gcn_graph.py), kept as the buffer `A` and copied into every block's learnt
    graph. num_person: M of the input (data_bn has M * V * C features). base_channels, inflate_stages,
    down_stages: as in models/gcn.stage_plan. (N, M, T, V, C) -> (N, M, C', T', V).
    """

    def __init__(
        self,
        A: torch.Tensor,
        in_channels: int = 3,
        base_channels: int = 64,
        num_person: int = 2,
        num_stages: int = 10,
        inflate_stages: Sequence[int] = (5, 8),
        down_stages: Sequence[int] = (5, 8),
    ) -> None:
        super().__init__()
        self.register_buffer("A", A.clone())
        self.data_bn = data_bn(in_channels, A.shape[1], num_person, "MVC")
        plan = stage_plan(in_channels, base_channels, num_stages, inflate_stages, down_stages)
        self.net = nn.ModuleList(CTRGCNBlock(i, o, A, s, r) for i, o, s, r in plan)
        self.out_channels = plan[-1][1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = x.shape[:2]
        x = normalize_input(x, self.data_bn, per_person=True)  # (N*M, C, T, V)
        for block in self.net:
            x = block(x)
        return x.reshape((n, m) + x.shape[1:])  # (N, M, C', T', V)


@register_model("ctrgcn", reads="joints", clip_len=100, optimizer="sgd", joints_prep="gcn")
def ctrgcn(
    num_classes: int = 60,
    dropout: float = 0.0,
    num_joints: int = 25,
    layout: LayoutArg = "ntu25",
    in_channels: int = 3,
    base_channels: int = 64,
    num_person: int = 2,
) -> GCNRecognizer:
    """CTR-GCN as pyskl's `ctrgcn_pyskl_ntu60_xsub_*` configs: the 'spatial' graph of `layout` (a built-in
    name or a declared layout dict), 'MVC' data_bn over `num_person` persons. dropout: the head's.
    num_joints must be the layout's joint count. 1.4 M parameters at the defaults.
    Input (N, num_person, T, V, C) -> logits (N, num_classes)."""
    net = CTRGCN(resolve_graph(layout, num_joints, "spatial"), in_channels, base_channels, num_person)
    return GCNRecognizer(net, net.out_channels, num_classes, dropout)
