"""Video models: clips ``[B, T, C, H, W]`` in, logits ``[B, num_classes]`` out.

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
``cnn_transformer``  a small temporal transformer (learned positions, CLS token) over frame features.
``r3d_small``        a small 3D CNN (three Conv3d stages, global pooling): the usual video baseline.

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
``predict_proba`` pass ``lengths`` from :func:`ferlib.data.collate.collate_samples` through
:func:`ferlib.models.base.forward_kwargs`.

Full-length clips (``lengths=None``, or every length equal to ``T``) take a plain path: the
encoder runs on all frames and the RNNs read the tensor directly, without
``pack_padded_sequence`` (the same logits as the packed path, to float rounding).
With ``lengths=None`` that path has no data-dependent branch, so every model here exports to
ONNX (:func:`ferlib.export.export_onnx`) as a graph with a fixed clip length ``T`` and a
dynamic batch axis (``lstm``/``gru`` on pixels pool with two matrix products while exporting:
ONNX has no adaptive pooling for frame sizes that are not multiples of ``grid``). The exported
model has no ``lengths`` input: bring a shorter clip to ``T`` frames by repeating frames, not
with zeros.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ferlib.models.base import FERModel
from ferlib.models.registry import register_model

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
_SYNTHFER_LANDMARKS = 27  # len(ferlib.data.synth_render.LANDMARK_NAMES)


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
        raise ValueError(f"unknown encoder {name!r}: expected a static model, one of {', '.join(known)}")
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


class _Encoded(VideoModel):
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
        raise ValueError(f"unknown cell {cell!r}: expected one of {', '.join(_CELLS)}")


# --------------------------------------------------------------------------------------------
# frame_cnn


class FrameCNN(_Encoded):
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


@register_model("frame_cnn", kind="video")
def frame_cnn(
    num_classes: int = 7,
    in_channels: int = 1,
    encoder: str = "cnn_small",
    encoder_kwargs: dict | None = None,
    encoder_checkpoint: str | None = None,
) -> nn.Module:
    """Static CNN on every frame, logits averaged over frames (the no-memory baseline)."""
    return FrameCNN(in_channels, num_classes, encoder, encoder_kwargs, encoder_checkpoint)


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
            raise ValueError(f"unknown features {features!r}: expected 'pixels' or 'landmarks'")
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


def _vector_rnn(cell: str):
    def build(
        num_classes: int = 7,
        in_channels: int = 1,
        features: str = "pixels",
        grid: int = 12,
        num_landmarks: int = _SYNTHFER_LANDMARKS,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.2,
    ) -> nn.Module:
        return VectorRNN(
            in_channels, num_classes, cell, features, grid, num_landmarks, hidden_size, num_layers, dropout
        )

    return build


register_model("lstm", kind="video", description="LSTM over per-frame pooled pixels (or landmarks).")(
    _vector_rnn("lstm")
)
register_model("gru", kind="video", description="GRU over per-frame pooled pixels (or landmarks).")(_vector_rnn("gru"))


# --------------------------------------------------------------------------------------------
# CNN + RNN (with optional attention pooling)


class CNNRNN(_Encoded):
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
            raise ValueError(f"unknown pool {pool!r}: expected 'last' or 'attention'")
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


def _cnn_rnn(cell: str, bidirectional: bool = False, pool: str = "last"):
    def build(
        num_classes: int = 7,
        in_channels: int = 1,
        encoder: str = "cnn_small",
        encoder_kwargs: dict | None = None,
        encoder_checkpoint: str | None = None,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.2,
    ) -> nn.Module:
        return CNNRNN(
            in_channels,
            num_classes,
            cell,
            bidirectional,
            pool,
            encoder,
            encoder_kwargs,
            encoder_checkpoint,
            hidden_size,
            num_layers,
            dropout,
        )

    return build


register_model("cnn_lstm", kind="video", description="Per-frame CNN encoder + LSTM, last hidden state.")(
    _cnn_rnn("lstm")
)
register_model("cnn_gru", kind="video", description="Per-frame CNN encoder + GRU, last hidden state.")(_cnn_rnn("gru"))
register_model("cnn_bilstm", kind="video", description="Per-frame CNN encoder + bidirectional LSTM.")(
    _cnn_rnn("lstm", bidirectional=True)
)
register_model("cnn_lstm_attn", kind="video", description="Per-frame CNN + LSTM with temporal attention pooling.")(
    _cnn_rnn("lstm", pool="attention")
)


# --------------------------------------------------------------------------------------------
# CNN + temporal transformer


class MaskedBlock(nn.Module):
    """Pre-norm transformer block whose attention ignores padded keys.

    Attention is written out (not ``nn.MultiheadAttention``'s fused path) so that
    :func:`ferlib.efficiency.count_flops` counts it.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, N, D]``, ``mask`` ``[B, N]`` (True = a real token)."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(dim // self.heads)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        x = x + self.dropout(self.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, dim)))
        return x + self.dropout(self.mlp(self.norm2(x)))


class CNNTransformer(_Encoded):
    """Per-frame CNN features, projected to ``dim``, plus a learned position embedding, through
    ``depth`` masked transformer blocks; the CLS token (``pool="cls"``) or the mean of the
    valid frames (``pool="mean"``) feeds the head. Clips may have up to ``max_frames`` frames."""

    def __init__(
        self,
        in_channels=1,
        num_classes=7,
        encoder="cnn_small",
        encoder_kwargs=None,
        encoder_checkpoint=None,
        dim=64,
        depth=2,
        heads=4,
        mlp_ratio=2.0,
        max_frames=64,
        pool="cls",
        dropout=0.1,
    ):
        super().__init__(in_channels, num_classes)
        if pool not in ("cls", "mean"):
            raise ValueError(f"unknown pool {pool!r}: expected 'cls' or 'mean'")
        size = self._build_encoder(encoder, encoder_kwargs, encoder_checkpoint)
        self.pool, self.max_frames = pool, max_frames
        self.proj = nn.Linear(size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, max_frames + 1, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(MaskedBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        full = lengths is None
        lengths, mask = self.prepare(x, lengths)
        batch, steps = x.shape[:2]
        if steps > self.max_frames:
            raise ValueError(f"clips have {steps} frames but the model was built for max_frames={self.max_frames}")
        tokens = self.proj(encode_frames(self.encoder, x, None if full else mask)) + self.pos_embed[:, 1 : steps + 1]
        tokens = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(batch, -1, -1), tokens], dim=1)
        token_mask = torch.cat([mask.new_ones(batch, 1), mask], dim=1)
        for block in self.blocks:
            tokens = block(tokens, token_mask)
        tokens = self.norm(tokens)
        if self.pool == "cls":
            pooled = tokens[:, 0]
        else:
            pooled = (tokens[:, 1:] * mask[..., None]).sum(1) / lengths[:, None].to(tokens.dtype)
        return self.head(pooled)


@register_model("cnn_transformer", kind="video")
def cnn_transformer(
    num_classes: int = 7,
    in_channels: int = 1,
    encoder: str = "cnn_small",
    encoder_kwargs: dict | None = None,
    encoder_checkpoint: str | None = None,
    dim: int = 64,
    depth: int = 2,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    max_frames: int = 64,
    pool: str = "cls",
    dropout: float = 0.1,
) -> nn.Module:
    """Per-frame CNN encoder + small temporal transformer (CLS token, padding mask)."""
    return CNNTransformer(
        in_channels,
        num_classes,
        encoder,
        encoder_kwargs,
        encoder_checkpoint,
        dim,
        depth,
        heads,
        mlp_ratio,
        max_frames,
        pool,
        dropout,
    )


# --------------------------------------------------------------------------------------------
# r3d_small


def _conv3d_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


class R3DSmall(VideoModel):
    """A small 3D CNN: one 3x3x3 conv block per stage; max-pooling halves the frame size after
    the first stage and time and frame size after the others; global average pooling over the
    valid time steps and the frame feeds the head.

    Padding: padded time steps are zeroed after every block (and at the input), so that they
    look exactly like the convolution's own zero padding and a padded clip gives the same
    logits as the unpadded one (in eval mode; in training, batch norm statistics see them).
    """

    def __init__(self, in_channels=1, num_classes=7, widths: Sequence[int] = (16, 32, 64), dropout=0.3):
        super().__init__(in_channels, num_classes)
        widths = tuple(widths)
        if not widths:
            raise ValueError("widths must name at least one stage")
        channels = (in_channels, *widths)
        self.stages = nn.ModuleList(_conv3d_block(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], num_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        lengths, mask = self.prepare(x, lengths)
        x = x.transpose(1, 2) * mask[:, None, :, None, None]  # [B, C, T, H, W]
        for index, stage in enumerate(self.stages):
            if index == 1:
                x = F.max_pool3d(x, (1, 2, 2), ceil_mode=True)
            elif index > 1:
                # ceil_mode: an odd last step is pooled alone; its padded partner is 0 (post-ReLU
                # values are >= 0), so the max is the same with or without padding.
                x = F.max_pool3d(x, 2, ceil_mode=True)
                lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
                mask = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
            x = stage(x) * mask[:, None, :, None, None]
        pooled = x.mean(dim=(3, 4)).sum(2) / lengths[:, None].to(x.dtype)
        return self.head(pooled)


@register_model("r3d_small", kind="video")
def r3d_small(
    num_classes: int = 7, in_channels: int = 1, widths: Sequence[int] = (16, 32, 64), dropout: float = 0.3
) -> nn.Module:
    """Small 3D CNN (three Conv3d stages, global pooling): the video baseline."""
    return R3DSmall(in_channels, num_classes, widths, dropout)
