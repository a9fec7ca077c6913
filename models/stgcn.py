"""ST-GCN and ST-GCN++: pyskl's `STGCN` backbone in its two published configurations.

- 'stgcn' (Yan et al., AAAI 2018, as pyskl's `configs/stgcn/stgcn_pyskl_*`): ST-GCN's own graph partition
  ('stgcn_spatial'), a learnable importance mask on the fixed graph (`gcn.PA`, the graph `gcn.A` a buffer),
  9x1 temporal convs.
- 'stgcnpp' (Duan et al., "PYSKL", ACM MM 2022, `configs/stgcn++/`): the 'spatial' graph initialises a
  learnable graph (`gcn.A` a parameter), a residual inside the graph conv (`gcn.down`), and pyskl's
  multi-scale temporal conv (`tcn.branches`, `tcn.transform`).

Parameter names follow pyskl's `STGCN(graph_cfg, ...)`: `backbone.data_bn`, `backbone.gcn.{i}.{gcn,tcn,
residual}`, so pyskl checkpoints load strictly (tests/test_gcn.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.gcn import (
    GCNRecognizer,
    LayoutArg,
    UnitTCN,
    data_bn,
    normalize_input,
    residual_branch,
    resolve_graph,
    stage_plan,
)
from models.registry import register_model

__all__ = ["UnitGCN", "MSTCN", "STGCNBlock", "STGCN", "stgcn", "stgcnpp"]

ADAPTIVE = (None, "init", "offset", "importance")


class UnitGCN(nn.Module):
    """pyskl's `unit_gcn` (conv_pos 'pre'): a 1x1 conv to K * C_out channels, then per subset k a graph
    aggregation with A_k, summed over k; BatchNorm; plus the input through `down` (with_res); ReLU.

    adaptive: how the graph is learnt. None: the fixed graph (buffer `A`); 'init': `A` is a parameter
    initialised with the graph; 'importance': the fixed graph times a learnt mask `PA` (ones at first);
    'offset': the fixed graph plus a learnt `PA` (about 0 at first).
    (N, C_in, T, V) -> (N, C_out, T, V).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        A: torch.Tensor,
        adaptive: str | None = "importance",
        with_res: bool = False,
    ) -> None:
        super().__init__()
        if adaptive not in ADAPTIVE:
            raise ValueError(f"adaptive must be one of {ADAPTIVE}, got {adaptive!r}")
        self.num_subsets = A.shape[0]
        self.adaptive = adaptive
        # Registration order follows pyskl (state-dict order: PA, A, bn, conv, down).
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()
        if adaptive == "init":
            self.A = nn.Parameter(A.clone())
        else:
            self.register_buffer("A", A.clone())
        if adaptive in ("offset", "importance"):
            self.PA = nn.Parameter(torch.ones_like(A) if adaptive == "importance" else torch.empty_like(A))
            if adaptive == "offset":
                nn.init.uniform_(self.PA, -1e-6, 1e-6)
        self.conv = nn.Conv2d(in_channels, out_channels * self.num_subsets, 1)
        self.down: nn.Module | None = None
        if with_res:
            self.down = nn.Identity()
            if in_channels != out_channels:
                self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))

    def graph(self) -> torch.Tensor:
        """The (K, V, V) graph used now."""
        if self.adaptive == "importance":
            return self.A * self.PA
        if self.adaptive == "offset":
            return self.A + self.PA
        return self.A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        res = self.down(x) if self.down is not None else 0
        y = self.conv(x).view(n, self.num_subsets, -1, t, v)  # (N, K, C_out, T, V)
        y = torch.einsum("nkctv,kvw->nctw", y, self.graph())  # (N, C_out, T, V): out_w = sum_v x_v A_k[v, w]
        return self.act(self.bn(y) + res)


class MSTCN(nn.Module):
    """pyskl's `mstcn` (ST-GCN++): six parallel branches, concatenated, then BN -> ReLU -> 1x1 conv -> BN.

    Branches (pyskl's ms_cfg): four 1x1 conv -> BN -> ReLU -> 3x1 conv with dilation 1, 2, 3, 4; one
    1x1 conv -> BN -> ReLU -> 3x1 max-pool; one strided 1x1 conv. Branch 0 takes the channels that do not
    divide by six. (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, dilations: Sequence[int] = (1, 2, 3, 4)
    ) -> None:
        super().__init__()
        num_branches = len(dilations) + 2
        if out_channels < num_branches:
            raise ValueError(f"mstcn needs at least one channel per branch ({num_branches}), got {out_channels}")
        mid = out_channels // num_branches
        widths = [out_channels - mid * (num_branches - 1)] + [mid] * (num_branches - 1)
        branches: list[nn.Module] = []
        for width, dilation in zip(widths, dilations, strict=False):
            branches.append(self._pointwise(in_channels, width, UnitTCN(width, width, 3, stride, dilation, norm=False)))
        pool = nn.MaxPool2d(kernel_size=(3, 1), stride=(stride, 1), padding=(1, 0))
        branches.append(self._pointwise(in_channels, widths[-2], pool))
        branches.append(nn.Conv2d(in_channels, widths[-1], kernel_size=1, stride=(stride, 1)))
        self.branches = nn.ModuleList(branches)
        self.transform = nn.Sequential(
            nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Conv2d(out_channels, out_channels, kernel_size=1)
        )
        self.bn = nn.BatchNorm2d(out_channels)

    @staticmethod
    def _pointwise(in_channels: int, width: int, temporal: nn.Module) -> nn.Sequential:
        """1x1 conv -> BN -> ReLU -> `temporal` (indices 0, 1, 2, 3 as pyskl's Sequential)."""
        return nn.Sequential(nn.Conv2d(in_channels, width, kernel_size=1), nn.BatchNorm2d(width), nn.ReLU(), temporal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([branch(x) for branch in self.branches], dim=1)  # (N, C_out, T', V)
        return self.bn(self.transform(y))


class STGCNBlock(nn.Module):
    """pyskl's `STGCNBlock`: graph conv -> temporal conv (9x1 `unit_tcn` or `mstcn`), + residual, ReLU.

    (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        A: torch.Tensor,
        stride: int = 1,
        residual: bool = True,
        gcn_adaptive: str | None = "importance",
        gcn_with_res: bool = False,
        tcn_type: str = "unit_tcn",
    ) -> None:
        super().__init__()
        if tcn_type not in ("unit_tcn", "mstcn"):
            raise ValueError(f"tcn_type must be 'unit_tcn' or 'mstcn', got {tcn_type!r}")
        self.gcn = UnitGCN(in_channels, out_channels, A, adaptive=gcn_adaptive, with_res=gcn_with_res)
        if tcn_type == "mstcn":
            self.tcn: nn.Module = MSTCN(out_channels, out_channels, stride=stride)
        else:
            self.tcn = UnitTCN(out_channels, out_channels, 9, stride=stride)
        self.relu = nn.ReLU()
        self.residual = residual_branch(in_channels, out_channels, stride, residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.residual(x) if self.residual is not None else 0
        return self.relu(self.tcn(self.gcn(x)) + res)


class STGCN(nn.Module):
    """pyskl's `STGCN` backbone: input BatchNorm, then `num_stages` STGCNBlocks (`gcn.0` ... ).

    A: the (K, V, V) graph (models/gcn_graph.py). in_channels: C of the input. base_channels: width of the
    first stage; stages in `inflate_stages` double it, those in `down_stages` halve T (1-based). data_bn_type:
    'VC', 'MVC' (per person; then inputs need M = num_person) or None. gcn_adaptive, gcn_with_res, tcn_type:
    see STGCNBlock. (N, M, T, V, C) -> (N, M, C', T', V).
    """

    def __init__(
        self,
        A: torch.Tensor,
        in_channels: int = 3,
        base_channels: int = 64,
        data_bn_type: str | None = "VC",
        num_person: int = 2,
        num_stages: int = 10,
        inflate_stages: Sequence[int] = (5, 8),
        down_stages: Sequence[int] = (5, 8),
        gcn_adaptive: str | None = "importance",
        gcn_with_res: bool = False,
        tcn_type: str = "unit_tcn",
    ) -> None:
        super().__init__()
        self.data_bn_type = data_bn_type
        self.data_bn = data_bn(in_channels, A.shape[1], num_person, data_bn_type)
        # pyskl leaves stage 1 out when it would map base_channels to itself
        plan = stage_plan(
            in_channels,
            base_channels,
            num_stages,
            inflate_stages,
            down_stages,
            first_stage=in_channels != base_channels,
        )
        block = dict(gcn_adaptive=gcn_adaptive, gcn_with_res=gcn_with_res, tcn_type=tcn_type)
        self.gcn = nn.ModuleList(STGCNBlock(i, o, A, s, r, **block) for i, o, s, r in plan)
        self.out_channels = plan[-1][1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = x.shape[:2]
        x = normalize_input(x, self.data_bn, per_person=self.data_bn_type == "MVC")  # (N*M, C, T, V)
        for block in self.gcn:
            x = block(x)
        return x.reshape((n, m) + x.shape[1:])  # (N, M, C', T', V)


def _build(
    mode: str, layout: LayoutArg, num_joints: int, num_classes: int, dropout: float, **backbone
) -> GCNRecognizer:
    net = STGCN(resolve_graph(layout, num_joints, mode), **backbone)
    return GCNRecognizer(net, net.out_channels, num_classes, dropout)


@register_model("stgcn", reads="joints", clip_len=100, optimizer="sgd", joints_prep="gcn")
def stgcn(
    num_classes: int = 60,
    dropout: float = 0.0,
    num_joints: int = 25,
    layout: LayoutArg = "ntu25",
    in_channels: int = 3,
    base_channels: int = 64,
    num_person: int = 2,
    data_bn_type: str | None = "VC",
) -> GCNRecognizer:
    """ST-GCN as pyskl's `stgcn_pyskl_ntu60_xsub_*` configs: 'stgcn_spatial' graph of `layout` (a built-in
    name or a declared layout dict) with learnt importance, 9x1 temporal convs, 'VC' data_bn.
    dropout: the head's. num_joints must be the layout's joint count. 3.1 M parameters at the defaults.
    Input (N, M, T, V, C) -> logits (N, num_classes)."""
    return _build(
        "stgcn_spatial",
        layout,
        num_joints,
        num_classes,
        dropout,
        in_channels=in_channels,
        base_channels=base_channels,
        num_person=num_person,
        data_bn_type=data_bn_type,
    )


@register_model("stgcnpp", reads="joints", clip_len=100, optimizer="sgd", joints_prep="gcn")
def stgcnpp(
    num_classes: int = 60,
    dropout: float = 0.0,
    num_joints: int = 25,
    layout: LayoutArg = "ntu25",
    in_channels: int = 3,
    base_channels: int = 64,
    num_person: int = 2,
    data_bn_type: str | None = "VC",
) -> GCNRecognizer:
    """ST-GCN++ as pyskl's `stgcn++_ntu60_xsub_*` configs: the 'spatial' graph of `layout` as the initial
    value of a learnt graph, a residual in each graph conv, multi-scale temporal convs, 'VC' data_bn.
    dropout: the head's. num_joints must be the layout's joint count. 1.4 M parameters at the defaults.
    Input (N, M, T, V, C) -> logits (N, num_classes)."""
    return _build(
        "spatial",
        layout,
        num_joints,
        num_classes,
        dropout,
        in_channels=in_channels,
        base_channels=base_channels,
        num_person=num_person,
        data_bn_type=data_bn_type,
        gcn_adaptive="init",
        gcn_with_res=True,
        tcn_type="mstcn",
    )
