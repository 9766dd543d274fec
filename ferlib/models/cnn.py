"""Convolutional networks for static expressions.

Every model here takes ``[B, C, H, W]`` images of any size and channel count and returns
logits ``[B, num_classes]``. Each one names two of its submodules for the rest of ferlib:
``head_name`` (the classifier, replaced or kept apart in transfer learning, see
:mod:`ferlib.models.pretrained`) and ``cam_layer`` (the last convolutional block, the default
layer of :func:`ferlib.explain.grad_cam`). They are names, not modules, so that the module is
not registered twice in the state dict; resolve them with ``model.get_submodule(name)``.

Models
------
``cnn_small``      three conv blocks, the fast baseline.
``vgg_fer``        VGG-style (Simonyan and Zisserman, 2015): four double-conv blocks with batch norm.
``resnet18_fer``   torchvision's ResNet-18 (He et al., 2016) with a 3x3 stride-1 stem and no
                   early max-pool, so that a 48x48 face keeps enough resolution.
``cnn_cbam``       a small CNN with CBAM channel and spatial attention (Woo et al., 2018).
``cnn_multitask``  an expression head beside a facial-landmark regression head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ferlib.models.base import FERModel
from ferlib.models.registry import register_model


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def double_conv_stages(in_channels: int, widths: Sequence[int]) -> list[nn.Sequential]:
    """VGG-style stages of two conv blocks each, max-pooling at the start of every stage but the
    first, so that the last stage's output (the Grad-CAM layer) keeps 6x6 at 48x48 input."""
    stages, channels = [], in_channels
    for width in widths:
        pool = [nn.MaxPool2d(2)] if stages else []
        stages.append(nn.Sequential(*pool, conv_block(channels, width), conv_block(width, width)))
        channels = width
    return stages


@register_model("cnn_small", kind="static", description="Small CNN: three conv blocks, the fast baseline.")
class SmallCNN(FERModel):
    """Three conv blocks with max-pooling, global average pooling and a linear head."""

    head_name = "head"
    cam_layer = "features.4"

    def __init__(self, in_channels: int = 1, num_classes: int = 7, width: int = 32, dropout: float = 0.2):
        super().__init__(in_channels, num_classes)
        self.features = nn.Sequential(
            conv_block(in_channels, width),
            nn.MaxPool2d(2),
            conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            conv_block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.head(self.features(x))


# --------------------------------------------------------------------------------------------
# VGG-style


@register_model(
    "vgg_fer",
    kind="static",
    description="VGG-style CNN: four double-conv blocks with batch norm and a dropout head.",
)
class VGGFER(FERModel):
    """VGG-style network for small faces: four blocks of two 3x3 convs (BN, ReLU), each
    followed by 2x2 max-pooling, then global average pooling and a two-layer dropout head.

    With the default widths (32, 64, 128, 256) it has about 1.2M parameters. Global average
    pooling instead of VGG's flattening keeps the head independent of the input size.
    """

    head_name = "head"
    cam_layer = "features.3"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 7,
        widths: Sequence[int] = (32, 64, 128, 256),
        dropout: float = 0.5,
    ):
        super().__init__(in_channels, num_classes)
        self.features = nn.Sequential(*double_conv_stages(in_channels, widths))
        channels = widths[-1]
        self.pool = nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(channels, channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(channels, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.head(self.pool(self.features(x)))


# --------------------------------------------------------------------------------------------
# ResNet-18


@register_model(
    "resnet18_fer",
    kind="static",
    description="ResNet-18 with a 3x3 stride-1 stem and no early max-pool, for small faces.",
)
class ResNet18FER(FERModel):
    """torchvision's ResNet-18 adapted to small inputs.

    The 7x7 stride-2 stem and the max-pool after it divide a 224x224 image by 4 before the
    first residual stage; on a 48x48 face that would leave 12x12. Here the stem is a 3x3
    stride-1 conv and the max-pool is dropped, so the stages see 48, 24, 12 and 6 pixels.

    The submodules keep torchvision's names (``conv1``, ``bn1``, ``layer1`` .. ``layer4``,
    ``fc``), so an ImageNet state dict loads by name (:func:`ferlib.models.pretrained.load_pretrained`
    adapts or skips the stem and skips the 1000-class ``fc``).
    """

    head_name = "fc"
    stem_name = "conv1"
    cam_layer = "layer4"

    def __init__(self, in_channels: int = 1, num_classes: int = 7, dropout: float = 0.0):
        super().__init__(in_channels, num_classes)
        # weights=None: never download; pretrained weights come from a local file.
        net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.bn1 = net.bn1
        self.relu = net.relu
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.avgpool = net.avgpool
        self.dropout = nn.Dropout(dropout)
        self.fc = net.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


# --------------------------------------------------------------------------------------------
# CBAM


class ChannelAttention(nn.Module):
    """CBAM's channel attention: a shared MLP over average- and max-pooled descriptors."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Weights ``[B, C, 1, 1]`` in (0, 1)."""
        return torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))


class SpatialAttention(nn.Module):
    """CBAM's spatial attention: a 7x7 conv over the channel-wise mean and max."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Weights ``[B, 1, H, W]`` in (0, 1)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel attention, then spatial attention."""

    def __init__(self, channels: int, reduction: int = 8, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The refined features and both attention weights ``(x', [B, C], [B, H, W])``."""
        channel_weights = self.channel(x)
        x = x * channel_weights
        spatial_weights = self.spatial(x)
        return x * spatial_weights, channel_weights.flatten(1), spatial_weights.squeeze(1)


@register_model("cnn_cbam", kind="static", description="CNN with CBAM channel and spatial attention after each stage.")
class CBAMCNN(FERModel):
    """Three conv stages (two conv blocks each), each refined by a CBAM module.

    ``forward(x)`` gives logits; ``forward(x, return_aux=True)`` gives ``(logits, aux)`` where
    ``aux["spatial_attention"]`` and ``aux["channel_attention"]`` are lists with one tensor per
    stage (``[B, H_s, W_s]`` and ``[B, C_s]``, values in (0, 1)). :meth:`attention_maps` gives
    the last stage's spatial map for plotting.
    """

    head_name = "head"
    cam_layer = "stages.2"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 7,
        widths: Sequence[int] = (32, 64, 128),
        reduction: int = 8,
        dropout: float = 0.3,
    ):
        super().__init__(in_channels, num_classes)
        self.stages = nn.ModuleList(double_conv_stages(in_channels, widths))
        channels = widths[-1]
        self.attention = nn.ModuleList(CBAM(width, reduction) for width in widths)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        self.check_input(x)
        spatial, channel = [], []
        for stage, attention in zip(self.stages, self.attention, strict=True):
            x, channel_weights, spatial_weights = attention(stage(x))
            spatial.append(spatial_weights)
            channel.append(channel_weights)
        logits = self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        if return_aux:
            return logits, {"spatial_attention": spatial, "channel_attention": channel}
        return logits

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's spatial attention ``[B, H_s, W_s]`` (in (0, 1), not upsampled)."""
        _, aux = self.forward(x, return_aux=True)
        return aux["spatial_attention"][-1]


# --------------------------------------------------------------------------------------------
# Multi-task: expression + landmarks


@register_model(
    "cnn_multitask",
    kind="static",
    description="Multi-task CNN: expression logits plus facial-landmark regression (return_aux=True).",
)
class MultiTaskCNN(FERModel):
    """A shared CNN trunk with two heads: expression logits and ``num_landmarks`` (x, y) points.

    Landmarks are predicted in normalised image coordinates: ``(x / W, y / H)`` in [0, 1]
    (a sigmoid keeps them there), so they do not depend on the input size.

    ``forward(x)`` gives logits only, like every ferlib model; ``forward(x, return_aux=True)``
    gives ``(logits, {"landmarks": [B, K, 2]})``. Training code adds the landmark loss with
    :meth:`aux_loss`::

        logits, aux = model(x, return_aux=True)
        loss = F.cross_entropy(logits, y) + model.aux_loss(aux, metas)

    where ``metas`` is the batch's list of meta dicts (samples without ``"landmarks"`` are
    left out of the landmark loss) or a dict holding a ``"landmarks"`` tensor ``[B, K, 2]``.
    """

    head_name = "head"
    cam_layer = "features.3"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 7,
        num_landmarks: int = 5,
        widths: Sequence[int] = (32, 64, 128, 128),
        dropout: float = 0.3,
        landmark_weight: float = 1.0,
    ):
        super().__init__(in_channels, num_classes)
        if num_landmarks < 1:
            raise ValueError(f"num_landmarks must be >= 1, got {num_landmarks}")
        self.num_landmarks = num_landmarks
        self.landmark_weight = landmark_weight
        blocks = []
        channels = in_channels
        for width in widths:
            pool = [nn.MaxPool2d(2)] if blocks else []
            blocks.append(nn.Sequential(*pool, conv_block(channels, width)))
            channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        # Landmarks need to know where things are: pool to a small fixed grid, not to 1x1.
        self.landmark_head = nn.Sequential(
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Linear(channels * 9, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, 2 * num_landmarks),
        )

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        self.check_input(x)
        features = self.features(x)
        logits = self.head(self.pool(features))
        if return_aux:
            landmarks = torch.sigmoid(self.landmark_head(features)).view(-1, self.num_landmarks, 2)
            return logits, {"landmarks": landmarks}
        return logits

    def aux_loss(
        self,
        aux: Mapping[str, torch.Tensor],
        metas: Sequence[Mapping] | Mapping,
        image_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """``landmark_weight`` times the mean squared error of the landmarks.

        Parameters
        ----------
        aux : the dict from ``forward(x, return_aux=True)``.
        metas : a list of per-sample meta dicts, or a dict with a ``"landmarks"`` tensor.
            Targets are ``[K, 2]`` (x, y) in normalised coordinates, unless ``image_size``
            ``(H, W)`` is given, in which case they are pixels and are divided by (W, H).
            Samples without landmarks (missing key, ``None`` or NaN) do not count.

        Returns
        -------
        A scalar tensor; zero (still connected to the graph) when no sample has landmarks.
        """
        predicted = aux["landmarks"]
        targets, mask = _landmark_targets(metas, predicted)
        if image_size is not None:
            height, width = image_size
            targets = targets / targets.new_tensor([width, height])
        if not mask.any():
            return predicted.sum() * 0.0
        return self.landmark_weight * F.mse_loss(predicted[mask], targets[mask])


def _landmark_targets(metas, predicted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the targets into ``predicted``'s shape; a mask says which samples have them."""
    batch, points, _ = predicted.shape
    if isinstance(metas, Mapping):
        targets = torch.as_tensor(metas["landmarks"], dtype=predicted.dtype, device=predicted.device)
        targets = targets.reshape(batch, points, 2)
    else:
        if len(metas) != batch:
            raise ValueError(f"got {len(metas)} meta dicts for a batch of {batch}")
        targets = predicted.new_full((batch, points, 2), float("nan"))
        for i, meta in enumerate(metas):
            value = meta.get("landmarks") if meta is not None else None
            if value is not None:
                value = torch.as_tensor(value, dtype=predicted.dtype, device=predicted.device)
                if value.numel() != points * 2:
                    raise ValueError(f"sample {i} has landmarks of shape {list(value.shape)}, expected [{points}, 2]")
                targets[i] = value.reshape(points, 2)
    mask = ~torch.isnan(targets).flatten(1).any(dim=1)
    return torch.nan_to_num(targets), mask


def multitask_loss(
    outputs: tuple[torch.Tensor, Mapping[str, torch.Tensor]],
    y: torch.Tensor,
    landmarks: torch.Tensor,
    weight: float = 1.0,
) -> torch.Tensor:
    """Cross-entropy of the expression plus ``weight`` times the landmark MSE.

    ``outputs`` is ``model(x, return_aux=True)``; ``landmarks`` is ``[B, K, 2]`` in
    normalised coordinates.
    """
    logits, aux = outputs
    return F.cross_entropy(logits, y) + weight * F.mse_loss(aux["landmarks"], landmarks.to(aux["landmarks"]))
