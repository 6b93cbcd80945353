"""Default backbones (MLP for vectors, CNNs for grey and colour images) and the module factory hook."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


class Standardize(nn.Module):
    """Subtract a mean and divide by a scale, both fixed buffers learned at fit time.

    Keeps the user's data untouched (no standardized copy of ``X`` is made) while the
    networks see centred inputs.
    """

    def __init__(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("scale", scale.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class MLP(nn.Sequential):
    """Fully connected network: ``[Linear → BatchNorm → ReLU → Dropout] * len(hidden_dims) → Linear``."""

    def __init__(
        self, n_features: int, n_classes: int, hidden_dims: Sequence[int] = (256, 256), dropout: float = 0.0
    ) -> None:
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden_dims:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, n_classes))
        super().__init__(*layers)


class SmallCNN(nn.Sequential):
    """Two strided 3×3/4×4 convolutions with batch norm, then a dense head.

    Strided convolutions instead of pooling keep the network cheap on CPUs. Weights and
    activations are kept channels-last (NHWC), the layout oneDNN's convolutions and batch
    norm run fastest in on the CPU (``docs/benchmarks.md#implementation``).
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        n_classes: int,
        channels: int = 32,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        def out(size: int, k: int, s: int, p: int) -> int:
            return (size + 2 * p - k) // s + 1

        h = out(out(height, 4, 2, 1), 3, 2, 1)
        w = out(out(width, 4, 2, 1), 3, 2, 1)
        super().__init__(
            nn.Conv2d(in_channels, channels, 4, stride=2, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.Flatten(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(2 * channels * h * w, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last))


def conv_bn(c_in: int, c_out: int, *, pool: bool = False) -> nn.Sequential:
    """3×3 convolution (no bias) → batch norm → ReLU, then a 2×2 max-pool when ``pool``."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``x + body(x)``: two :func:`conv_bn` blocks of the same width with an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet(nn.Module):
    """Residual network for colour images: the nine-layer layout of the fast CIFAR-10 training recipes.

    A 3×3 stem of ``channels``, then three stages that double the width and halve the
    resolution (convolution → batch norm → ReLU → max-pool), the first and last followed by
    a residual block; a global max-pool, dropout and a linear head whose logits are scaled
    by 1/8 (the recipes' trick that keeps early training stable without a warm-up). Any
    image of at least 8×8 pixels works; the global pool makes the head independent of the
    size. Channels-last, as :class:`SmallCNN`. The recipes (Page's DAWNBench ResNet-9) use
    ``channels=64``; the CPU default is narrower (how it was chosen: ``docs/benchmarks.md#implementation``).
    """

    def __init__(self, in_channels: int, n_classes: int, channels: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        w = channels
        self.features = nn.Sequential(
            conv_bn(in_channels, w),
            conv_bn(w, 2 * w, pool=True),
            Residual(2 * w),
            conv_bn(2 * w, 4 * w, pool=True),
            conv_bn(4 * w, 8 * w, pool=True),
            Residual(8 * w),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout) if dropout > 0 else nn.Identity(), nn.Linear(8 * w, n_classes))
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.contiguous(memory_format=torch.channels_last))) * 0.125


#: Colour images (3 channels) at least this many pixels a side get :class:`ResNet`; others :class:`SmallCNN`.
RESNET_MIN_SIDE = 32


BACKBONES = ("auto", "mlp", "small_cnn", "resnet")


def backbone_name(input_shape: tuple[int, ...], backbone: str = "auto") -> str:
    """The default network for rows of ``input_shape``: ``"mlp"`` for vectors, else an image network.

    Colour images (3 channels) of at least ``RESNET_MIN_SIDE`` pixels a side (CIFAR-size and
    larger): ``"resnet"`` (:class:`ResNet`); smaller or grey images (digits): ``"small_cnn"``
    (:class:`SmallCNN`). Any other ``backbone`` is returned as given.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}.")
    if backbone != "auto":
        return backbone
    if len(input_shape) == 1:
        return "mlp"
    return "resnet" if input_shape[0] == 3 and min(input_shape[1:]) >= RESNET_MIN_SIDE else "small_cnn"


def image_backbone(
    input_shape: tuple[int, int, int], n_classes: int, *, backbone: str, width: float = 1.0, dropout: float = 0.0
) -> nn.Module:
    """An image network (``backbone`` ``"small_cnn"`` or ``"resnet"``) for images of ``input_shape`` ``(C, H, W)``."""
    c, h, w = input_shape
    if min(h, w) < (8 if backbone == "resnet" else 2):
        raise ValueError(
            f"images of {h}×{w} pixels are too small for the default CNN "
            f"(at least {8 if backbone == 'resnet' else 2} px a side); "
            "flatten them to 2-D rows with X.reshape(len(X), -1), or pass module= with your own network."
        )
    if backbone == "resnet":
        return ResNet(c, n_classes, channels=max(1, round(16 * width)), dropout=dropout)
    return SmallCNN(
        c, h, w, n_classes, channels=max(1, round(32 * width)), hidden=max(1, round(128 * width)), dropout=dropout
    )


ModuleFactory = Callable[[tuple[int, ...], int], nn.Module]


def build_network(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    mean: torch.Tensor,
    scale: torch.Tensor,
    module: ModuleFactory | None = None,
    hidden_dims: Sequence[int] = (256, 256),
    dropout: float = 0.0,
    width: float = 1.0,
    backbone: str = "auto",
) -> nn.Module:
    """Build one network: input standardization followed by the backbone.

    ``backbone`` (see :func:`backbone_name`) picks the default network; ``"auto"`` from the
    input shape.

    ``module`` (when given) is called as ``module(input_shape, n_classes)`` and must
    return a :class:`torch.nn.Module` mapping a float32 batch of shape
    ``(batch, *input_shape)`` to ``(batch, n_classes)`` logits.
    """
    if module is not None:
        body = module(tuple(input_shape), n_classes)
        if not isinstance(body, nn.Module):
            raise TypeError(
                f"module must return a torch.nn.Module, got {type(body).__name__}; "
                "pass a callable such as `lambda input_shape, n_classes: MyNet(...)`."
            )
    elif len(input_shape) == 1:
        dims = [max(1, round(h * width)) for h in hidden_dims]
        body = MLP(input_shape[0], n_classes, dims, dropout)
    else:
        name = backbone_name(tuple(input_shape), backbone)
        body = image_backbone(tuple(input_shape), n_classes, backbone=name, width=width, dropout=dropout)
    net = nn.Sequential(Standardize(mean, scale), body)
    if module is not None:
        check_output_shape(net, input_shape, n_classes)
    return net


def check_output_shape(net: nn.Module, input_shape: tuple[int, ...], n_outputs: int) -> None:
    """Run ``net`` once on two rows of zeros (eval mode, no gradients) and check it returns ``(2, n_outputs)``.

    Catches a ``module=`` factory that builds the wrong network before training starts,
    with an error in the user's terms instead of a shape error deep inside a loss.
    """
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros((2, *input_shape), dtype=torch.float32, device=net[0].mean.device))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's network is reported the same way
        raise ValueError(
            f"the network built by module= fails on a batch shaped (batch, *{tuple(input_shape)}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        net.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n_outputs):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the network built by module= returns {got} for a batch of 2 rows; it must return logits of "
            f"shape (batch, {n_outputs}): module(input_shape, n_outputs) receives n_outputs={n_outputs}."
        )
