"""One run from one config: data, model, training, evaluation and cost.

``ferlib train`` and ``ferlib bench`` both build a config (a plain, JSON-serialisable dict) and call
:func:`run_experiment`, so a single run and a grid run are configured and recorded the same way.

Config keys (see :data:`RUN_DEFAULTS` for the defaults): ``dataset``, ``data_dir``, ``task``,
``model``, ``model_options``, ``profile``, ``seed``; data options ``image_size`` and
``data_options`` (keywords of the dataset, e.g. ``frames`` or ``preset``) and ``sizes`` (``train``,
``val``, ``test`` sample counts overriding the profile's); fit options ``epochs`` (default: the
profile's), ``batch_size``, ``lr``, ``weight_decay``, ``optimizer``, ``schedule``,
``label_smoothing``, ``class_weights``, ``grad_clip``, ``augment``, ``early_stopping``,
``val_split`` (``val``, ``holdout`` or ``none``), ``holdout_fraction``, ``report_split`` and ``tta``
(and, only when given, ``mixed_precision``, ``channels_last``, ``crop``, the fraction of the
side of the random training crops, whose report is on the centre crop, or on ten crops with ``tta``,
and ``batch_augment``, a :func:`ferlib.robustness.augmentation_policy` applied to each training
batch after the ``augment`` preset and the crop);
cross-validation keys ``folds`` and ``fold`` (see :func:`fold_data`).
"""

from __future__ import annotations

from pathlib import Path

from ferlib.errors import ConfigError, DataError

FIT_DEFAULTS: dict = {
    "epochs": None,
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "optimizer": "adamw",
    "schedule": "cosine",
    "label_smoothing": 0.0,
    "class_weights": None,
    "grad_clip": None,
    "augment": "none",
    "early_stopping": None,
    "val_split": "val",
    "holdout_fraction": 0.1,
    "report_split": "test",
    "tta": False,
}

RUN_DEFAULTS: dict = {
    "dataset": "synthfer",
    "data_dir": None,
    "task": "static",
    "model": "cnn_small",
    "model_options": {},
    "profile": "quick",
    "image_size": None,
    "data_options": {},
    "sizes": {},
    "seed": 0,
    "folds": None,  # subject-independent K-fold cross-validation: K ...
    "fold": None,  # ... and the test fold I, 1 <= I <= K
    **FIT_DEFAULTS,
}

SIZE_KEYS = ("train", "val", "test")

#: Where checkpoints are selected: the dataset's ``val`` split, a stratified ``holdout`` of train,
#: or ``none``: the whole official train split trains and the last epoch is reported.
VAL_SPLITS = ("val", "holdout", "none")


def _option(config: dict, key: str):
    value = config.get(key, RUN_DEFAULTS.get(key))
    return dict(value) if isinstance(value, dict) else value


def config_split(config: dict, split: str, **kw):
    """The ``split`` of a run config's dataset at the profile's size; with ``config["sizes"][split]``,
    SynthFER is generated at that size and a real split is then capped to a stratified sample of it."""
    from ferlib.data.subsets import load_profile_split, stratified_cap

    options = _option(config, "data_options") or {}
    if config.get("image_size"):
        options["image_size"] = config["image_size"]
    dataset, seed = _option(config, "dataset"), _option(config, "seed")
    size = (_option(config, "sizes") or {}).get(split if split in SIZE_KEYS else "test")
    synthetic = dataset.lower() == "synthfer"
    data = load_profile_split(
        dataset,
        split,
        _option(config, "profile"),
        _option(config, "data_dir"),
        task=_option(config, "task"),
        seed=seed,
        size=size if synthetic else None,
        **options,
        **kw,
    )
    return data if size is None or synthetic else stratified_cap(data, int(size), seed)


def _fold_pool(config: dict, **kw):
    """The samples a cross-validation splits: the dataset's ``all`` split where it has one (CK+,
    folders), else its ``train`` split (SynthFER, whose splits hold disjoint identities)."""
    try:
        return config_split(config, "all", **kw)
    except DataError:
        raise
    except ValueError:  # no "all" split
        return config_split(config, "train", **kw)


def fold_data(config: dict, transform=None):
    """Train, selection and test parts of fold ``fold`` of a subject-independent ``folds``-fold
    cross-validation of the config's dataset.

    Folds are numbered from 1, as ``--shard``; every subject is in exactly one test fold, and the
    partition depends on ``seed`` only, so the K runs of one seed test every sample once. The
    selection (validation) part is a subject-independent ``holdout_fraction`` of the other folds:
    the test fold is never used to choose an epoch. ``val_split`` and ``report_split`` do not apply.
    Raises a ``ValueError`` if ``fold`` is out of range and a ``DataError`` if the samples have no
    subject ids (``meta["subject"]``) or fewer subjects than folds.
    """
    import numpy as np

    from ferlib.data.splits import (
        dataset_labels,
        dataset_subjects,
        subject_independent_kfold,
        subject_independent_split,
    )
    from ferlib.data.subsets import LabelledSubset
    k, fold = _option(config, "folds"), _option(config, "fold")
    if k is None or fold is None:
        raise ValueError(f"cross-validation needs both folds and fold (--folds K --fold I), got {k} and {fold}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"folds must be an integer >= 2, got {k!r}")
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 1 <= fold <= k:
        raise ValueError(f"fold must be between 1 and {k} (folds are numbered from 1), got {fold!r}")
    pool = _fold_pool(config)
    subjects = dataset_subjects(pool)
    if all(subject == f"#{i}" for i, subject in enumerate(subjects)):
        raise DataError(
            f"{_option(config, 'dataset')} has no subject ids (meta['subject']): a subject-independent "
            "cross-validation needs them (CK+ has them; FER2013 and RAF-DB do not)"
        )
    labels, seed = dataset_labels(pool), _option(config, "seed")
    train_index, test_index = list(subject_independent_kfold(labels, k=int(k), seed=seed, subjects=subjects))[fold - 1]
    fraction = _option(config, "holdout_fraction")
    parts = subject_independent_split(
        labels[train_index], (1.0 - fraction, fraction, 0.0), seed, subjects=subjects[train_index]
    )
    keep, held = train_index[parts["train"]], train_index[parts["val"]]
    source = _fold_pool(config, transform=transform) if transform is not None else pool
    return LabelledSubset(source, keep), LabelledSubset(pool, held), LabelledSubset(pool, test_index)


def training_data(config: dict, transform=None):
    """Train, selection and report splits, following ``val_split`` and ``report_split``, or
    the fold's parts (:func:`fold_data`) when the config sets ``folds`` or ``fold``.

    With ``val_split`` ``none`` the selection split is ``None`` and train is the whole official
    train split, even where the loader would carve its ``val`` out of it (FER2013 without
    PrivateTest, RAF-DB).
    """
    from ferlib.data.splits import dataset_labels
    from ferlib.data.subsets import LabelledSubset

    if _option(config, "folds") is not None or _option(config, "fold") is not None:
        return fold_data(config, transform)
    val_split = _option(config, "val_split")
    if val_split not in VAL_SPLITS:
        raise ConfigError.unknown("val_split", val_split, VAL_SPLITS)
    if val_split == "none":
        whole = {} if _option(config, "dataset").lower() == "synthfer" else {"val_fraction": 0.0}
        if transform is not None:
            whole["transform"] = transform
        train = config_split(config, "train", **whole)
        val = None
    elif val_split == "holdout":
        from ferlib.data.splits import stratified_holdout

        plain = config_split(config, "train")
        kept, held = stratified_holdout(
            dataset_labels(plain), _option(config, "holdout_fraction"), seed=_option(config, "seed")
        )
        augmented = config_split(config, "train", transform=transform) if transform is not None else plain
        train, val = LabelledSubset(augmented, kept), LabelledSubset(plain, held)
    else:
        train = config_split(config, "train", transform=transform)
        val = config_split(config, "val")
    report = config_split(config, _option(config, "report_split"))
    _check_report_split(config, report)
    return train, val, report


def _check_report_split(config: dict, report) -> None:
    """Refuse, before any training, a report split that is the selection split itself or that
    the loader carved out of the train split (a layout without that split, such as the FER2013
    copy without PrivateTest, whose ``val`` is then a hold-out of Training)."""
    split, dataset = _option(config, "report_split"), _option(config, "dataset")
    if split == "val" and _option(config, "val_split") == "val":
        raise DataError(
            "report_split 'val' is also the selection split (val_split 'val'): the checkpoint would be chosen on "
            "the split it reports; use val_split 'holdout' or report 'test'"
        )
    if getattr(report, "derived_from", None) is not None:
        protocol = getattr(report, "protocol", None) or f"part of the official {report.derived_from} split"
        raise DataError(
            f"report_split {split!r} of {dataset} at {_option(config, 'data_dir')} is not an official split but "
            f"{protocol.split(': ', 1)[-1]} (the layout lacks it): report 'test', which is the layout's official "
            "evaluation split"
        )


def _describe_split(data, result=None) -> dict:
    """What a split holds: its size, how the loader derived it (``protocol``, when it did) and,
    given its evaluation ``result``, its samples' official ``usage`` (FER2013's Training /
    PublicTest / PrivateTest) counted from their metadata, so that a record can name it."""
    from collections import Counter

    if data is None:  # val_split "none": nothing selected
        return None
    description = {"n": len(data), "protocol": getattr(data, "protocol", None)}
    if result is not None:
        metas = [meta for meta in result.meta or [] if isinstance(meta, dict)]
        description["usage"] = dict(Counter(meta["usage"] for meta in metas if meta.get("usage")))
    return description


def run_experiment(
    config: dict,
    *,
    device: str = "auto",
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    num_workers: int = 0,
    progress: bool = False,
    latency_runs: int = 0,
) -> dict:
    """Train and evaluate the run described by ``config``.

    Returns ``{"metrics", "cost", "device", "model", "history", "result", "splits", "is_main"}``: the
    metrics are the report split's summary (``test_accuracy``, ``test_macro_f1``, ... with 95%
    intervals) plus ``best_epoch`` and ``best_val``; ``splits`` says what the train, selection
    and report splits held (:func:`_describe_split`); the cost holds ``train_time_s`` and
    ``samples_per_s`` and, with ``latency_runs > 0``, ``parameters``, ``flops`` and the median
    batch-1 CPU ``latency_ms`` over that many forward passes. Under ``torchrun`` only the main
    process evaluates; the others return ``is_main=False`` and no metrics.

    The result of ``(metrics, cost, device)`` is what :meth:`ferlib.experiments.store.ResultsStore.run` stores.
    """
    from ferlib.config import get_profile
    from ferlib.data.labels import NUM_CLASSES
    from ferlib.engine import evaluate as evaluation
    from ferlib.engine import train as training
    from ferlib.engine.backend import is_main_process
    from ferlib.models.registry import create_model
    from ferlib.runtime import environment_info, resolve_device, seed_everything

    # not in RUN_DEFAULTS, so that stored configs keep their identity: see above
    optional = {"command", "latency_runs", "mixed_precision", "channels_last", "crop", "batch_augment"}
    unknown = sorted(set(config) - set(RUN_DEFAULTS) - optional)
    if unknown:
        raise ValueError(
            f"unknown run config key {unknown[0]!r}: expected one of {', '.join([*RUN_DEFAULTS, *sorted(optional)])}"
        )
    option = lambda key: _option(config, key)  # noqa: E731
    profile = get_profile(option("profile"))
    epochs = option("epochs") or profile.epochs
    seed = option("seed")
    transform = None
    if option("augment") != "none":
        from ferlib.data.augment import train_augmentation

        transform = train_augmentation(option("augment"))
    if config.get("batch_augment") is not None:  # an unknown name fails here, before the data loads
        from ferlib.data.augment import augmentation_policy

        augmentation_policy(config["batch_augment"])
    seed_everything(seed)
    train, val, report = training_data(config, transform)
    sample = train[0][0]
    channel_axis = 0 if sample.dim() == 3 else 1
    num_classes = getattr(train, "num_classes", None) or NUM_CLASSES
    model = create_model(
        option("model"), num_classes=num_classes, in_channels=int(sample.shape[channel_axis]), **option("model_options")
    )
    history = training.fit(
        model,
        train,
        val,
        epochs=epochs,
        batch_size=option("batch_size"),
        lr=option("lr"),
        weight_decay=option("weight_decay"),
        optimizer=option("optimizer"),
        schedule=option("schedule"),
        label_smoothing=option("label_smoothing"),
        class_weights=option("class_weights"),
        grad_clip=option("grad_clip"),
        early_stopping=option("early_stopping"),
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        seed=seed,
        device=device,
        num_workers=num_workers,
        progress=progress,
        # not default keys, so that stored configs keep their identity
        mixed_precision=config.get("mixed_precision", "auto"),
        channels_last=config.get("channels_last", False),
        crop=config.get("crop"),
        augment=config.get("batch_augment"),
        monitor="val_accuracy" if val is not None else "last",
    )
    out = {"model": model, "history": history, "result": None, "metrics": None, "cost": None, "device": None}
    out["is_main"] = is_main_process(resolve_device(device))  # the process's role under torchrun/accelerate
    if not out["is_main"]:
        return out
    crop, tta = config.get("crop"), option("tta")
    result = evaluation.evaluate(
        model, report, device=device, tta_flip=tta, crop=crop, tta_crops=bool(tta and crop), seed=seed
    )
    split = "test" if option("folds") is not None else option("report_split")
    summary = {f"{split}_{key}": value for key, value in result.summary().items()}
    metrics = {**summary, "best_epoch": history.best_epoch, "best_val": history.best_metric}
    cost = {"train_time_s": history.train_time_s, "samples_per_s": history.last.get("samples_per_s")}
    if latency_runs > 0:
        from ferlib.efficiency import model_cost

        cost.update(model_cost(model.to("cpu").eval(), tuple(sample.shape), latency_runs))
    environment = environment_info(device)
    out.update(result=result, metrics=metrics, cost=cost, device=environment["device_name"], environment=environment)
    out["splits"] = {"train": _describe_split(train), "selection": _describe_split(val),
                     "report": _describe_split(report, result)}
    return out
