"""Changes to a built network that keep its catalogue: batch norms folded into their convolutions (the
same function, faster) and max poolings swapped for rescaled average poolings (smoother style transfer)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fold_batchnorm", "POOLINGS", "ScaledAvgPool2d", "average_pooling"]


def fold_batchnorm(module: nn.Module) -> int:
    """Fold each eval-mode ``BatchNorm2d`` into the convolution that feeds it, in place; returns how many.

    ``bn(conv(x))`` becomes one convolution with scaled weights and a bias: the same function (to
    float rounding, about 1e-6 relative) without a memory-bound pass forward and backward.

    Convention: a pair is a ``Conv2d`` and a ``BatchNorm2d`` that are consecutive in an
    ``nn.Sequential``, or siblings named ``conv``/``bn`` or ``convN``/``bnN``, as in torchvision's
    GoogLeNet, Inception v3 and ResNet blocks, whose forward applies them in that order.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for parent in list(module.modules()):
        names = list(dict(parent.named_children()))
        if isinstance(parent, nn.Sequential):
            pairs = list(zip(names, names[1:]))
        else:
            pairs = [(name, "bn" + name.removeprefix("conv")) for name in names if name.startswith("conv")]
        for conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not bn.training:
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


POOLINGS = ("max", "avg")


class ScaledAvgPool2d(nn.AvgPool2d):
    """Average pooling times ``scale``: stands in for a max pooling without shrinking what follows.

    The average of a window of ReLU outputs is smaller than its maximum; for VGG's 2x2 windows a
    factor of 2 (crowsonkb's style-transfer-pytorch, chosen there with the trained ImageNet weights)
    brings the activations after each pooling back to about the magnitude the next layers were
    trained on. Not re-measured here: no trained VGG weights can be downloaded on our test machines.
    """

    def __init__(self, pool: nn.MaxPool2d, scale: float = 2.0) -> None:
        super().__init__(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode, count_include_pad=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


def average_pooling(module: nn.Module) -> int:
    """Replace every ``MaxPool2d`` in ``module`` by a rescaled average pooling, in place; returns how many.

    Gatys et al. found average pooling gives smoother style transfers; the gradient reaches every
    pixel of each window instead of one.
    """
    replaced = 0
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d) and child.dilation in (1, (1, 1)):
                setattr(parent, name, ScaledAvgPool2d(child))
                replaced += 1
    return replaced
