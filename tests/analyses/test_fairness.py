import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import Dataset

import ferlib
from ferlib.data.subsets import LabelledSubset
from ferlib.data.synth import SynthFER
from ferlib.fairness import (
    GroupDRO,
    dataset_bias,
    dataset_groups,
    group_report,
    group_sample_weights,
    label_group_bias,
)
from tests.conftest import BlobFaces

# Hand-made predictions: group a gets 4 of 5 right, group b 3 of 5 (classes x, y, z).
Y_TRUE = [0, 0, 1, 1, 2, 0, 1, 1, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0, 0, 1, 2, 0]
GROUPS = ["a"] * 5 + ["b"] * 5
NAMES = ("x", "y", "z")


@pytest.mark.parametrize("use_fairlearn", [False, True])
def test_group_report_matches_hand_computed_values(use_fairlearn):
    if use_fairlearn:
        pytest.importorskip("fairlearn")
    report = group_report(Y_TRUE, Y_PRED, GROUPS, class_names=NAMES, n_bootstrap=0, use_fairlearn=use_fairlearn)
    a, b = report.set_index("group").loc["a"], report.set_index("group").loc["b"]
    assert (a["n"], b["n"]) == (5, 5) and (a["share"], b["share"]) == (0.5, 0.5)
    assert a["accuracy"] == pytest.approx(0.8) and b["accuracy"] == pytest.approx(0.6)
    # a: recall x 1/2, y 2/2, z 1/1; precision x 1, y 2/3, z 1; F1 2/3, 4/5, 1.
    assert [a["recall_x"], a["recall_y"], a["recall_z"]] == pytest.approx([0.5, 1.0, 1.0])
    assert a["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 1) / 3)
    # b: recall x 1/1, y 1/2, z 1/2; precision x 1/3, y 1, z 1; F1 1/2, 2/3, 2/3.
    assert [b["recall_x"], b["recall_y"], b["recall_z"]] == pytest.approx([1.0, 0.5, 0.5])
    assert b["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    summary = report.attrs["summary"]
    assert summary["overall_accuracy"] == pytest.approx(0.7)
    assert summary["worst_group"] == "b" and summary["best_group"] == "a"
    assert summary["worst_group_accuracy"] == pytest.approx(0.6)
    assert summary["accuracy_gap"] == pytest.approx(0.2)
    assert summary["accuracy_ratio"] == pytest.approx(0.75)
    assert summary["macro_f1_gap"] == pytest.approx(37 / 45 - 11 / 18)
    # Class x one-vs-rest: TPR a 1/2, b 1/1; FPR a 0/3, b 2/4 -> 0.5. y: TPR 1 vs 1/2, FPR 1/3 vs 0 -> 0.5.
    # z: TPR 1 vs 1/2, FPR 0 vs 0 -> 0.5.
    assert report.attrs["equalized_odds"] == pytest.approx({"x": 0.5, "y": 0.5, "z": 0.5})


def test_equalized_odds_takes_the_larger_of_tpr_and_fpr_gaps():
    # Class 1: TPR 1 in both groups, FPR 0 in a and 1 in b -> 1.0 from the false-positive rate.
    report = group_report([1, 0, 0, 1, 0, 0], [1, 0, 0, 1, 1, 0], list("aaabbb"), num_classes=2, n_bootstrap=0)
    # Class 1 FPR: a 0/2, b 1/2 -> 0.5; class 0 TPR: a 2/2, b 1/2 -> 0.5.
    assert report.attrs["equalized_odds"] == pytest.approx({"0": 0.5, "1": 0.5})
    fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
    y_true, y_pred = np.array([1, 0, 0, 1, 0, 0]), np.array([1, 0, 0, 1, 1, 0])
    expected = fairlearn_metrics.equalized_odds_difference(y_true, y_pred, sensitive_features=list("aaabbb"))
    assert report.attrs["equalized_odds"]["1"] == pytest.approx(expected)


def test_bootstrap_intervals_bracket_the_point_and_are_seeded():
    report = group_report(Y_TRUE * 20, Y_PRED * 20, GROUPS * 20, class_names=NAMES, n_bootstrap=500, seed=1)
    assert (report["accuracy_ci_low"] <= report["accuracy"]).all()
    assert (report["accuracy"] <= report["accuracy_ci_high"]).all()
    assert (report["accuracy_ci_high"] - report["accuracy_ci_low"] > 0).all()
    summary = report.attrs["summary"]
    assert summary["accuracy_gap_ci_low"] <= summary["accuracy_gap"] <= summary["accuracy_gap_ci_high"]
    assert summary["worst_group_accuracy_ci_low"] <= 0.6 <= summary["worst_group_accuracy_ci_high"]
    again = group_report(Y_TRUE * 20, Y_PRED * 20, GROUPS * 20, class_names=NAMES, n_bootstrap=500, seed=1)
    pd.testing.assert_frame_equal(report, again)
    perfect = group_report([0, 1, 2], [0, 1, 2], ["a", "a", "a"], n_bootstrap=100)
    assert (perfect.loc[0, "accuracy_ci_low"], perfect.loc[0, "accuracy_ci_high"]) == (1.0, 1.0)


def test_intersections_of_two_attributes():
    groups = pd.DataFrame({"skin_tone": [0, 0, 5, 5, 0, 5], "gender": ["f", "m", "f", "m", "f", "m"]})
    report = group_report([0, 1, 2, 3, 4, 5], [0, 1, 2, 0, 4, 0], groups, n_bootstrap=0)
    assert report["group"].tolist() == ["0 / f", "0 / m", "5 / f", "5 / m"]
    assert report["skin_tone"].tolist() == ["0", "0", "5", "5"] and report["gender"].tolist() == ["f", "m", "f", "m"]
    assert report["n"].tolist() == [2, 1, 1, 2]
    assert report["accuracy"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert report.attrs["summary"]["worst_group"] == "5 / m"
    assert math.isnan(report.loc[0, "recall_angry"]) is False and math.isnan(report.loc[0, "recall_disgust"])


def test_label_group_bias_matches_hand_computed_npmi_and_nmi():
    bias = label_group_bias([0, 0, 1, 1], ["a", "a", "a", "b"], class_names=("x", "y"))
    assert bias.representation["n"].tolist() == [3, 1]
    assert bias.label_distribution.loc["a"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert bias.npmi.loc["a", "x"] == pytest.approx(math.log(4 / 3) / math.log(2))
    assert bias.npmi.loc["a", "y"] == pytest.approx(math.log(2 / 3) / math.log(4))
    assert bias.npmi.loc["b", "x"] == -1.0
    assert bias.npmi.loc["b", "y"] == pytest.approx(0.5)
    h_group = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    h_joint = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    mutual = h_group + math.log(2) - h_joint
    assert bias.summary["nmi"] == pytest.approx(2 * mutual / (h_group + math.log(2)))
    assert bias.summary["evenness"] == pytest.approx(h_group / math.log(2))
    assert bias.summary["effective_groups"] == pytest.approx(math.exp(h_group))
    assert bias.summary["smallest_share"] == 0.25 and bias.summary["max_abs_npmi"] == 1.0
    metrics = pytest.importorskip("sklearn.metrics")
    expected = metrics.normalized_mutual_info_score(["a", "a", "a", "b"], [0, 0, 1, 1])
    assert bias.summary["nmi"] == pytest.approx(expected)


def test_independent_labels_have_zero_association():
    bias = label_group_bias([0, 1, 0, 1], ["a", "a", "b", "b"], class_names=("x", "y"))
    assert np.allclose(bias.npmi.to_numpy(), 0.0) and bias.summary["nmi"] == pytest.approx(0.0)
    assert bias.summary["evenness"] == pytest.approx(1.0)


def test_dataset_groups_reads_synthfer_subsets_and_metas():
    data = SynthFER("train", 40, seed=0, cache=False)
    tones = dataset_groups(data, "skin_tone")
    assert tones.tolist() == [data[i][2]["group"]["skin_tone"] for i in range(len(data))]
    subset = LabelledSubset(data, [3, 1])
    assert dataset_groups(subset, "gender").tolist() == [data[3][2]["group"]["gender"], data[1][2]["group"]["gender"]]
    both = dataset_groups(data, ["skin_tone", "age"])
    assert list(both.columns) == ["skin_tone", "age"] and len(both) == 40
    bias = dataset_bias(data, "gender")
    assert bias.representation["n"].sum() == 40 and list(bias.npmi.columns) == list(ferlib.EMOTIONS)
    with pytest.raises(KeyError, match="height"):
        dataset_groups(data, "height")
    with pytest.raises(KeyError, match="no group attribute 'tone'"):
        dataset_groups(_GroupedBlobs(8), "tone")


def test_group_sample_weights_balance_groups_classes_and_cells():
    assert group_sample_weights(["a", "a", "a", "b"]).tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2])
    assert group_sample_weights(labels=[0, 1, 1, 1]).tolist() == pytest.approx([2, 2 / 3, 2 / 3, 2 / 3])
    cells = group_sample_weights(["a", "a", "b", "b"], labels=[0, 0, 0, 1])
    assert cells.tolist() == pytest.approx([2 / 3, 2 / 3, 4 / 3, 4 / 3]) and cells.mean() == pytest.approx(1.0)


class _GroupedBlobs(Dataset):
    """BlobFaces with a group per sample (``meta["group"]["site"]``): ``minority`` of them in group "b".

    ``hard=True`` gives group b random labels: no model of the textures can fit them, so group b's
    loss stays the highest.
    """

    def __init__(self, n=160, minority=0.1, hard=False, seed=0):
        self.blobs = BlobFaces(n, seed=seed)
        self.labels = self.blobs.labels
        self.groups = np.where((np.arange(n) // 4) % int(round(1 / minority)) == 0, "b", "a")  # all classes in b
        if hard:
            noisy = torch.from_numpy(self.groups == "b")
            random_labels = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(seed + 1))
            self.labels = torch.where(noisy, random_labels, self.labels)
        self.seen: list[int] = []

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        self.seen.append(index)
        x, _, meta = self.blobs[index]
        return x, int(self.labels[index]), {**meta, "group": {"site": self.groups[index]}}


def _model(seed=0):
    ferlib.seed_everything(seed)
    return ferlib.create_model("cnn_small", num_classes=4, in_channels=1, width=8)


def _fit(model, data, **kw):
    defaults = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "device": "cpu", "progress": False, "seed": 0}
    return ferlib.fit(model, data, **{**defaults, **kw})


def test_group_balanced_sampling_draws_groups_about_equally():
    data = _GroupedBlobs(400, minority=0.1)
    _fit(_model(), data, epochs=2, group_balance="sample", group_attribute="site")
    drawn = data.groups[np.asarray(data.seen[400:])]  # after the one pass that reads the groups
    assert len(drawn) == 800
    assert 0.42 < (drawn == "b").mean() < 0.58  # 10% of the data, half of the draws
    plain = _GroupedBlobs(400, minority=0.1)
    _fit(_model(), plain, epochs=1)
    assert (plain.groups[np.asarray(plain.seen)] == "b").mean() == pytest.approx(0.1)


def test_class_balanced_sampling_draws_classes_about_equally():
    data = _GroupedBlobs(400)
    keep = np.flatnonzero((data.labels.numpy() != 0) | (np.arange(400) % 40 == 0))  # class 0 rare
    subset = LabelledSubset(data, keep)
    assert (subset.labels == 0).mean() < 0.05
    _fit(_model(), subset, epochs=2, class_balance=True)
    drawn = data.labels.numpy()[np.asarray(data.seen)]
    assert np.allclose(np.bincount(drawn, minlength=4) / len(drawn), 0.25, atol=0.06)


def test_sampling_is_seeded_and_resumes():
    first, second = _GroupedBlobs(160), _GroupedBlobs(160)
    kw = {"group_balance": "sample", "group_attribute": "site", "epochs": 2}
    a, b = _fit(_model(), first, **kw), _fit(_model(), second, **kw)
    assert first.seen == second.seen and [r["train_loss"] for r in a.epochs] == [r["train_loss"] for r in b.epochs]


def test_reweighting_changes_the_loss_and_keeps_the_plain_path():
    plain = _fit(_model(), _GroupedBlobs(160, hard=True), epochs=1)
    weighted = _fit(_model(), _GroupedBlobs(160, hard=True), epochs=1, group_balance="reweight", group_attribute="site")
    assert plain.epochs[0]["train_loss"] != weighted.epochs[0]["train_loss"]
    assert "group_weights" not in plain.epochs[0]


def test_group_dro_upweights_the_worst_group_and_resumes(tmp_path):
    data = _GroupedBlobs(160, minority=0.25, hard=True)  # group b's labels are random
    settings = {"epochs": 4, "group_balance": "dro", "group_attribute": "site", "dro_step": 0.05, "restore_best": False}
    history = _fit(_model(), data, checkpoint_dir=tmp_path / "full", **settings)
    weights = [r["group_weights"] for r in history.epochs]
    assert weights[-1]["b"] > weights[0]["b"] > 0.5  # started at 0.5, grows every epoch
    assert sum(weights[-1].values()) == pytest.approx(1.0)

    full = _model()
    _fit(full, data, **settings)
    cut = _model()

    def stop(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(cut, data, checkpoint_dir=tmp_path / "cut", callbacks=[stop], **settings)
    resumed = _model(seed=5)
    again = _fit(resumed, data, checkpoint_dir=tmp_path / "cut", resume=True, **settings)
    assert again.epochs[-1]["group_weights"] == history.epochs[-1]["group_weights"]
    for name, tensor in full.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_group_dro_on_a_toy_loss():
    dro = GroupDRO(2, step=1.0)
    losses = torch.tensor([0.1, 0.1, 2.0], requires_grad=True)
    robust = dro.loss(losses, torch.tensor([0, 0, 1]))
    q = torch.softmax(torch.tensor([0.1, 2.0]), 0)  # uniform start times exp(step * group loss)
    assert torch.allclose(dro.q, q) and robust.item() == pytest.approx(float(q[0] * 0.1 + q[1] * 2.0))
    robust.backward()
    assert losses.grad[2] > losses.grad[0]


def test_bad_group_options_name_the_problem():
    data = _GroupedBlobs(32)
    with pytest.raises(ValueError, match="unknown group_balance"):
        _fit(_model(), data, group_balance="oversample", group_attribute="site")
    with pytest.raises(ValueError, match="needs group_attribute"):
        _fit(_model(), data, group_balance="dro")
    with pytest.raises(KeyError, match="no group attribute 'age'"):
        _fit(_model(), data, group_balance="reweight", group_attribute="age")
