"""Recurrent networks as rivals of the CNNs on static images.

``lstm_rows`` and ``gru_rows`` read an image row by row, top to bottom: a ``[C, H, W]``
image becomes a sequence of ``H`` vectors of size ``C * W``, and the last hidden state of
the top layer feeds a linear head. They show what a recurrent model makes of an image
without any convolution, the baseline the sequence chapters compare against.

An RNN's input size is fixed when it is built, so images whose width is not ``row_width``
are resized (bilinear, antialiased) to that width in ``forward``, keeping their height; the
sequence length (the height) may be anything.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferlib.errors import ConfigError
from ferlib.models.base import FERModel, preset
from ferlib.models.registry import register_model

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RowRNN(FERModel):
    """An LSTM or GRU over image rows, with a linear head on the last hidden state."""

    head_name = "head"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 7,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 2,
        row_width: int = 48,
        bidirectional: bool = False,
        dropout: float = 0.2,
    ):
        super().__init__(in_channels, num_classes)
        if cell not in _CELLS:
            raise ConfigError.unknown("cell", cell, _CELLS)
        self.cell = cell
        self.row_width = row_width
        self.rnn = _CELLS[cell](
            input_size=in_channels * row_width,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        directions = 2 if bidirectional else 1
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(directions * hidden_size, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        batch, channels, height, width = x.shape
        if width != self.row_width:
            x = F.interpolate(
                x, size=(height, self.row_width), mode="bilinear", antialias=True, align_corners=False
            )
        rows = x.permute(0, 2, 1, 3).reshape(batch, height, channels * self.row_width)
        _, state = self.rnn(rows)
        hidden = state[0] if self.cell == "lstm" else state
        # hidden: [layers * directions, B, hidden]; keep the top layer's directions.
        directions = 2 if self.rnn.bidirectional else 1
        top = hidden[-directions:].transpose(0, 1).reshape(batch, -1)
        return self.head(top)


register_model("lstm_rows", kind="static", description="LSTM reading the image row by row (H steps of C*W values).")(
    preset(RowRNN, cell="lstm")
)
register_model("gru_rows", kind="static", description="GRU reading the image row by row (H steps of C*W values).")(
    preset(RowRNN, cell="gru")
)
