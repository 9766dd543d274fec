import math

import numpy as np
import pytest
import torch

from ferlib.sequences import SequenceClassifier, _unrolled_states, gradient_norm_over_time, long_range_task, train_toy


def test_long_range_task_codes_the_label_in_the_first_step_only():
    x, y = long_range_task(50, 12, num_classes=3, seed=4)
    assert x.shape == (50, 12, 4)
    assert torch.equal(x[:, 0, :3].argmax(1), y)
    assert torch.count_nonzero(x[:, 1:, :3]) == 0
    again, labels = long_range_task(50, 12, num_classes=3, seed=4)
    assert torch.equal(x, again) and torch.equal(y, labels)
    with pytest.raises(ValueError, match="num_classes"):
        long_range_task(5, 5, num_classes=1)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_unrolled_states_match_the_fused_layer(cell):
    torch.manual_seed(0)
    model = SequenceClassifier(cell, 3, hidden_size=8).eval()
    x, _ = long_range_task(4, 9, seed=1)
    logits, states = _unrolled_states(model, x)
    fused_logits, fused_states = model(x, return_states=True)
    assert torch.allclose(logits, fused_logits, atol=1e-5)
    assert torch.allclose(torch.stack(states, 1), fused_states, atol=1e-5)


def test_vanilla_rnn_gradient_vanishes_faster_than_chrono_lstm():
    x, y = long_range_task(64, 40, seed=2)
    ratios = {}
    for cell, bias in (("rnn", "default"), ("lstm", "chrono")):
        torch.manual_seed(0)
        norms = gradient_norm_over_time(SequenceClassifier(cell, 3, gate_bias=bias, max_length=40), x, y)
        assert norms.shape == (40,) and np.all(np.isfinite(norms))
        ratios[cell] = norms[0] / norms[-1]
    assert ratios["rnn"] < 1e-3 * ratios["lstm"]


def test_chrono_bias_sets_time_scales():
    torch.manual_seed(0)
    model = SequenceClassifier("lstm", 3, hidden_size=16, gate_bias="chrono", max_length=50)
    forget = model.rnn.bias_hh_l0[16:32]
    assert torch.all(forget >= 0) and torch.all(forget <= math.log(49) + 1e-6)
    assert torch.allclose(model.rnn.bias_hh_l0[:16], -forget)
    with pytest.raises(ValueError, match="chrono"):
        SequenceClassifier("rnn", 3, gate_bias="chrono")
    with pytest.raises(ValueError, match="unknown cell"):
        SequenceClassifier("transformer", 3)


def test_train_toy_learns_a_short_dependency_and_records_every_step():
    torch.manual_seed(0)
    train, test = long_range_task(512, 5, seed=0), long_range_task(128, 5, seed=1)
    run = train_toy(SequenceClassifier("gru", 3, hidden_size=16), train, test, steps=150, lr=1e-2)
    assert len(run.loss) == len(run.grad_norm) == 150
    assert run.accuracy > 0.9 and not run.diverged


def test_gradient_clipping_bounds_each_update():
    torch.manual_seed(0)
    model = SequenceClassifier("rnn", 3, hidden_size=8)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    data = long_range_task(64, 10, seed=0)
    run = train_toy(model, data, data, steps=1, lr=1.0, clip=0.01, optimizer="sgd")
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert run.grad_norm[0] > 0.01  # the recorded norm is the one before clipping
    assert float((after - before).norm()) <= 0.01 + 1e-6
