"""The interface every backbone offers the engine (STYLE: one interface, so the training loop never branches on
a backbone): a `backbone` module and a `cls_head` with `pool`, `fc_cls`, `num_classes` and `init_weights`, as
pyskl's recognizers hold them (`backbone.*`, `cls_head.fc_cls.*` in the state dict)."""

from __future__ import annotations

import torch
from torch import nn


class Recognizer(nn.Module):
    """A backbone and a classification head. Subclasses set `backbone`, `cls_head` and `num_features` (the
    channels the head reads) in their constructor; the input's shape is the backbone's."""

    backbone: nn.Module
    cls_head: nn.Module
    num_features: int

    @property
    def num_classes(self) -> int:
        return self.cls_head.num_classes

    def extract_feat(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> the backbone's feature map, before the head's pooling."""
        return self.backbone(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> pooled features (N, num_features), before dropout and the classifier."""
        return self.cls_head.pool(self.extract_feat(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> logits (N, num_classes)."""
        return self.cls_head(self.extract_feat(x))

    def get_classifier(self) -> nn.Linear:
        return self.cls_head.fc_cls

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The optimiser groups: the backbone and the classification head."""
        return {"backbone": list(self.backbone.parameters()), "head": list(self.cls_head.parameters())}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace `fc_cls` by a freshly initialised one with `num_classes` outputs (e.g. to fine-tune)."""
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        old = self.cls_head.fc_cls
        self.cls_head.fc_cls = nn.Linear(
            self.num_features, num_classes, device=old.weight.device, dtype=old.weight.dtype
        )
        self.cls_head.num_classes = num_classes
        self.cls_head.init_weights()
