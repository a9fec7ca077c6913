"""MotionBERT's DSTformer backbone and its action-recognition network (ActionNet, `class` head).

A reimplementation of `lib/model/DSTformer.py` and `lib/model/model_action.py` of Walter0807/MotionBERT
(commit dccfe7b) with the same parameter names and shapes, so that upstream checkpoints load strictly:
- `train_action.py` checkpoints: `ckpt['model']`, keys `module.backbone.*` / `module.head.*` -> ActionNet;
- `train.py` pretrained backbones: `ckpt['model_pos']`, keys `module.*` -> DSTformer.
Strip the `module.` prefix before `load_state_dict`.

Input layout: (N, M, T, J, C) = (clips, persons, frames, joints, channels); C = 3 is (x, y, score) with x, y
normalised to about [-1, 1] (MotionBERT's `crop_scale`) and J = 17 joints in H36M order.

Outputs match MotionBERT's to float32 rounding (golden tests: atol 1e-5 on logits and representations).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import register_model

__all__ = ["DSTformer", "ActionHeadClassification", "ActionNet", "motionbert"]


def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole rows of `x` (dim 0) with probability `p`, rescale the rest by 1/(1-p).

    In DSTformer dim 0 is batch*frames (or batch for the 4-D tensors), so each frame of each clip drops
    a residual branch independently, as upstream's timm-style DropPath does on (B*F, J, C) tensors.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device) < keep
    return x * mask / keep


class DropPath(nn.Module):
    """Module wrapper of `_drop_path` (no parameters)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout (the same dropout rate twice, as upstream)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention over the joints of a frame (`spatial`) or the frames of a joint (`temporal`).

    Tokens arrive as (B*T, J, C) in both modes; the temporal mode regroups them by joint internally.
    Scaling is the standard 1/sqrt(head_dim) (upstream's `qk_scale=None`), so
    `F.scaled_dot_product_attention` reproduces upstream's explicit softmax(q k^T * scale) v.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mode: str,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if mode not in ("spatial", "temporal"):
            raise ValueError(f"attention mode must be 'spatial' or 'temporal', got {mode!r}")
        if dim % num_heads:
            raise ValueError(f"dim_feat={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.mode = mode
        self.attn_drop = attn_drop
        # Registration order (proj before qkv) follows upstream so the state-dict order matches too.
        self.proj = nn.Linear(dim, dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, seqlen: int) -> torch.Tensor:
        """x: (B*T, J, C) tokens with T = `seqlen` -> (B*T, J, C)."""
        bt, j, c = x.shape
        h = self.num_heads
        d = c // h
        qkv = self.qkv(x).reshape(bt, j, 3, h, d).permute(2, 0, 3, 1, 4)  # (3, B*T, H, J, d)
        q, k, v = qkv.unbind(0)
        drop = self.attn_drop if self.training else 0.0
        if self.mode == "spatial":
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)  # (B*T, H, J, d)
            out = out.transpose(1, 2).reshape(bt, j, c)  # (B*T, J, H*d)
        else:
            b = bt // seqlen

            def by_joint(t: torch.Tensor) -> torch.Tensor:
                # (B*T, H, J, d) -> (B, T, H, J, d) -> (B, H, J, T, d) -> (B, H*J, T, d): attend over T
                return t.reshape(b, seqlen, h, j, d).permute(0, 2, 3, 1, 4).reshape(b, h * j, seqlen, d)

            out = F.scaled_dot_product_attention(by_joint(q), by_joint(k), by_joint(v), dropout_p=drop)
            out = out.reshape(b, h, j, seqlen, d).permute(0, 3, 2, 1, 4).reshape(bt, j, c)  # (B*T, J, H*d)
        return self.proj_drop(self.proj(out))


class Block(nn.Module):
    """Pre-norm transformer block with a spatial and a temporal attention/MLP pair.

    `order='st'` (upstream `stage_st`) applies spatial attention + MLP, then temporal attention + MLP;
    `order='ts'` (upstream `stage_ts`) the reverse. One drop-path rate covers all four residual branches.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        order: str,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if order not in ("st", "ts"):
            raise ValueError(f"block order must be 'st' or 'ts', got {order!r}")
        self.order = order
        # Attribute order follows upstream (state-dict order: norm1_*, attn_*, norm2_*, mlp_*).
        self.norm1_s = nn.LayerNorm(dim, eps=1e-6)
        self.norm1_t = nn.LayerNorm(dim, eps=1e-6)
        self.attn_s = Attention(dim, num_heads, "spatial", qkv_bias, attn_drop, drop)
        self.attn_t = Attention(dim, num_heads, "temporal", qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2_s = nn.LayerNorm(dim, eps=1e-6)
        self.norm2_t = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_s = MLP(dim, int(dim * mlp_ratio), drop)
        self.mlp_t = MLP(dim, int(dim * mlp_ratio), drop)

    def _spatial(self, x: torch.Tensor, seqlen: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn_s(self.norm1_s(x), seqlen))
        return x + self.drop_path(self.mlp_s(self.norm2_s(x)))

    def _temporal(self, x: torch.Tensor, seqlen: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn_t(self.norm1_t(x), seqlen))
        return x + self.drop_path(self.mlp_t(self.norm2_t(x)))

    def forward(self, x: torch.Tensor, seqlen: int) -> torch.Tensor:
        """x: (B*T, J, C) with T = `seqlen` -> (B*T, J, C)."""
        if self.order == "st":
            return self._temporal(self._spatial(x, seqlen), seqlen)
        return self._spatial(self._temporal(x, seqlen), seqlen)


class DSTformer(nn.Module):
    """Dual-stream spatio-temporal transformer (MotionBERT's backbone).

    Each joint of each frame is a token: Linear(dim_in, dim_feat) embedding plus a learned spatial (per joint)
    and temporal (per frame) position embedding. `depth` stages each run a spatial->temporal block
    (`blocks_st`) and a temporal->spatial block (`blocks_ts`) on the same input and fuse the two streams per
    token with softmax weights predicted by `ts_attn[i]` from the concatenated stream outputs. A final
    LayerNorm, `pre_logits` (Linear(dim_feat, dim_rep) + Tanh) gives the motion representation; `head`
    (Linear(dim_rep, dim_out)) is the 3-D pose regressor of pretraining, unused for action recognition but
    kept so that pretrained checkpoints load strictly.
    """

    def __init__(
        self,
        dim_in: int = 3,
        dim_out: int = 3,
        dim_feat: int = 256,
        dim_rep: int = 512,
        depth: int = 5,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        num_joints: int = 17,
        maxlen: int = 243,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim_rep = dim_rep
        self.num_joints = num_joints
        self.maxlen = maxlen
        self.joints_embed = nn.Linear(dim_in, dim_feat)
        self.pos_drop = nn.Dropout(drop_rate)
        # Stochastic depth grows linearly from 0 (first stage) to drop_path_rate (last stage).
        # (Plain Python rather than torch.linspace so the model can be built on the meta device.)
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        blocks = {
            order: nn.ModuleList(
                Block(dim_feat, num_heads, mlp_ratio, order, qkv_bias, drop_rate, attn_drop_rate, dpr[i])
                for i in range(depth)
            )
            for order in ("st", "ts")
        }
        self.blocks_st = blocks["st"]
        self.blocks_ts = blocks["ts"]
        self.norm = nn.LayerNorm(dim_feat, eps=1e-6)
        self.pre_logits = nn.Sequential()
        self.pre_logits.add_module("fc", nn.Linear(dim_feat, dim_rep))
        self.pre_logits.add_module("act", nn.Tanh())
        self.head = nn.Linear(dim_rep, dim_out)
        self.temp_embed = nn.Parameter(torch.zeros(1, maxlen, 1, dim_feat))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, dim_feat))
        nn.init.trunc_normal_(self.temp_embed, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)
        # Created after `apply`, as upstream: the fusion starts as an equal 0.5/0.5 mix of both streams.
        self.ts_attn = nn.ModuleList(nn.Linear(2 * dim_feat, 2) for _ in range(depth))
        for fuse in self.ts_attn:
            nn.init.zeros_(fuse.weight)
            nn.init.constant_(fuse.bias, 0.5)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def get_representation(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, J, dim_in) with T <= maxlen -> motion representation (B, T, J, dim_rep), in (-1, 1)."""
        b, t, j, c = x.shape
        if t > self.maxlen:
            raise ValueError(
                f"clip has {t} frames, but the temporal embedding covers at most maxlen={self.maxlen}; "
                f"resample clips to at most {self.maxlen} frames (--clip_len)"
            )
        if j != self.num_joints:
            raise ValueError(f"expected {self.num_joints} joints, got {j}")
        x = self.joints_embed(x) + self.pos_embed[:, None]  # (B, T, J, D)
        # Shorter clips use the first t temporal embeddings, as upstream.
        x = x + self.temp_embed[:, :t]
        x = self.pos_drop(x.reshape(b * t, j, -1))  # (B*T, J, D)
        for blk_st, blk_ts, fuse in zip(self.blocks_st, self.blocks_ts, self.ts_attn, strict=True):
            x_st = blk_st(x, t)
            x_ts = blk_ts(x, t)
            alpha = fuse(torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)  # (B*T, J, 2)
            x = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
        x = self.norm(x).reshape(b, t, j, -1)  # (B, T, J, D)
        return self.pre_logits(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, J, dim_in) -> 3-D pose head output (B, T, J, dim_out)."""
        return self.head(self.get_representation(x))


class ActionHeadClassification(nn.Module):
    """MotionBERT's `class` action head: pool the representation over frames and persons, then an MLP.

    dropout -> mean over T -> flatten joints (J*dim_rep) -> mean over persons -> fc1 -> BatchNorm1d -> ReLU
    -> fc2. Dropout acts on the unpooled representation, as upstream.
    """

    def __init__(
        self,
        dropout_ratio: float = 0.0,
        dim_rep: int = 512,
        num_classes: int = 60,
        num_joints: int = 17,
        hidden_dim: int = 2048,
    ) -> None:
        super().__init__()
        # Attribute order follows upstream (state-dict order: bn, fc1, fc2).
        self.dropout = nn.Dropout(dropout_ratio)
        self.bn = nn.BatchNorm1d(hidden_dim, momentum=0.1)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(dim_rep * num_joints, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, num_classes)

    def pool(self, feat: torch.Tensor) -> torch.Tensor:
        """feat: (N, M, T, J, C) representation -> (N, J*C) pooled feature."""
        n, m, _, _, _ = feat.shape
        feat = self.dropout(feat).mean(dim=2)  # (N, M, J, C)
        return feat.reshape(n, m, -1).mean(dim=1)  # (N, J*C)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled: (N, J*C) -> logits (N, num_classes)."""
        return self.fc2(self.relu(self.bn(self.fc1(pooled))))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """feat: (N, M, T, J, C) -> logits (N, num_classes)."""
        return self.classify(self.pool(feat))


class ActionNet(nn.Module):
    """DSTformer backbone + classification head: skeleton clips (N, M, T, J, 3) -> logits (N, num_classes).

    `hidden_dim` is the width of the head's hidden layer. Upstream quirk: MotionBERT's `ActionNet` with
    `version='class'` does not pass its `hidden_dim` to the head, which always uses 2048, and the released
    NTU checkpoints have that 2048-wide head; keep the default 2048 to load them (or to reproduce a model
    built upstream with any `hidden_dim`).
    """

    def __init__(
        self,
        backbone: DSTformer,
        dim_rep: int = 512,
        num_classes: int = 60,
        dropout_ratio: float = 0.0,
        hidden_dim: int = 2048,
        num_joints: int = 17,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.num_joints = num_joints
        self.head = ActionHeadClassification(dropout_ratio, dim_rep, num_classes, num_joints, hidden_dim)

    def _representation(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected input (N, M, T, J, C), got shape {tuple(x.shape)}")
        n, m, t, j, c = x.shape
        rep = self.backbone.get_representation(x.reshape(n * m, t, j, c))  # (N*M, T, J, dim_rep)
        return rep.reshape(n, m, t, j, -1)  # (N, M, T, J, dim_rep)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, M, T, J, 3) -> pooled features (N, J*dim_rep): the head's input to fc1.

        Includes the head's dropout (active in train mode only), so
        `forward(x) == head.classify(forward_features(x))` in both modes.
        """
        return self.head.pool(self._representation(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, M, T, J, 3) float (x, y normalised, score), T <= maxlen -> logits (N, num_classes)."""
        return self.head.classify(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        """The last layer (fc2: hidden_dim -> num_classes)."""
        return self.head.fc2

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The optimiser groups: the DSTformer (with its unused pretraining pose head) and the action head."""
        return {"backbone": list(self.backbone.parameters()), "head": list(self.head.parameters())}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace fc2 by a freshly initialised Linear(hidden_dim, num_classes) on the same device/dtype."""
        old = self.head.fc2
        self.head.fc2 = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
        self.num_classes = num_classes


@register_model(
    "motionbert", reads="joints", clip_len=243, max_clip_len_arg="maxlen", optimizer="adamw", unused_parameters=True
)
def motionbert(
    dim_in: int = 3,
    dim_out: int = 3,
    dim_feat: int = 512,
    dim_rep: int = 512,
    depth: int = 5,
    num_heads: int = 8,
    mlp_ratio: float = 2,
    maxlen: int = 243,
    num_joints: int = 17,
    num_classes: int = 60,
    dropout: float = 0.5,
    hidden_dim: int = 2048,
    drop_path_rate: float = 0.0,
    dropout_ratio: float | None = None,
) -> ActionNet:
    """MotionBERT action recogniser; argument names as upstream, defaults = `MB_train_NTU60_xsub.yaml`.

    `dropout` is the head's dropout (upstream's `dropout_ratio`, still accepted under that name: it wins
    when given, as in run configurations written before the core keywords were shared).

    Returns an `ActionNet` whose state dict matches `train_action.py` checkpoints (after stripping `module.`).
    """
    backbone = DSTformer(
        dim_in=dim_in,
        dim_out=dim_out,
        dim_feat=dim_feat,
        dim_rep=dim_rep,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        num_joints=num_joints,
        maxlen=maxlen,
        drop_path_rate=drop_path_rate,
    )
    dropout = dropout if dropout_ratio is None else dropout_ratio
    return ActionNet(backbone, dim_rep, num_classes, dropout, hidden_dim, num_joints)
