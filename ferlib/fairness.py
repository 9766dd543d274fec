"""Fairness across demographic groups: per-group metrics and dataset bias (an analysis: it measures).

The remedies that ``fit`` applies to a gap (group reweighting, group-balanced sampling, group DRO)
are training objects in :mod:`ferlib.engine.losses`; reading a dataset's groups is
:mod:`ferlib.data.groups`. Both are re-exported here for convenience.

Groups come from ``meta["group"][attribute]`` of each sample (:func:`dataset_groups`); SynthFER
records skin tone, age and gender presentation, and real datasets read them from a
``groups.csv`` (ImageFolder) or their attribute files. :func:`group_report` uses fairlearn's
``MetricFrame`` when fairlearn is installed (``pip install ferlib[fair]``) and the same
computation in numpy when it is not.

Examples
--------
>>> report = group_report([0, 1, 1, 0], [0, 1, 0, 0], ["a", "a", "b", "b"], n_bootstrap=0)
>>> report[["group", "n", "accuracy"]].to_dict("list")
{'group': ['a', 'b'], 'n': [2, 2], 'accuracy': [1.0, 0.5]}
>>> report.attrs["summary"]["accuracy_gap"]
0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ferlib.data.groups import SEPARATOR as _SEPARATOR
from ferlib.data.groups import as_groups as _as_groups
from ferlib.data.groups import dataset_groups, group_key, group_sample_weights
from ferlib.data.labels import EMOTIONS
from ferlib.engine.losses import GroupDRO
from ferlib.engine.metrics import confusion_matrix, metrics_from_confusion

__all__ = [
    "DatasetBias",
    "GroupDRO",
    "group_key",
    "dataset_bias",
    "dataset_groups",
    "group_report",
    "group_sample_weights",
    "label_group_bias",
]



# ---------------------------------------------------------------------------------------------
# Per-group metrics


def _class_names(num_classes: int, class_names) -> list[str]:
    if class_names is not None:
        return [str(c) for c in class_names]
    if num_classes == len(EMOTIONS):
        return list(EMOTIONS)
    return [str(k) for k in range(num_classes)]


def _by_group_numpy(y_true, y_pred, keys, order, num_classes: int, names: list[str]) -> pd.DataFrame:
    rows = []
    for key in order:
        mask = keys == key
        confusion = confusion_matrix(y_true[mask], y_pred[mask], num_classes)
        metrics = metrics_from_confusion(confusion)
        support = confusion.sum(1)
        recall = np.divide(np.diagonal(confusion), support, out=np.full(num_classes, np.nan), where=support > 0)
        rows.append(
            {
                "n": int(mask.sum()),
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                **{f"recall_{name}": float(r) for name, r in zip(names, recall, strict=True)},
            }
        )
    return pd.DataFrame(rows, index=pd.Index(order, name="group"))


def _by_group_fairlearn(y_true, y_pred, keys, order, num_classes: int, names: list[str]) -> pd.DataFrame:
    from fairlearn.metrics import MetricFrame

    def accuracy(t, p):
        return float(np.mean(np.asarray(t) == np.asarray(p)))

    def macro_f1(t, p):
        return metrics_from_confusion(confusion_matrix(t, p, num_classes))["macro_f1"]

    def recall_of(k):
        def recall(t, p):
            t = np.asarray(t)
            return float(np.mean(np.asarray(p)[t == k] == k)) if (t == k).any() else float("nan")

        return recall

    metrics = {"n": lambda t, p: len(t), "accuracy": accuracy, "macro_f1": macro_f1}
    metrics.update({f"recall_{name}": recall_of(k) for k, name in enumerate(names)})
    frame = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=pd.Series(keys, name="group"))
    by_group = frame.by_group.reindex(order)
    by_group.index.name = "group"
    return by_group.astype({"n": int})


def _rates(y_true, y_pred, keys, order, k: int) -> tuple[np.ndarray, np.ndarray]:
    """True- and false-positive rates of class ``k`` (one-vs-rest) in each group (NaN where undefined)."""
    tpr, fpr = [], []
    for key in order:
        mask = keys == key
        positive, predicted = y_true[mask] == k, y_pred[mask] == k
        tpr.append(predicted[positive].mean() if positive.any() else np.nan)
        fpr.append(predicted[~positive].mean() if (~positive).any() else np.nan)
    return np.asarray(tpr, dtype=float), np.asarray(fpr, dtype=float)


def _spread(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.max() - values.min()) if len(values) > 1 else 0.0


def group_report(
    y_true,
    y_pred,
    groups,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    use_fairlearn: bool | None = None,
) -> pd.DataFrame:
    """Accuracy, macro-F1 and per-class recall of each group, with bootstrap intervals, and the gaps.

    Parameters
    ----------
    y_true, y_pred : class ids of each sample.
    groups : each sample's group: an array or Series, or a DataFrame with one column per attribute
        (two columns give the intersections, e.g. skin tone x gender; the row keys join the values
        with ``" / "`` and the attribute columns are kept).
    n_bootstrap : resamples (within each group) for the percentile intervals of accuracy, the
        worst-group accuracy and the accuracy gap; 0 skips them.
    use_fairlearn : compute the per-group table with fairlearn's ``MetricFrame`` (default: when
        installed); the numpy path gives the same numbers.

    Returns
    -------
    A DataFrame, one row per group (sorted): ``group``, the attribute column(s), ``n``, ``share``,
    ``accuracy``, ``accuracy_ci_low``, ``accuracy_ci_high``, ``macro_f1``, ``recall_<class>`` (NaN
    for a class absent from the group). ``report.attrs["summary"]`` holds the overall accuracy,
    ``worst_group``, ``worst_group_accuracy``, ``best_group_accuracy``, ``accuracy_gap`` (best minus
    worst), ``accuracy_ratio`` (worst over best), ``macro_f1_gap``, their intervals, and
    ``equalized_odds_difference`` (the largest over classes); ``report.attrs["equalized_odds"]``
    gives it per class: for class k one-vs-rest, the larger of the spreads (max minus min over
    groups) of the true-positive rate and of the false-positive rate, as fairlearn's
    ``equalized_odds_difference``.
    """
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    keys, columns = _as_groups(groups)
    if not (len(y_true) == len(y_pred) == len(keys)):
        raise ValueError(f"y_true, y_pred and groups differ in length: {len(y_true)}, {len(y_pred)}, {len(keys)}")
    if len(y_true) == 0:
        raise ValueError("nothing to report: no samples")
    if num_classes is None:
        top = int(max(y_true.max(), y_pred.max())) + 1
        num_classes = len(class_names) if class_names is not None else (len(EMOTIONS) if top <= len(EMOTIONS) else top)
    names = _class_names(num_classes, class_names)
    order = sorted(set(keys.tolist()), key=_natural)
    if use_fairlearn is None:
        try:
            import fairlearn  # noqa: F401

            use_fairlearn = True
        except ImportError:
            use_fairlearn = False
    by_group = (_by_group_fairlearn if use_fairlearn else _by_group_numpy)(
        y_true, y_pred, keys, order, num_classes, names
    )

    report = by_group.reset_index()
    if isinstance(groups, pd.DataFrame) and len(columns) > 1:
        parts = pd.DataFrame([key.split(_SEPARATOR) for key in order], columns=columns)
        for position, column in enumerate(columns):
            report.insert(1 + position, column, parts[column])
    report.insert(report.columns.get_loc("n") + 1, "share", report["n"] / len(y_true))

    accuracy = report["accuracy"].to_numpy(dtype=float)
    summary = {
        "n": int(len(y_true)),
        "groups": len(order),
        "overall_accuracy": float(np.mean(y_true == y_pred)),
        "worst_group": order[int(np.argmin(accuracy))],
        "worst_group_accuracy": float(accuracy.min()),
        "best_group": order[int(np.argmax(accuracy))],
        "best_group_accuracy": float(accuracy.max()),
        "accuracy_gap": float(accuracy.max() - accuracy.min()),
        "accuracy_ratio": float(accuracy.min() / accuracy.max()) if accuracy.max() > 0 else float("nan"),
        "macro_f1_gap": float(report["macro_f1"].max() - report["macro_f1"].min()),
    }
    if n_bootstrap > 0:
        # Resampling the n_g samples of a group with replacement draws its correct count from
        # Binomial(n_g, accuracy_g): exact, and a thousand resamples cost nothing.
        rng = np.random.default_rng(seed)
        counts = report["n"].to_numpy()
        draws = rng.binomial(counts[None, :], accuracy[None, :], size=(n_bootstrap, len(order))) / counts[None, :]
        tail = (1.0 - level) / 2 * 100
        low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
        report.insert(report.columns.get_loc("accuracy") + 1, "accuracy_ci_low", low)
        report.insert(report.columns.get_loc("accuracy_ci_low") + 1, "accuracy_ci_high", high)
        for name, values in (("worst_group_accuracy", draws.min(1)), ("accuracy_gap", draws.max(1) - draws.min(1))):
            summary[f"{name}_ci_low"], summary[f"{name}_ci_high"] = (
                float(v) for v in np.percentile(values, [tail, 100 - tail])
            )
    equalized = {}
    for k, name in enumerate(names):
        tpr, fpr = _rates(y_true, y_pred, keys, order, k)
        equalized[name] = max(_spread(tpr), _spread(fpr))
    summary["equalized_odds_difference"] = max(equalized.values())
    summary["equalized_odds_worst_class"] = max(equalized, key=equalized.get)
    report.attrs["summary"] = summary
    report.attrs["equalized_odds"] = equalized
    return report


def _natural(key: str):
    """Sort numbers numerically and before words, so skin tones 0-5 and "10" order as expected."""
    parts = key.split(_SEPARATOR)
    return tuple((0, float(p), "") if _is_number(p) else (1, 0.0, p) for p in parts)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Dataset bias


@dataclass
class DatasetBias:
    """What :func:`dataset_bias` returns; every field is a pandas object."""

    representation: pd.DataFrame  # group, n, share
    label_distribution: pd.DataFrame  # rows: groups, columns: classes, each row sums to 1
    npmi: pd.DataFrame  # rows: groups, columns: classes, normalized PMI in [-1, 1]
    summary: pd.Series  # groups, smallest_share, effective_groups, evenness, nmi, max_abs_npmi


def label_group_bias(labels, groups, class_names: Sequence[str] | None = None) -> DatasetBias:
    """Representation of the groups and how labels depend on group, from two label arrays.

    After the FER dataset-bias metrics of Dominguez-Catena et al.: *representational* bias is the
    group shares, their effective number ``exp(H(G))`` and evenness ``H(G) / log(#groups)``
    (1 = equal shares); *stereotypical* bias is the association of group and label, as the
    normalized pointwise mutual information of each (group, label) pair,
    ``npmi = log(p(g, y) / (p(g) p(y))) / -log p(g, y)`` (0 = independent, 1 = the label occurs
    only with that group and vice versa, -1 = never together), and the normalized mutual
    information ``NMI = 2 I(G; Y) / (H(G) + H(Y))`` over the whole table.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    keys, _ = _as_groups(groups)
    if len(labels) != len(keys) or len(labels) == 0:
        raise ValueError(f"labels and groups must be non-empty and of one length: {len(labels)} vs {len(keys)}")
    num_classes = len(class_names) if class_names is not None else max(int(labels.max()) + 1, len(EMOTIONS))
    names = _class_names(num_classes, class_names)
    order = sorted(set(keys.tolist()), key=_natural)
    counts = pd.crosstab(pd.Categorical(keys, categories=order), pd.Categorical(labels, categories=range(num_classes)))
    counts.index, counts.columns = pd.Index(order, name="group"), pd.Index(names, name="class")
    joint = counts.to_numpy(dtype=float) / len(labels)
    p_group, p_label = joint.sum(1), joint.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(joint / np.outer(p_group, p_label))
        npmi = np.where(joint > 0, pmi / -np.log(joint), -1.0)
    npmi = np.where(joint >= 1.0, 1.0, npmi)  # one group and one label: perfectly associated
    npmi[:, p_label == 0] = np.nan  # a class absent from the data has no association

    def entropy(p):
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    h_group, h_label = entropy(p_group), entropy(p_label)
    mutual = h_group + h_label - entropy(joint.ravel())
    representation = pd.DataFrame({"group": order, "n": counts.sum(axis=1).to_numpy(), "share": p_group})
    summary = pd.Series(
        {
            "groups": len(order),
            "smallest_share": float(p_group.min()),
            "effective_groups": float(np.exp(h_group)),
            "evenness": h_group / np.log(len(order)) if len(order) > 1 else 1.0,
            "nmi": 2 * mutual / (h_group + h_label) if h_group + h_label > 0 else 0.0,
            "max_abs_npmi": float(np.nanmax(np.abs(npmi))),
        }
    )
    return DatasetBias(
        representation=representation,
        label_distribution=counts.div(counts.sum(axis=1), axis=0),
        npmi=pd.DataFrame(npmi, index=counts.index, columns=counts.columns),
        summary=summary,
    )


def dataset_bias(dataset, attribute: str | Sequence[str]) -> DatasetBias:
    """:func:`label_group_bias` of a dataset's labels and its ``attribute`` groups (see :func:`dataset_groups`)."""
    from ferlib.data.splits import dataset_labels

    return label_group_bias(
        dataset_labels(dataset), dataset_groups(dataset, attribute), getattr(dataset, "class_names", None)
    )
