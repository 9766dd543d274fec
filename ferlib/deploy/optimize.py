"""A faster copy of a model for CPU inference in eager PyTorch: ``ferlib predict`` uses it.

:func:`optimize_for_inference` folds batch norm into the convolution before it
(:func:`fold_batch_norm`) and gives convolution weights the channels-last layout (oneDNN's fast
path), then checks the copy against the original; ``method="jit"`` traces and freezes a
TorchScript graph instead (:class:`TracedModel`). On the CPU,
:func:`ferlib.deploy.predictor.load_predictor` classifies with the eager copy when it agrees
with the model. What a model costs is measured in :mod:`ferlib.efficiency`.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from ferlib.efficiency import default_input_shape, model_device
from ferlib.errors import ConfigError

METHODS = ("eager", "jit")

_FOLDABLE = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d}


def fold_batch_norm(model: nn.Module) -> int:
    """Fold, in place, every batch norm that directly follows a convolution in an ``nn.Sequential``
    into that convolution's weight and bias (the batch norm becomes ``nn.Identity``); returns
    how many were folded.

    For inference only: the folded convolution computes what convolution + batch norm compute
    in eval mode (with the running statistics), to float rounding. Pairs outside an
    ``nn.Sequential`` (a ResNet block's ``conv1``/``bn1``) are left alone: their order of use
    is not known from the module tree.

    Examples
    --------
    >>> block = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    >>> fold_batch_norm(block), type(block[1]).__name__
    (1, 'Identity')
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for module in list(model.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for conv_name, bn_name in zip(names[:-1], names[1:], strict=True):
            conv, bn = module._modules[conv_name], module._modules[bn_name]
            norm = _FOLDABLE.get(type(conv))
            if norm is None or type(bn) is not norm or bn.running_mean is None or bn.num_features != conv.out_channels:
                continue
            module._modules[conv_name] = fuse_conv_bn_eval(conv.eval(), bn.eval())
            module._modules[bn_name] = nn.Identity()
            folded += 1
    return folded


def _channels_last_weights(model: nn.Module) -> int:
    """Give every ``nn.Conv2d`` a channels-last weight (``.to``, which restrides even a one-channel
    weight, where ``.contiguous`` would not); a convolution then runs channels-last whatever the
    layout of its input, and so do the layers after it. Returns the number of convolutions."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.weight.data = module.weight.data.to(memory_format=torch.channels_last)
            count += 1
    return count


class TracedModel(nn.Module):
    """A frozen TorchScript graph (:func:`optimize_for_inference` with ``method="jit"``) that
    still looks like a ferlib model: ``ferlib_name``, ``in_channels``... and a ``train``/``eval``
    that do not reach into the frozen graph."""

    def __init__(self, graph, like: nn.Module):
        super().__init__()
        object.__setattr__(self, "graph", graph)  # not a submodule: frozen graphs have no train()
        for name in ("ferlib_name", "ferlib_kind", "ferlib_config", "kind", "in_channels", "num_classes"):
            if hasattr(like, name):
                setattr(self, name, getattr(like, name))
        self.train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)

    def train(self, mode: bool = True) -> TracedModel:
        self.training = bool(mode)
        return self


def optimize_for_inference(
    model: nn.Module,
    example: torch.Tensor | None = None,
    *,
    method: str = "eager",
    check: bool = True,
    atol: float = 1e-4,
) -> nn.Module:
    """A copy of ``model`` in eval mode that runs faster on the CPU; ``model`` is not changed.

    ``method="eager"`` (default): batch norm folded into the convolution before it
    (:func:`fold_batch_norm`) and convolution weights in channels-last layout, so that oneDNN
    takes its fast path. The copy is the same Python module (same class, attributes, input
    checks) and takes inputs of any size. cnn_small at 48x48 on a 2-core CPU ran 2-2.7 times as
    fast at batch 64 and 256 and took about 30% less time at batch 1
    (``benchmarks/inference_speed.py``).

    ``method="jit"``: ``torch.jit.trace`` on ``example``, ``torch.jit.freeze`` and
    ``torch.jit.optimize_for_inference`` (oneDNN tensors, convolution + ReLU fused), wrapped in
    a :class:`TracedModel`. Faster still for CNNs, but the graph is the one traced on
    ``example``: branches taken on Python values (input checks, ``lengths`` of video models)
    are frozen, and torch 2.9+ deprecates TorchScript. Opt-in, for fixed deployments.

    ``example``: an input batch, used for the check (and the trace); default a random batch of
    the model's default input (48x48, ``in_channels``, 4 frames for video models). ``check``
    compares the copy with ``model`` on ``example`` (and, for ``"jit"``, on a batch of another
    size) and raises ``ValueError`` if a logit differs by more than ``atol`` or a predicted
    class changes.

    Examples
    --------
    >>> from ferlib.models import create_model
    >>> fast = optimize_for_inference(create_model("cnn_small"))
    >>> fast(torch.zeros(2, 1, 48, 48)).shape
    torch.Size([2, 7])
    """
    if method not in METHODS:
        raise ConfigError.unknown("method", method, METHODS)
    if example is None:
        kind = getattr(model, "ferlib_kind", None) or getattr(model, "kind", "static")
        shape = default_input_shape(kind, channels=getattr(model, "in_channels", 1), frames=4)
        example = torch.rand(4, *shape, generator=torch.Generator().manual_seed(0))
    device = model_device(model)
    example = example.to(device)
    fast = copy.deepcopy(model).eval()
    for parameter in fast.parameters():
        parameter.requires_grad_(False)
    if method == "eager":
        fold_batch_norm(fast)
        _channels_last_weights(fast)
    else:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's deprecation and tracer warnings
            graph = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(fast, example)))
        fast = TracedModel(graph, model)
    if check:
        probes = [example]
        if method == "jit":
            probes.append(torch.cat([example, example[:1]]))  # another batch size than the trace's
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for probe in probes:
                    expected = model(probe).float()
                    try:
                        got = fast(probe).float()
                    except RuntimeError as error:  # e.g. a traced shape that does not follow the batch
                        raise ValueError(
                            f"optimize_for_inference(method={method!r}): the optimised model fails on a batch "
                            f"of {len(probe)}: {str(error).strip().splitlines()[-1][:200]}"
                        ) from error
                    difference = float((expected - got).abs().max())
                    if not difference <= atol or not torch.equal(expected.argmax(1), got.argmax(1)):
                        raise ValueError(
                            f"optimize_for_inference(method={method!r}) changed the output by {difference:.3g} "
                            f"(atol {atol:g}) on a batch of {len(probe)}: use the model as it is"
                        )
        finally:
            model.train(was_training)
    return fast
