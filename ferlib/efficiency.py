"""What a model costs: parameters and FLOPs.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which counts a
multiply-add as **2 FLOPs** (a ``Linear(in, out)`` costs ``2 * in * out`` per sample). Papers
often quote multiply-accumulates (MACs, "FLOPs" in many tables): divide by 2 to compare.
Only matrix products and convolutions are counted, not activations, normalisation or
additions. The fused LSTM/GRU kernels are invisible to the counter on some backends; their
matrix products are then added analytically, so recurrent models are counted too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

_GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``model`` (only those with ``requires_grad`` if ``trainable_only``).

    Examples
    --------
    >>> count_parameters(nn.Linear(10, 5))
    55
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _recurrent_flops(module: nn.RNNBase, steps: int, batch: int) -> int:
    """Matrix-product FLOPs of one pass of an LSTM/GRU/RNN over ``steps`` time steps."""
    gates = next(count for kind, count in _GATES.items() if isinstance(module, kind))
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    output = module.proj_size or hidden
    flops = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else output * directions
        per_step = 2 * gates * hidden * (inputs + output)
        if module.proj_size:
            per_step += 2 * hidden * module.proj_size
        flops += directions * steps * per_step
    return batch * flops


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass of ``model`` on one sample (batch 1), multiply-add = 2.

    Parameters
    ----------
    model : any module; it is run in eval mode without gradients, then put back.
    input_shape : the shape of one sample, without the batch dimension, e.g. ``(1, 48, 48)``.

    Examples
    --------
    >>> count_flops(nn.Linear(10, 5), (10,))
    100
    """
    parameter = next(model.parameters(), None)
    x = torch.zeros(1, *input_shape, device=parameter.device if parameter is not None else None)
    extra = 0
    counter = FlopCounterMode(display=False)

    def before(module, args):
        module._ferlib_flops_before = counter.get_total_flops()

    def after(module, args, output):
        nonlocal extra
        if counter.get_total_flops() == module._ferlib_flops_before:  # the fused kernel was not counted
            sequence = args[0]
            if isinstance(sequence, nn.utils.rnn.PackedSequence):
                steps, batch = len(sequence.batch_sizes), int(sequence.batch_sizes[0])
            else:
                steps_axis = 1 if module.batch_first else 0
                steps = sequence.shape[steps_axis] if sequence.dim() == 3 else sequence.shape[0]
                batch = sequence.shape[1 - steps_axis] if sequence.dim() == 3 else 1
            extra += _recurrent_flops(module, steps, batch)
        del module._ferlib_flops_before

    handles = []
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return int(counter.get_total_flops() + extra)
