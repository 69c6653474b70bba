"""nn.LSTM, nn.GRU and nn.RNN in every mode (stacked, bidirectional, batch_first, with initial
states, unbatched, LSTM projections), traced and scripted, compiled whole and against PyTorch
(rtol=atol=1e-5)."""

import pytest
import torch
import torch.nn as nn

import tvmbridge.torch as tt

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


class Lstm(nn.Module):
    """Runs an nn.LSTM and returns its output and final states."""

    def __init__(self, layer: nn.LSTM, with_state: bool):
        super().__init__()
        self.layer = layer
        self.with_state = with_state

    def forward(self, x, h0, c0):
        if self.with_state:
            out, (h, c) = self.layer(x, (h0, c0))
        else:
            out, (h, c) = self.layer(x)
        return out, h, c


class GruOrRnn(nn.Module):
    """Runs an nn.GRU or nn.RNN and returns its output and final state."""

    def __init__(self, layer: nn.Module, with_state: bool):
        super().__init__()
        self.layer = layer
        self.with_state = with_state

    def forward(self, x, h0, c0):
        if self.with_state:
            out, h = self.layer(x, h0)
        else:
            out, h = self.layer(x)
        return out, h + 0 * c0.sum()


def Recurrent(layer: nn.Module, with_state: bool) -> nn.Module:
    return Lstm(layer, with_state) if isinstance(layer, nn.LSTM) else GruOrRnn(layer, with_state)


MODES = {
    "lstm": lambda: nn.LSTM(5, 6),
    "lstm_stacked_bidirectional_batch_first": lambda: nn.LSTM(5, 6, num_layers=2,
                                                               bidirectional=True,
                                                               batch_first=True),
    "lstm_projection": lambda: nn.LSTM(5, 6, proj_size=3, num_layers=2),
    "lstm_no_bias": lambda: nn.LSTM(5, 6, bias=False),
    "gru": lambda: nn.GRU(5, 6),
    "gru_stacked_bidirectional": lambda: nn.GRU(5, 6, num_layers=2, bidirectional=True),
    "rnn_tanh_batch_first": lambda: nn.RNN(5, 6, batch_first=True),
    "rnn_relu_stacked_bidirectional": lambda: nn.RNN(5, 6, num_layers=3, nonlinearity="relu",
                                                     bidirectional=True),
}


def _inputs(layer: nn.Module, batch: int | None):
    directions = 2 if layer.bidirectional else 1
    states = layer.num_layers * directions
    hidden = getattr(layer, "proj_size", 0) or layer.hidden_size
    if batch is None:  # unbatched: [steps, features]
        return torch.randn(4, 5), torch.randn(states, hidden), torch.randn(states, layer.hidden_size)
    x = torch.randn(batch, 4, 5) if layer.batch_first else torch.randn(4, batch, 5)
    return x, torch.randn(states, batch, hidden), torch.randn(states, batch, layer.hidden_size)


@pytest.mark.parametrize("how", ["trace", "script"])
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_recurrent_layer_matches_pytorch(mode, with_state, how):
    torch.manual_seed(0)
    model = Recurrent(MODES[mode](), with_state).eval()
    inputs = _inputs(model.layer, batch=2)
    with torch.no_grad():
        ts = torch.jit.trace(model, inputs) if how == "trace" else torch.jit.script(model)
        compiled = tt.compile(ts, list(inputs), require_full_compilation=True, never_slower=False)
        for _ in range(2):  # a second input: nothing was folded from the first
            for expected, actual in zip(model(*inputs), compiled(*inputs)):
                assert actual.shape == expected.shape
                torch.testing.assert_close(actual, expected, **TOLERANCE)
            inputs = _inputs(model.layer, batch=2)


def test_unbatched_lstm_matches_pytorch():
    torch.manual_seed(0)
    model = Recurrent(nn.LSTM(5, 6, num_layers=2), True).eval()
    inputs = _inputs(model.layer, batch=None)
    with torch.no_grad():
        compiled = tt.compile(torch.jit.trace(model, inputs), list(inputs),
                              require_full_compilation=True, never_slower=False)
        for expected, actual in zip(model(*inputs), compiled(*inputs)):
            torch.testing.assert_close(actual, expected, **TOLERANCE)


class Layer(nn.Module):
    """A recurrent layer alone, its output sequence only: one aten op, which makes a region of
    its own (a whole layer) at the default min_block_size."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)[0]


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh_batch_first",
                                  "rnn_relu_stacked_bidirectional"])
@pytest.mark.parametrize("steps, batch", [(1, 1), (5, 3)])
def test_recurrent_layers_keep_nan_and_infinities_as_pytorch(mode, steps, batch):
    """Seeded inputs with NaN, +-inf and values that saturate tanh and sigmoid (+-60) put at
    random steps: the compiled layer (in TVM by the default partitioning) gives PyTorch's NaN
    and infinity masks and, elsewhere, its values."""
    import random

    torch.manual_seed(0)
    model = Layer(MODES[mode]()).eval()
    layer = model.layer
    shape = (batch, steps, 5) if layer.batch_first else (steps, batch, 5)
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.randn(shape))
        compiled = tt.compile(traced, [torch.randn(shape)], never_slower=False)
        op = "aten::" + layer.mode.lower()  # LSTM, GRU, RNN_TANH, RNN_RELU
        assert tt.report(compiled).placement_of(op) == {"TVM block 0"}
        rng = random.Random(f"{mode}-{steps}-{batch}")
        for _ in range(8):
            x = torch.randn(shape)
            for _ in range(rng.randrange(0, 4)):
                x.view(-1)[rng.randrange(x.numel())] = rng.choice(
                    [float("nan"), float("inf"), float("-inf"), 60.0, -60.0])
            expected, actual = model(x), compiled(x)
            torch.testing.assert_close(actual.isnan(), expected.isnan())
            torch.testing.assert_close(actual.isinf(), expected.isinf())
            finite = expected.isfinite()
            torch.testing.assert_close(actual[finite], expected[finite], **TOLERANCE)
