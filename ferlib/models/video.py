"""Video models: clips ``[B, T, C, H, W]`` in, logits ``[B, num_classes]`` out.

This module holds what every video model shares (:class:`VideoModel`, the frame encoders) and
the frame-by-frame and recurrent families; :mod:`ferlib.models.temporal` holds the models that
mix frames without a recurrence (``cnn_transformer``, ``r3d_small``).

Models
------
``frame_cnn``        a static CNN on every frame, logits averaged over the frames: no memory.
``lstm``, ``gru``    an RNN over per-frame vectors: pooled pixels (``features="pixels"``, each
                     frame average-pooled to ``grid`` x ``grid``) or facial landmarks
                     (``features="landmarks"``: positions and displacement from the first frame).
``cnn_lstm``, ``cnn_gru``, ``cnn_bilstm``
                     a shared per-frame CNN encoder feeding an RNN; the last valid hidden
                     state (both directions for the BiLSTM) feeds a linear head (Kahou et al. 2016).
``cnn_lstm_attn``    the same with temporal attention pooling over the LSTM outputs
                     (Mirsamadi et al. 2017): softmax over time of a learned score, weighted sum.
``cnn_transformer``  a small temporal transformer (learned positions, CLS token) over frame features
                     (:mod:`ferlib.models.temporal`).
``r3d_small``        a small 3D CNN (three Conv3d stages, global pooling): the usual video baseline
                     (:mod:`ferlib.models.temporal`).

Frame encoders come from the static registry (``encoder="cnn_small"``, ``encoder_kwargs={...}``,
any model of ``list_models(kind="static")`` with a ``head_name``): the static model is built and
its classifier head replaced by an identity, so the encoder gives the pooled features the head
would have seen. ``encoder_checkpoint=PATH`` first loads a static ferlib checkpoint (or state
dict) into it; when ``encoder_kwargs`` is not given, the encoder is built with the options
recorded in that checkpoint (e.g. ``width``). The path is read once and recorded as ``None``:
the weights live in the video model's own checkpoint.

Variable lengths: every ``forward`` takes ``lengths`` (LongTensor ``[B]``, the number of real
frames of each zero-padded clip; ``None`` means all ``T``). Padded frames never change the
output: encoders run on the valid frames only, RNNs read packed sequences, attention and
pooling mask the padding, and the 3D CNN zeroes it after every block. ``fit``, ``evaluate`` and
``predict_proba`` pass ``lengths`` from :func:`ferlib.data.loader.collate_samples` through
:func:`ferlib.models.base.forward_kwargs`.

Full-length clips (``lengths=None``, or every length equal to ``T``) take a plain path: the
encoder runs on all frames and the RNNs read the tensor directly, without
``pack_padded_sequence`` (the same logits as the packed path, to float rounding).
With ``lengths=None`` that path has no data-dependent branch, so every video model exports to
ONNX (:func:`ferlib.deploy.export.export_onnx`) as a graph with a fixed clip length ``T`` and a
dynamic batch axis (``lstm``/``gru`` on pixels pool with two matrix products while exporting:
ONNX has no adaptive pooling for frame sizes that are not multiples of ``grid``). The exported
model has no ``lengths`` input: bring a shorter clip to ``T`` frames by repeating frames, not
with zeros.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ferlib.errors import ConfigError
from ferlib.models.base import FERModel, preset
from ferlib.models.registry import register_model

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
_SYNTHFER_LANDMARKS = 27  # len(ferlib.data.synth.LANDMARK_NAMES)


class VideoModel(FERModel):
    """Base of the video models: input checks and the padding mask."""

    kind = "video"
    head_name = "head"

    def prepare(self, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Check ``x`` and ``lengths``; return ``lengths`` (long, on ``x``'s device) and the mask ``[B, T]``."""
        self.check_input(x)
        batch, steps = x.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long, device=x.device)
        else:
            lengths = torch.as_tensor(lengths, device=x.device).long()
            if lengths.shape != (batch,):
                raise ValueError(f"lengths must have shape [{batch}] (one per clip), got {list(lengths.shape)}")
            low, high = int(lengths.min()), int(lengths.max())
            if low < 1 or high > steps:
                raise ValueError(f"lengths must be in [1, {steps}] (the padded clip length T), got {low}..{high}")
        mask = torch.arange(steps, device=x.device)[None, :] < lengths[:, None]
        return lengths, mask


# --------------------------------------------------------------------------------------------
# Frame encoders from the static registry


def frame_encoder(
    name: str,
    in_channels: int,
    num_classes: int = 7,
    kwargs: Mapping | None = None,
    checkpoint: str | None = None,
    keep_head: bool = False,
) -> tuple[nn.Module, int]:
    """A static registry model as a per-frame encoder: ``(module, output size)``.

    Without ``keep_head`` the classifier head is replaced by ``nn.Identity`` and the output size
    is the head's input size (the pooled features); with it the module gives logits.
    ``checkpoint`` is loaded with :func:`ferlib.models.pretrained.load_pretrained` first.
    """
    from ferlib.models.pretrained import load_pretrained
    from ferlib.models.registry import create_model, list_models

    known = list_models(kind="static")
    if name not in known:
        raise ConfigError.unknown("encoder", name, known)
    kwargs = dict(kwargs or {})
    reserved = sorted(set(kwargs) & {"num_classes", "in_channels", "pretrained", "freeze"})
    if reserved:
        raise ValueError(
            f"encoder_kwargs may not set {', '.join(reserved)}: use the video model's own arguments "
            "(num_classes, in_channels, encoder_checkpoint)"
        )
    encoder = create_model(name, num_classes=num_classes, in_channels=in_channels, **kwargs)
    if checkpoint is not None:
        load_pretrained(encoder, checkpoint)
    head_name = getattr(encoder, "head_name", None)
    if not head_name:
        raise ValueError(f"encoder {name!r} names no classifier head (head_name), so it cannot give features")
    if keep_head:
        return encoder, num_classes
    head = encoder.get_submodule(head_name)
    linear = next((m for m in head.modules() if isinstance(m, nn.Linear)), None)  # the head itself, or its first
    if linear is None:
        raise ValueError(f"encoder {name!r}: its head {head_name!r} has no nn.Linear to read the feature size from")
    encoder.set_submodule(head_name, nn.Identity())
    return encoder, linear.in_features


def checkpoint_encoder_kwargs(path, encoder: str) -> dict | None:
    """The options a static ferlib checkpoint of model ``encoder`` was built with (``width``...),
    without ``num_classes``/``in_channels``; ``None`` for a plain state dict, another model or an
    unreadable file (:func:`~ferlib.models.pretrained.load_pretrained` then reports the problem)."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # load_pretrained raises the clear error
        return None
    if not isinstance(content, dict) or content.get("model_name") != encoder:
        return None
    config = content.get("model_config")
    if not isinstance(config, dict):
        return None
    return {k: v for k, v in config.items() if k not in ("num_classes", "in_channels", "pretrained", "freeze")}


def encode_frames(encoder: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Run ``encoder`` on the valid frames of ``x`` ``[B, T, C, H, W]``: ``[B, T, D]``, zeros on padding.

    ``mask=None``: every frame is valid (no data-dependent branch, the path ONNX export traces)."""
    batch, steps = x.shape[:2]
    if mask is None or bool(mask.all()):
        return encoder(x.flatten(0, 1)).view(batch, steps, -1)
    features = encoder(x[mask])
    out = features.new_zeros(batch, steps, features.shape[-1])
    out[mask] = features
    return out


class EncodedVideoModel(VideoModel):
    """A video model with a per-frame encoder from the static registry."""

    def _build_encoder(self, encoder, encoder_kwargs, encoder_checkpoint, keep_head=False) -> int:
        if encoder_kwargs is None and encoder_checkpoint is not None:
            encoder_kwargs = checkpoint_encoder_kwargs(encoder_checkpoint, encoder)
        self.encoder, size = frame_encoder(
            encoder, self.in_channels, self.num_classes, encoder_kwargs, encoder_checkpoint, keep_head
        )
        # The weights are in this model's state dict now: a rebuild must not read the file again,
        # but must build the same encoder (its options may have come from the file).
        self.config_overrides = {"encoder_checkpoint": None, "encoder_kwargs": dict(encoder_kwargs or {})}
        return size


def _run_rnn(rnn: nn.RNNBase, sequence: torch.Tensor, lengths: torch.Tensor | None, outputs: bool = False):
    """Run ``rnn`` on the valid steps; return the top layer's last hidden state(s) ``[B, dirs * H]``
    and, with ``outputs``, the outputs ``[B, T, dirs * H]`` (zeros on padding).

    ``lengths=None`` (or every length ``T``): the RNN reads ``sequence`` as it is. Otherwise it
    reads a packed sequence, so that each clip's last state is that of its last real step and
    the backward direction of a BiLSTM starts there. Packing cannot be exported to ONNX; the
    unpacked path can, and gives the same states when nothing is padded.
    """
    batch, steps = sequence.shape[:2]
    if lengths is not None and bool((lengths == steps).all()):
        lengths = None
    if lengths is None:
        out, state = rnn(sequence)
    else:
        packed = pack_padded_sequence(sequence, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = rnn(packed)
        if outputs:
            out = pad_packed_sequence(out, batch_first=True, total_length=steps)[0]
    hidden = state[0] if isinstance(rnn, nn.LSTM) else state
    directions = 2 if rnn.bidirectional else 1
    last = hidden[-directions:].transpose(0, 1).reshape(batch, -1)
    return (last, out) if outputs else last


def _check_cell(cell: str) -> None:
    if cell not in _CELLS:
        raise ConfigError.unknown("cell", cell, _CELLS)


# --------------------------------------------------------------------------------------------
# frame_cnn


@register_model(
    "frame_cnn",
    kind="video",
    description="Static CNN on every frame, logits averaged over frames (the no-memory baseline).",
)
class FrameCNN(EncodedVideoModel):
    """A static CNN applied to every frame; its logits are averaged over the valid frames."""

    def __init__(self, in_channels=1, num_classes=7, encoder="cnn_small", encoder_kwargs=None, encoder_checkpoint=None):
        super().__init__(in_channels, num_classes)
        self._build_encoder(encoder, encoder_kwargs, encoder_checkpoint, keep_head=True)
        self.head_name = f"encoder.{self.encoder.head_name}"

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        full = lengths is None
        lengths, mask = self.prepare(x, lengths)
        logits = encode_frames(self.encoder, x, None if full else mask)
        return logits.sum(1) / lengths[:, None].to(logits.dtype)


# --------------------------------------------------------------------------------------------
# lstm, gru on pooled pixels or landmarks


class VectorRNN(VideoModel):
    """An LSTM/GRU over one vector per frame: pooled pixels or landmarks.

    ``features="pixels"``: each frame average-pooled to ``grid`` x ``grid`` and flattened
    (``C * grid * grid`` values). ``features="landmarks"``: ``forward`` needs ``landmarks``
    ``[B, T, K, 2]`` in normalised coordinates (``fit``/``evaluate`` take them from the samples'
    per-frame ``meta["landmarks"]`` in pixels, e.g. SynthFER video tasks); the vector is the
    positions and their displacement from the first frame (``4 * K`` values).
    """

    def __init__(
        self,
        in_channels=1,
        num_classes=7,
        cell="lstm",
        features="pixels",
        grid=12,
        num_landmarks=_SYNTHFER_LANDMARKS,
        hidden_size=64,
        num_layers=1,
        dropout=0.2,
    ):
        super().__init__(in_channels, num_classes)
        _check_cell(cell)
        if features not in ("pixels", "landmarks"):
            raise ConfigError.unknown("features", features, ("pixels", "landmarks"))
        self.features, self.grid, self.num_landmarks = features, grid, num_landmarks
        self.uses_landmarks = features == "landmarks"
        size = in_channels * grid * grid if features == "pixels" else 4 * num_landmarks
        self.rnn = _CELLS[cell](
            size, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, num_classes))

    def frame_vectors(self, x: torch.Tensor, landmarks: torch.Tensor | None) -> torch.Tensor:
        """The per-frame input vectors ``[B, T, F]``."""
        batch, steps = x.shape[:2]
        if self.features == "pixels":
            if torch.onnx.is_in_onnx_export():
                # ONNX pools adaptively only when the frame size is a multiple of the grid, and the
                # TorchScript exporter loses the frame size after the flatten: export the same
                # averages as two matrix products (3x slower than the pooling kernel in eager).
                rows = _pooling_matrix(x.shape[-2], self.grid).to(x)
                columns = _pooling_matrix(x.shape[-1], self.grid).to(x)
                return (rows @ x @ columns.T).reshape(batch, steps, -1)
            pooled = F.adaptive_avg_pool2d(x.flatten(0, 1), self.grid)
            return pooled.reshape(batch, steps, -1)
        if landmarks is None:
            raise ValueError(
                "features='landmarks' needs landmarks [B, T, K, 2]: samples with per-frame meta['landmarks'] "
                "(e.g. SynthFER video tasks), or pass landmarks= to forward"
            )
        landmarks = torch.as_tensor(landmarks, dtype=x.dtype, device=x.device)
        if landmarks.shape != (batch, steps, self.num_landmarks, 2):
            raise ValueError(
                f"landmarks must have shape [B, T, K, 2] = {[batch, steps, self.num_landmarks, 2]}, "
                f"got {list(landmarks.shape)}"
            )
        points = landmarks.flatten(2)
        return torch.cat([points, points - points[:, :1]], dim=2)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, landmarks: torch.Tensor | None = None
    ) -> torch.Tensor:
        full = lengths is None
        lengths, mask = self.prepare(x, lengths)
        vectors = self.frame_vectors(x, landmarks) * mask[..., None]
        return self.head(_run_rnn(self.rnn, vectors, None if full else lengths))


def _pooling_matrix(size: int, grid: int) -> torch.Tensor:
    """``[grid, size]``: row ``i`` averages the bin of :func:`torch.nn.functional.adaptive_avg_pool1d`,
    ``floor(i * size / grid)`` to ``ceil((i + 1) * size / grid)``. Built in NumPy so that an
    exporter's tracer records a constant, not the loop."""
    matrix = np.zeros((grid, size), dtype=np.float32)
    for i in range(grid):
        start, end = (i * size) // grid, -(-(i + 1) * size // grid)
        matrix[i, start:end] = 1.0 / (end - start)
    return torch.from_numpy(matrix)


register_model("lstm", kind="video", description="LSTM over per-frame pooled pixels (or landmarks).")(
    preset(VectorRNN, cell="lstm")
)
register_model("gru", kind="video", description="GRU over per-frame pooled pixels (or landmarks).")(
    preset(VectorRNN, cell="gru")
)


# --------------------------------------------------------------------------------------------
# CNN + RNN (with optional attention pooling)


class CNNRNN(EncodedVideoModel):
    """A per-frame CNN encoder, an LSTM/GRU over its features and a linear head.

    ``pool="last"``: the last valid hidden state of the top layer (both directions if
    ``bidirectional``). ``pool="attention"``: attention pooling over the outputs,
    ``w = softmax_t(u . h_t)`` with a learned ``u`` and padded steps excluded, then
    ``sum_t w_t h_t``; ``forward(x, return_attention=True)`` also returns ``w`` ``[B, T]``.
    """

    def __init__(
        self,
        in_channels=1,
        num_classes=7,
        cell="lstm",
        bidirectional=False,
        pool="last",
        encoder="cnn_small",
        encoder_kwargs=None,
        encoder_checkpoint=None,
        hidden_size=64,
        num_layers=1,
        dropout=0.2,
    ):
        super().__init__(in_channels, num_classes)
        _check_cell(cell)
        if pool not in ("last", "attention"):
            raise ConfigError.unknown("pool", pool, ("last", "attention"))
        size = self._build_encoder(encoder, encoder_kwargs, encoder_checkpoint)
        self.pool = pool
        self.rnn = _CELLS[cell](
            size,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        out = hidden_size * (2 if bidirectional else 1)
        self.score = nn.Linear(out, 1, bias=False) if pool == "attention" else None
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(out, num_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, return_attention: bool = False):
        full = lengths is None
        lengths, mask = self.prepare(x, lengths)
        features = encode_frames(self.encoder, x, None if full else mask)
        rnn_lengths = None if full else lengths
        if self.pool == "last":
            if return_attention:
                raise ValueError("return_attention=True needs pool='attention' (the cnn_lstm_attn model)")
            return self.head(_run_rnn(self.rnn, features, rnn_lengths))
        _, outputs = _run_rnn(self.rnn, features, rnn_lengths, outputs=True)
        scores = self.score(outputs).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores.float(), dim=1).to(outputs.dtype)
        logits = self.head((weights[..., None] * outputs).sum(1))
        return (logits, weights) if return_attention else logits


register_model("cnn_lstm", kind="video", description="Per-frame CNN encoder + LSTM, last hidden state.")(
    preset(CNNRNN, cell="lstm", bidirectional=False, pool="last")
)
register_model("cnn_gru", kind="video", description="Per-frame CNN encoder + GRU, last hidden state.")(
    preset(CNNRNN, cell="gru", bidirectional=False, pool="last")
)
register_model("cnn_bilstm", kind="video", description="Per-frame CNN encoder + bidirectional LSTM.")(
    preset(CNNRNN, cell="lstm", bidirectional=True, pool="last")
)
register_model("cnn_lstm_attn", kind="video", description="Per-frame CNN + LSTM with temporal attention pooling.")(
    preset(CNNRNN, cell="lstm", bidirectional=False, pool="attention")
)
