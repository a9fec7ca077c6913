"""AAGCN (Shi et al., "Skeleton-Based Action Recognition with Multi-Stream Adaptive Graph Convolutional
Networks", TIP 2020), as pyskl's `AAGCN`.

Each graph conv adds to a learnt graph a data-dependent one (the normalised similarity of two embeddings of
the joints), then applies spatial, temporal and channel attention; the temporal conv is a 9x1 conv. Parameter
names follow pyskl (`backbone.A`, `backbone.data_bn`, `backbone.gcn.{i}.{gcn,tcn,residual}`), so pyskl
checkpoints load strictly (tests/test_gcn.py).
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

__all__ = ["UnitAAGCN", "AAGCNBlock", "AAGCN", "aagcn"]


class UnitAAGCN(nn.Module):
    """pyskl's `unit_aagcn` (adaptive, with attention).

    Per subset k: the graph A_k (learnt, initialised with the layout's) + alpha * tanh(a^T b / (C_e * T)), with
    a, b the C_e = out_channels // coff_embedding channel embeddings `conv_a`, `conv_b` flattened over
    (C_e, T); the input aggregated over joints with it, then `conv_d`. The sum over k -> BN (gamma 1e-6 at
    first) + input (through `down` when the widths differ) -> ReLU -> spatial (`conv_sa`), temporal (`conv_ta`)
    and channel (`fc1c`, `fc2c`) attention, each as y * (1 + sigmoid(...)). (N, C_in, T, V) -> (N, C_out, T, V).
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, coff_embedding: int = 4) -> None:
        super().__init__()
        num_subsets, num_joints = A.shape[0], A.shape[-1]
        inter = out_channels // coff_embedding
        self.conv_d = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(num_subsets))
        self.A = nn.Parameter(A.clone())
        self.alpha = nn.Parameter(torch.zeros(1))
        self.conv_a = nn.ModuleList(nn.Conv2d(in_channels, inter, 1) for _ in range(num_subsets))
        self.conv_b = nn.ModuleList(nn.Conv2d(in_channels, inter, 1) for _ in range(num_subsets))
        self.conv_ta = nn.Conv1d(out_channels, 1, 9, padding=4)
        kernel = num_joints if num_joints % 2 else num_joints - 1  # an odd kernel over the joints
        self.conv_sa = nn.Conv1d(out_channels, 1, kernel, padding=(kernel - 1) // 2)
        self.fc1c = nn.Linear(out_channels, out_channels // 2)
        self.fc2c = nn.Linear(out_channels // 2, out_channels)
        self.down: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        self.bn = nn.BatchNorm2d(out_channels)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """pyskl's: kaiming (fan-out) convs, `conv_d` N(0, 2 / (C_out * C_in * K)), BN gamma 1 but 1e-6 for
        `bn`, and the attentions starting neutral (`conv_ta` and `fc2c` zero, `conv_sa` xavier)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                bn_init(m, 1)
        bn_init(self.bn, 1e-6)
        for conv in self.conv_d:
            out_c, in_c, kh, _ = conv.weight.shape
            nn.init.normal_(conv.weight, 0, (2.0 / (out_c * in_c * kh * len(self.conv_d))) ** 0.5)
            nn.init.zeros_(conv.bias)
        for layer in (self.conv_ta, self.fc2c):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.xavier_normal_(self.conv_sa.weight)
        nn.init.zeros_(self.conv_sa.bias)
        nn.init.kaiming_normal_(self.fc1c.weight)
        nn.init.zeros_(self.fc1c.bias)

    def _graph_conv(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, T, V) -> (N, C_out, T, V): the sum over subsets of the adaptive graph convs."""
        t = x.shape[2]
        y = 0
        for k, conv_d in enumerate(self.conv_d):
            a, b = self.conv_a[k](x), self.conv_b[k](x)  # (N, C_e, T, V) each
            similarity = torch.einsum("nctu,nctv->nuv", a, b) / (a.shape[1] * t)  # (N, V, V)
            graph = self.A[k] + torch.tanh(similarity) * self.alpha  # (N, V, V)
            y = y + conv_d(torch.einsum("nctu,nuv->nctv", x, graph))
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self._graph_conv(x)) + self.down(x))  # (N, C_out, T, V)
        spatial = torch.sigmoid(self.conv_sa(y.mean(dim=2)))  # (N, 1, V)
        y = y * spatial.unsqueeze(-2) + y
        temporal = torch.sigmoid(self.conv_ta(y.mean(dim=3)))  # (N, 1, T)
        y = y * temporal.unsqueeze(-1) + y
        channel = torch.sigmoid(self.fc2c(torch.relu(self.fc1c(y.mean(dim=(2, 3))))))  # (N, C_out)
        return y * channel[..., None, None] + y


class AAGCNBlock(nn.Module):
    """pyskl's `AAGCNBlock`: UnitAAGCN (`gcn`) -> 9x1 temporal conv (`tcn`), + residual, ReLU.

    (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).
    """

    def __init__(
        self, in_channels: int, out_channels: int, A: torch.Tensor, stride: int = 1, residual: bool = True
    ) -> None:
        super().__init__()
        self.gcn = UnitAAGCN(in_channels, out_channels, A)
        self.tcn = UnitTCN(out_channels, out_channels, 9, stride=stride)
        self.relu = nn.ReLU()
        self.residual = residual_branch(in_channels, out_channels, stride, residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.residual(x) if self.residual is not None else 0
        return self.relu(self.tcn(self.gcn(x)) + res)


class AAGCN(nn.Module):
    """pyskl's `AAGCN` backbone: input BatchNorm ('MVC' by default), then `num_stages` AAGCNBlocks (`gcn`).

    A: the (K, V, V) graph (models/gcn_graph.py), kept as the buffer `A` and copied into every block's learnt
    graph. data_bn_type: 'MVC' (per person: inputs need M = num_person), 'VC' or None. base_channels,
    inflate_stages, down_stages: as in models/gcn.stage_plan. (N, M, T, V, C) -> (N, M, C', T', V).
    """

    def __init__(
        self,
        A: torch.Tensor,
        in_channels: int = 3,
        base_channels: int = 64,
        data_bn_type: str | None = "MVC",
        num_person: int = 2,
        num_stages: int = 10,
        inflate_stages: Sequence[int] = (5, 8),
        down_stages: Sequence[int] = (5, 8),
    ) -> None:
        super().__init__()
        self.register_buffer("A", A.clone())
        self.data_bn_type = data_bn_type
        self.data_bn = data_bn(in_channels, A.shape[1], num_person, data_bn_type)
        # pyskl leaves stage 1 out when it would map base_channels to itself
        first = in_channels != base_channels
        plan = stage_plan(in_channels, base_channels, num_stages, inflate_stages, down_stages, first_stage=first)
        self.gcn = nn.ModuleList(AAGCNBlock(i, o, A, s, r) for i, o, s, r in plan)
        self.out_channels = plan[-1][1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = x.shape[:2]
        x = normalize_input(x, self.data_bn, per_person=self.data_bn_type == "MVC")  # (N*M, C, T, V)
        for block in self.gcn:
            x = block(x)
        return x.reshape((n, m) + x.shape[1:])  # (N, M, C', T', V)


@register_model("aagcn", reads="joints", clip_len=100, optimizer="sgd", joints_prep="gcn")
def aagcn(
    num_classes: int = 60,
    dropout: float = 0.0,
    num_joints: int = 25,
    layout: LayoutArg = "ntu25",
    in_channels: int = 3,
    base_channels: int = 64,
    num_person: int = 2,
    data_bn_type: str | None = "MVC",
) -> GCNRecognizer:
    """AAGCN as pyskl's `aagcn_pyskl_ntu60_xsub_*` configs: the 'spatial' graph of `layout` (a built-in name
    or a declared layout dict), 'MVC' data_bn over `num_person` persons. dropout: the head's. num_joints must
    be the layout's joint count. 3.8 M parameters at the defaults.
    Input (N, num_person, T, V, C) -> logits (N, num_classes)."""
    net = AAGCN(resolve_graph(layout, num_joints, "spatial"), in_channels, base_channels, data_bn_type, num_person)
    return GCNRecognizer(net, net.out_channels, num_classes, dropout)
