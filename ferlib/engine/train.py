"""``fit``: the one training loop every model family uses.

Determinism: each epoch reseeds the shuffle order and the global RNG from ``(seed, epoch)``,
so two CPU runs with the same seed give identical numbers, and a run resumed from the
checkpoint of epoch k continues exactly as the uninterrupted run would have.
Distributed: under ``torchrun`` or ``accelerate launch`` (``WORLD_SIZE`` > 1) the same loop
runs through Hugging Face Accelerate, DDP underneath.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ferlib.data.loader import make_loader
from ferlib.data.splits import dataset_labels
from ferlib.data.transforms import center_crop, crop_size, random_crops
from ferlib.engine.backend import Backend
from ferlib.engine.losses import GROUP_BALANCE, GroupLoss
from ferlib.engine.metrics import metrics_from_confusion
from ferlib.engine.remedies import Adversary, balanced_sample_weights, batch_augmentation
from ferlib.errors import ConfigError
from ferlib.models.base import forward_kwargs
from ferlib.models.checkpoint import read_checkpoint, save_checkpoint
from ferlib.runtime import resolve_device

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "constant")
_LOWER_IS_BETTER = ("loss",)


@dataclass
class History:
    """What ``fit`` returns: one record per epoch plus the run's summary."""

    epochs: list[dict] = field(default_factory=list)
    monitor: str = "val_accuracy"
    best_epoch: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False
    train_time_s: float = 0.0

    def to_frame(self):
        """The epoch records as a pandas DataFrame (one row per epoch)."""
        import pandas as pd

        return pd.DataFrame(self.epochs)

    @property
    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def to_dict(self) -> dict:
        return asdict(self)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % (2**63)


def class_weights_for(data, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights ``n / (K * count_k)`` over the K classes present (scikit-learn's
    ``"balanced"``); an absent class gets weight 0."""
    labels = dataset_labels(data.dataset if isinstance(data, DataLoader) else data)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = max(int((counts > 0).sum()), 1)
    weights = np.where(counts > 0, counts.sum() / (present * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def _make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float):
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (is every layer frozen?)")
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    raise ConfigError.unknown("optimizer", name, OPTIMIZERS)


def _make_schedule(optimizer, name: str | None, lr: float, total_steps: int):
    if name in (None, "constant"):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(total_steps, 1))
    raise ConfigError.unknown("schedule", name, SCHEDULES)


def _progress(iterable, enabled: bool, **kwargs):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, leave=False, **kwargs)


def _check_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ValueError("a batch must be (x, y) or (x, y, meta)")
    x, y = batch[0], batch[1]
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"labels must have shape [B] matching the inputs, got {list(y.shape)} for {list(x.shape)}")
    return x, y


def _resume_path(resume: bool | str | Path, checkpoint_dir: Path | None) -> Path | None:
    """The checkpoint ``fit(resume=...)`` continues from: ``checkpoint_dir/last.ckpt`` if it exists
    (``resume=True``), the path given, or ``None`` (start afresh)."""
    if resume is True:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir (or pass the checkpoint path as resume)")
        candidate = checkpoint_dir / "last.ckpt"
        return candidate if candidate.exists() else None
    return Path(resume) if resume else None


def _monitor_is_better(monitor: str, value: float | None, best: float | None) -> bool:
    if monitor == "last":  # no selection: the latest epoch is the best
        return True
    if best is None or math.isnan(best):
        return not math.isnan(value)
    lower = any(word in monitor for word in _LOWER_IS_BETTER)
    return value < best if lower else value > best


def fit(
    model: nn.Module,
    train_data,
    val_data=None,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    optimizer: str = "adamw",
    weight_decay: float = 1e-4,
    momentum: float = 0.9,
    schedule: str | None = "cosine",
    label_smoothing: float = 0.0,
    class_weights: str | Sequence[float] | torch.Tensor | None = None,
    grad_clip: float | None = None,
    mixed_precision: str = "auto",
    channels_last: bool = False,
    early_stopping: int | None = None,
    monitor: str = "val_accuracy",
    restore_best: bool = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool | str | Path = False,
    seed: int = 0,
    device: str | torch.device = "auto",
    num_workers: int = 0,
    progress: bool = True,
    callbacks: Sequence[Callable[[dict], None]] = (),
    group_balance: str | None = None,
    group_attribute: str | Sequence[str] | None = None,
    class_balance: bool = False,
    dro_step: float = 0.01,
    augment: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    adversarial: str | None = None,
    adversarial_eps: float = 8 / 255,
    adversarial_steps: int = 5,
    crop: float | None = None,
) -> History:
    """Train ``model`` on ``train_data`` and return its :class:`History`.

    Parameters
    ----------
    model : any ferlib model (or ``nn.Module`` returning logits ``[B, K]``). A model with an
        ``aux_loss(aux, metas, image_size)`` method (the multi-task CNN) also trains its auxiliary
        head: ``forward(x, return_aux=True)`` and the samples' ``meta`` (e.g. ``landmarks`` in
        pixels of the sample image) give the extra loss.
    train_data, val_data : datasets or loaders of ``(x, y)`` or ``(x, y, meta)``.
    epochs, batch_size, lr, weight_decay, momentum : the usual; ``optimizer`` is ``"adamw"`` or ``"sgd"``.
    schedule : ``"cosine"`` (default), ``"onecycle"`` or ``"constant"``; stepped every batch.
    label_smoothing : passed to the cross-entropy loss.
    class_weights : ``None``, ``"balanced"`` (inverse class frequency) or one weight per class.
    grad_clip : clip the global gradient norm to this value.
    mixed_precision : ``"auto"`` uses bf16 (or fp16 with loss scaling) on CUDA, nothing on CPU;
        ``"bf16"`` also autocasts to bfloat16 on the CPU (faster where the CPU has AVX512-BF16 or AMX).
    channels_last : train in the channels-last memory layout (4-D image batches), which oneDNN's
        CPU convolutions and tensor cores run faster; the weights' values are unchanged.
    early_stopping : stop after this many epochs without improvement of ``monitor``.
    monitor : ``"val_accuracy"``, ``"val_balanced_accuracy"``, ``"val_macro_f1"`` or ``"val_loss"``
        (without ``val_data``, the training accuracy or loss), or ``"last"``: no selection, each
        epoch replaces the previous one as the best (a fixed schedule trained on all the data).
    restore_best : load the best epoch's weights (by ``monitor``) into ``model`` at the end.
    checkpoint_dir : write ``last.ckpt`` after every epoch and ``best.ckpt`` on improvement.
    resume : ``True`` resumes from ``checkpoint_dir/last.ckpt`` when it exists, or give a path.
    seed : seeds shuffling, dropout and augmentation; create the model after
        :func:`ferlib.seed_everything` for identical initial weights too.
    device : ``"auto"`` (CUDA, MPS, CPU), or a device name.
    callbacks : functions called with each epoch's record, after it is stored.
    group_balance : mitigate a gap between the ``group_attribute`` groups of ``meta["group"]``:
        ``"reweight"`` weights each sample's loss by ``n / (G * n_g)`` (inverse group frequency),
        ``"sample"`` draws batches with a ``WeightedRandomSampler`` that makes groups equally
        likely, ``"dro"`` is group DRO (Sagawa et al. 2020): exponentiated-gradient weights over
        the groups' losses with step size ``dro_step``; its group weights are stored in each
        epoch's record (``group_weights``). ``None`` (default) trains plainly.
    group_attribute : the attribute (or a list of attributes, for their intersections) whose
        groups ``group_balance`` balances; see :func:`ferlib.data.groups.dataset_groups`.
    class_balance : draw batches with a sampler that makes classes equally likely (with
        ``group_balance="sample"``: every (group, class) cell).
    augment : a callable ``x -> x`` applied to each training batch on the device (float in
        [0, 1]), or the name of a :func:`ferlib.data.augment.augmentation_policy`:
        ``"trivialaugment"``, ``"randaugment"``, ``"random_erasing"``, ``"occlusion"`` or
        ``"affine"``, or several joined by ``+`` (``"affine+random_erasing"``); see
        :mod:`ferlib.engine.remedies`, which builds this and the other remedies as objects.
    adversarial : adversarial training on L-infinity examples of radius ``adversarial_eps`` (in
        [0, 1] pixel units; 8/255 by default): ``"fgsm"`` is FGSM from a random start, step
        1.25 eps (Wong et al. 2020, "fast is better than free"), ``"pgd"`` is PGD with
        ``adversarial_steps`` steps (Madry et al. 2018). Each batch is replaced by its
        adversarial version (after ``augment``), crafted with the model in eval mode; ``None``
        (default) trains on clean batches. Both are recorded in the run config of checkpoints.
    crop : the crop protocol of the FER literature: each training image is a random crop of
        this fraction of its side (``0.8333``: 40x40 crops of 48x48 images; before ``augment``),
        and validation uses the centre crop. Recorded in the run config of checkpoints
        (``crop``), where :func:`ferlib.evaluate`'s callers and ``ferlib predict`` find it;
        ``input_shape`` stays the uncropped shape. ``None`` (default) trains on whole images.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from ferlib import create_model, fit
    >>> data = TensorDataset(torch.rand(32, 1, 48, 48), torch.randint(0, 7, (32,)))
    >>> history = fit(create_model("cnn_small"), data, epochs=1, progress=False, device="cpu")
    >>> len(history.epochs)
    1
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if monitor.startswith("val_") and val_data is None:
        monitor = monitor.replace("val_", "train_", 1) if monitor in ("val_accuracy", "val_loss") else "train_loss"
    augment_fn = batch_augmentation(augment)
    adversary = Adversary.from_options(adversarial, adversarial_eps, adversarial_steps)
    if group_balance not in GROUP_BALANCE:
        raise ConfigError.unknown("group_balance", group_balance, [str(g) for g in GROUP_BALANCE])
    if group_balance is not None and group_attribute is None:
        raise ValueError(f"group_balance={group_balance!r} needs group_attribute (e.g. 'skin_tone')")
    if crop is not None:
        crop_size(crop, (1, 1))  # validates the fraction before any work
    engine = Backend(resolve_device(device), mixed_precision)
    device = engine.device
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    if (group_balance is not None or class_balance) and isinstance(train_data, DataLoader):
        raise ValueError("group_balance and class_balance need a Dataset, not a DataLoader, as train_data")
    sample_weights = None
    if group_balance == "sample" or class_balance:
        sample_weights = balanced_sample_weights(
            train_data, group_attribute if group_balance == "sample" else None, class_balance
        )
    pin = device.type == "cuda"
    for data in (train_data, val_data):
        if data is not None and not isinstance(data, DataLoader) and hasattr(data, "__len__") and len(data) == 0:
            raise ValueError("the dataset is empty")
    train_loader = make_loader(
        train_data, batch_size, shuffle=True, num_workers=num_workers, pin_memory=pin, sample_weights=sample_weights
    )
    val_loader = (
        make_loader(val_data, max(batch_size, 256), num_workers=num_workers, pin_memory=pin)
        if val_data is not None
        else None
    )
    num_classes = getattr(model, "num_classes", None)
    weights = None
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"class_weights must be None, 'balanced' or a sequence, got {class_weights!r}")
        if num_classes is None:
            raise ValueError("class_weights='balanced' needs model.num_classes")
        weights = class_weights_for(train_data, num_classes)
    elif class_weights is not None:
        weights = torch.as_tensor(class_weights, dtype=torch.float32)
    criterion = nn.CrossEntropyLoss(
        weight=weights.to(device) if weights is not None else None, label_smoothing=label_smoothing
    )
    group_loss = None  # per-sample losses -> one loss, when the groups weigh in
    if group_balance in ("reweight", "dro"):
        group_loss = GroupLoss(
            train_data,
            group_attribute,
            group_balance,
            weight=weights.to(device) if weights is not None else None,
            label_smoothing=label_smoothing,
            dro_step=dro_step,
            device=device,
            reduce=engine.reduce_sum,
        )

    optim = _make_optimizer(model, optimizer, lr, weight_decay, momentum)
    steps_per_epoch = math.ceil(len(train_loader) / engine.world_size)
    scheduler = _make_schedule(optim, schedule, lr, steps_per_epoch * epochs)

    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    history, start_epoch, stale_epochs, best_state = History(monitor=monitor), 0, 0, None
    resume_path = _resume_path(resume, checkpoint_dir)
    if resume_path is not None:
        state = read_checkpoint(resume_path)
        if "optimizer" not in state:
            raise ValueError(f"{resume_path} holds no training state to resume from (was it a best.ckpt?)")
        model.load_state_dict(state["state_dict"])
        optim.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if engine.scaler is not None and state.get("scaler"):
            engine.scaler.load_state_dict(state["scaler"])
        saved = state["history"]
        history = History(**{**saved, "epochs": list(saved["epochs"])})
        start_epoch = int(state["epoch"])
        if group_loss is not None and history.epochs:
            group_loss.restore(history.epochs[-1])
        stale_epochs = int(state.get("stale_epochs", 0))
        if history.best_epoch is not None and checkpoint_dir is not None and (checkpoint_dir / "best.ckpt").exists():
            best_state = read_checkpoint(checkpoint_dir / "best.ckpt")["state_dict"]

    if val_loader is not None:
        model, optim, train_loader, scheduler, val_loader = engine.prepare(
            model, optim, train_loader, scheduler, val_loader
        )
    else:
        model, optim, train_loader, scheduler = engine.prepare(model, optim, train_loader, scheduler)
    base_model = engine.unwrap(model)
    aux_loss = getattr(base_model, "aux_loss", None)
    run_config = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "schedule": schedule,
        "label_smoothing": label_smoothing,
        "grad_clip": grad_clip,
        "seed": seed,
        "input_shape": None,  # one sample's shape, from the first batch; ``ferlib predict`` sizes crops by it
    }
    if crop is not None:
        run_config["crop"] = crop
    if augment is not None:
        run_config["augment"] = augment if isinstance(augment, str) else getattr(augment, "__name__", "callable")
    if adversary is not None:
        run_config.update(adversary.config())
    if group_balance is not None or class_balance:
        run_config.update(
            group_balance=group_balance, group_attribute=group_attribute, class_balance=class_balance, dro_step=dro_step
        )

    started = time.perf_counter() - history.train_time_s
    for epoch in range(start_epoch, epochs):
        epoch_seed = _epoch_seed(seed, epoch)
        torch.manual_seed(epoch_seed)
        generator = getattr(train_loader, "generator", None)
        if isinstance(generator, torch.Generator):
            generator.manual_seed(epoch_seed)
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        tick = time.perf_counter()
        bar = _progress(train_loader, progress and engine.is_main, desc=f"epoch {epoch + 1}/{epochs}")
        for batch in bar:
            x, y = _check_batch(batch)
            metas = batch[2] if len(batch) == 3 else None
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if run_config["input_shape"] is None:
                run_config["input_shape"] = [int(v) for v in x.shape[1:]]
            if crop is not None:
                x = random_crops(x, crop_size(crop, x.shape))
            if augment_fn is not None:
                x = augment_fn(x)
            if adversary is not None:
                x = adversary(model, x, y)
            if channels_last and x.dim() == 4:  # after augmentation, which may return the default layout
                x = x.contiguous(memory_format=torch.channels_last)
            with engine.autocast():
                if group_loss is None:
                    if aux_loss is not None and metas is not None:
                        logits, aux = model(x, return_aux=True)
                        loss = criterion(logits, y) + aux_loss(aux, metas, image_size=tuple(x.shape[-2:]))
                    else:
                        logits = model(x, **forward_kwargs(model, x, metas))
                        loss = criterion(logits, y)
                else:
                    if metas is None:
                        raise ValueError(f"group_balance={group_balance!r} needs samples (x, y, meta['group'])")
                    if aux_loss is not None:
                        logits, aux = model(x, return_aux=True)
                        loss = group_loss(logits, y, metas) + aux_loss(aux, metas, image_size=tuple(x.shape[-2:]))
                    else:
                        logits = model(x, **forward_kwargs(model, x, metas))
                        loss = group_loss(logits, y, metas)
            optim.zero_grad(set_to_none=True)
            engine.backward(loss)
            if grad_clip is not None:
                engine.clip(model, optim, grad_clip)
            engine.step(optim)
            scheduler.step()
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.shape[0]
        if not math.isfinite(float(loss_sum)):
            raise FloatingPointError(
                f"training loss became {float(loss_sum)} in epoch {epoch + 1}: lower lr or set grad_clip"
            )
        totals = engine.reduce_sum(
            torch.stack([loss_sum, correct.to(loss_sum.dtype), torch.tensor(float(seen), device=device)])
        )
        train_seconds = time.perf_counter() - tick
        record = {
            "epoch": epoch + 1,
            "lr": optim.param_groups[0]["lr"],
            "train_loss": float(totals[0] / totals[2]),
            "train_accuracy": float(totals[1] / totals[2]),
            "epoch_time_s": train_seconds,
            "samples_per_s": float(totals[2]) / max(train_seconds, 1e-9),
        }
        if group_loss is not None:
            record.update(group_loss.record())
        if val_loader is not None:
            record.update(_validate(model, val_loader, engine, num_classes, crop))
        history.epochs.append(record)
        history.train_time_s = time.perf_counter() - started

        value = None if monitor == "last" else record.get(monitor, float("nan"))
        improved = _monitor_is_better(monitor, value, history.best_metric)
        if improved:
            history.best_epoch, history.best_metric = epoch + 1, value
            stale_epochs = 0
            if restore_best and checkpoint_dir is None:
                best_state = copy.deepcopy(base_model.state_dict())
        else:
            stale_epochs += 1
        if checkpoint_dir is not None and engine.is_main:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            common = {"model": base_model, "history": history.to_dict(), "epoch": epoch + 1, "train_config": run_config}
            if improved:
                save_checkpoint(checkpoint_dir / "best.ckpt", **common)
            save_checkpoint(
                checkpoint_dir / "last.ckpt",
                **common,
                optimizer=optim.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=engine.scaler.state_dict() if engine.scaler is not None else None,
                stale_epochs=stale_epochs,
            )
        engine.wait()
        if progress and engine.is_main:
            shown = ", ".join(
                f"{k}={v:.4g}" for k, v in record.items() if k not in ("epoch", "lr") and isinstance(v, (int, float))
            )
            print(f"epoch {epoch + 1}/{epochs}: {shown}", flush=True)
        for callback in callbacks:
            callback(record)
        if early_stopping is not None and stale_epochs >= early_stopping:
            history.stopped_early = True
            break

    if restore_best and history.best_epoch is not None and history.best_epoch != len(history.epochs):
        if checkpoint_dir is not None:
            best_state = read_checkpoint(checkpoint_dir / "best.ckpt")["state_dict"]
        if best_state is not None:
            base_model.load_state_dict(best_state)
    return history


@torch.no_grad()
def _validate(model, loader, engine: Backend, num_classes: int | None, crop: float | None = None) -> dict:
    model.eval()
    device = engine.device
    losses, predictions, targets = [], [], []
    for batch in loader:
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        if crop is not None:
            x = center_crop(x, crop_size(crop, x.shape))
        with engine.autocast():
            logits = model(x, **forward_kwargs(model, x, batch[2] if len(batch) == 3 else None))
        losses.append(nn.functional.cross_entropy(logits.float(), y, reduction="none"))
        predictions.append(logits.argmax(1))
        targets.append(y)
    loss = engine.gather(torch.cat(losses)).float().cpu().numpy()
    y_pred = engine.gather(torch.cat(predictions)).cpu().numpy()
    y_true = engine.gather(torch.cat(targets)).cpu().numpy()
    k = num_classes or int(max(y_pred.max(), y_true.max()) + 1)
    confusion = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    metrics = metrics_from_confusion(confusion)
    return {
        "val_loss": float(loss.mean()),
        "val_accuracy": metrics["accuracy"],
        "val_balanced_accuracy": metrics["balanced_accuracy"],
        "val_macro_f1": metrics["macro_f1"],
    }
