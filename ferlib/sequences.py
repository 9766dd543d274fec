"""Toy sequences for the vanishing-gradient story: a task with one long-range dependency,
vanilla RNN / LSTM / GRU classifiers, and an instrumented training loop.

The task (after Bengio et al. 1994 and Hochreiter & Schmidhuber 1997): the label is written
in the *first* step of a sequence and every later step is noise, so a model must carry one bit
across the whole sequence. A vanilla RNN's gradient with respect to early hidden states shrinks
geometrically with the distance to the loss, so it stops learning once sequences get long;
the gates of LSTMs and GRUs give the gradient an additive path.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ferlib.errors import ConfigError

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_STEP_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def long_range_task(
    n: int, length: int, num_classes: int = 2, noise: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences ``[n, length, num_classes + 1]`` whose label is a one-hot code in step 0.

    Step 0 holds the one-hot label in the first ``num_classes`` features; every step holds
    Gaussian noise (standard deviation ``noise``) in the last feature, and steps after the
    first are zero elsewhere. Only a model that remembers step 0 until the end beats chance.

    Examples
    --------
    >>> x, y = long_range_task(4, 10, seed=0)
    >>> tuple(x.shape), bool((x[torch.arange(4), 0, y] == 1).all())
    ((4, 10, 3), True)
    """
    if n < 1 or length < 1 or num_classes < 2:
        raise ValueError(f"need n >= 1, length >= 1 and num_classes >= 2, got {n}, {length}, {num_classes}")
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (n,), generator=generator)
    x = torch.zeros(n, length, num_classes + 1)
    x[torch.arange(n), 0, y] = 1.0
    x[:, :, -1] = noise * torch.randn(n, length, generator=generator)
    return x, y


class SequenceClassifier(nn.Module):
    """A one-layer vanilla RNN (tanh), LSTM or GRU over ``[B, T, F]`` vectors, with a linear
    head on the last hidden state.

    ``gate_bias="default"`` keeps PyTorch's initialisation (every bias uniform around 0, so an
    LSTM's forget gate starts half closed); ``"chrono"`` is the chrono initialisation of Tallec &
    Ollivier (2018) for memories of up to ``max_length`` steps: the LSTM forget-gate bias (GRU:
    update-gate bias) is ``log(u)``, ``u ~ U(1, max_length - 1)``, and the LSTM input-gate bias
    its negative, so that each unit starts out remembering over a time scale of about ``u`` steps.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int = 32,
        num_classes: int = 2,
        dropout: float = 0.0,
        gate_bias: str = "default",
        max_length: int = 100,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ConfigError.unknown("cell", cell, CELLS)
        if gate_bias not in ("default", "chrono"):
            raise ValueError(f"gate_bias must be 'default' or 'chrono', got {gate_bias!r}")
        if gate_bias == "chrono" and (cell == "rnn" or max_length < 3):
            raise ValueError("gate_bias='chrono' needs an LSTM or GRU and max_length >= 3")
        self.cell = cell
        self.rnn = CELLS[cell](input_size, hidden_size, batch_first=True)
        if gate_bias == "chrono":
            h = hidden_size
            timescale = torch.log(torch.empty(h).uniform_(1.0, max_length - 1.0))
            with torch.no_grad():
                self.rnn.bias_ih_l0.zero_()
                if cell == "lstm":  # gates i, f, g, o
                    self.rnn.bias_hh_l0[h : 2 * h] = timescale
                    self.rnn.bias_hh_l0[:h] = -timescale
                else:  # gates r, z, n; z = 1 keeps the previous state
                    self.rnn.bias_hh_l0[h : 2 * h] = timescale
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor, return_states: bool = False):
        if x.dim() != 3:
            raise ValueError(f"SequenceClassifier expects [B, T, F] sequences, got {list(x.shape)}")
        states, _ = self.rnn(x)
        logits = self.head(self.dropout(states[:, -1]))
        return (logits, states) if return_states else logits


def _unrolled_states(model: SequenceClassifier, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and the hidden state of every step, computed one step at a time with a cell that
    shares the layer's weights, so that each ``h_t`` is a node of the autograd graph (the fused
    layer hides them)."""
    layer = model.rnn
    cell = _STEP_CELLS[model.cell](layer.input_size, layer.hidden_size)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    cell.load_state_dict({name: getattr(layer, f"{name}_l0") for name in names})
    hidden = torch.zeros(x.shape[0], layer.hidden_size)
    memory = torch.zeros_like(hidden)
    states = []
    for t in range(x.shape[1]):
        if model.cell == "lstm":
            hidden, memory = cell(x[:, t], (hidden, memory))
        else:
            hidden = cell(x[:, t], hidden)
        hidden.retain_grad()
        states.append(hidden)
    return model.head(hidden), states


def gradient_norm_over_time(model: SequenceClassifier, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """``||dL/dh_t||`` for every step ``t`` (mean over the batch) of the loss at the last step.

    Read right to left it shows how much of the training signal reaches step ``t``: a curve
    that falls by orders of magnitude towards ``t = 0`` is the vanishing gradient.

    Examples
    --------
    >>> x, y = long_range_task(8, 20, seed=0)
    >>> norms = gradient_norm_over_time(SequenceClassifier("rnn", 3), x, y)
    >>> norms.shape, bool(norms[-1] > 0)
    ((20,), True)
    """
    was_training = model.training
    model.eval()
    try:
        logits, states = _unrolled_states(model, x)
        nn.functional.cross_entropy(logits, y).backward()
        norms = torch.stack([h.grad.norm(dim=1).mean() for h in states])
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return norms.detach().numpy()


@dataclass
class ToyRun:
    """Per-step loss and (pre-clipping) gradient norm of :func:`train_toy`, and the final accuracy."""

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    accuracy: float = float("nan")
    seconds: float = 0.0
    diverged: bool = False


def train_toy(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 1e-2,
    clip: float | None = None,
    optimizer: str = "adam",
    seed: int = 0,
) -> ToyRun:
    """Train ``model`` for ``steps`` minibatch steps, recording each step's loss and gradient norm.

    ``fit`` is the loop for real experiments; this one exists to *watch* training step by step
    (gradient norms before clipping, loss spikes), which is what the vanishing/exploding
    gradient story needs. ``clip`` clips the global gradient norm; ``optimizer`` is
    ``"adam"`` or ``"sgd"`` (plain SGD shows exploding gradients most clearly).
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    generator = torch.Generator().manual_seed(seed)
    x_train, y_train = train
    make = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    optim = make(model.parameters(), lr=lr)
    run = ToyRun()
    started = time.perf_counter()
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(y_train), (batch_size,), generator=generator)
        loss = nn.functional.cross_entropy(model(x_train[index]), y_train[index])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), clip if clip is not None else math.inf)
        run.loss.append(float(loss.detach()))
        run.grad_norm.append(float(norm.detach()))
        if not (math.isfinite(run.loss[-1]) and math.isfinite(run.grad_norm[-1])):
            run.diverged = True
            break
        optim.step()
    run.seconds = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        logits = model(test[0])
        run.accuracy = float((logits.argmax(1) == test[1]).float().mean()) if not run.diverged else float("nan")
    return run


__all__ = ["CELLS", "SequenceClassifier", "ToyRun", "gradient_norm_over_time", "long_range_task", "train_toy"]
