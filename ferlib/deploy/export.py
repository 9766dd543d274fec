"""Deploy a model: ONNX export, ONNX Runtime inference and int8 quantisation.

    from ferlib.deploy.export import export_onnx, onnx_parity, OnnxModel, quantize_onnx
    path = export_onnx(model, "model.onnx", (1, 48, 48))    # dynamic batch axis
    onnx_parity(model, path, torch.rand(8, 1, 48, 48))      # max |logit difference|, ~1e-7
    session = OnnxModel(path)
    session.predict_proba(images)                           # numpy [N, classes]
    quantize_onnx(path, "model.int8.onnx", calibration=images)

**Exporter.** ``torch.onnx.export`` in torch 2.9+ defaults to the dynamo exporter
(``torch.export`` + onnxscript). :func:`export_onnx` uses the older TorchScript exporter
(``dynamo=False``) first: it exports the CNNs, the row LSTM/GRU and the video models in about
a second and matches eager PyTorch to ~1e-7. Because a traced graph can freeze a shape that
should follow the batch size (``vit_tiny``'s class token is expanded to the traced batch), the
export is checked at once on a batch of another size; when that check fails (or the
TorchScript exporter raises) the model is exported again with the dynamo exporter, which keeps
symbolic shapes (slower to export: 5-20 s). ``exporter="dynamo"`` or ``"torchscript"`` forces one.

**Video models** (``input_shape = (T, C, H, W)``) export the same way: the graph takes
full-length clips ``[batch, T, C, H, W]``, ``T`` fixed at export, and has no ``lengths``
input. Without ``lengths`` the models take a path with no packed sequences
(``pack_padded_sequence`` has no ONNX form) and no data-dependent branch, which gives the
same logits as the packed path on full-length clips (see :mod:`ferlib.models.video`). A
shorter clip must be brought to ``T`` frames before ONNX Runtime sees it (repeat frames, as
``ferlib predict`` does: zero frames would be read as frames). ``lstm``/``gru`` built with
``features="landmarks"`` take a second input and are not exported.

**Quantisation.** :func:`quantize_onnx` writes an int8 model with ONNX Runtime: static
quantisation (QDQ format, per-channel weights, activations calibrated on a few hundred
real inputs) when ``calibration`` inputs are given, which is what speeds up convolutions;
dynamic quantisation (int8 weights, activations quantised on the fly, for MatMul/Gemm, i.e.
linear layers and attention projections; ONNX Runtime leaves its fused LSTM/GRU operators in
float) otherwise. :func:`compare_quantized`
measures the accuracy drop and the speed-up on a dataset.

The ONNX packages are optional (``pip install ferlib[export]``); they are imported only
when needed, with a message naming the missing package.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ferlib.errors import ConfigError, FerlibError

__all__ = [
    "OnnxModel",
    "compare_quantized",
    "export_onnx",
    "onnx_parity",
    "quantize_onnx",
    "require_onnx",
]

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def require_onnx(*packages: str):
    """Import and return the named packages (default ``onnx`` and ``onnxruntime``), or raise a
    :class:`~ferlib.errors.FerlibError` that says how to install them."""
    import importlib

    modules = []
    for name in packages or ("onnx", "onnxruntime"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError as error:
            raise FerlibError(
                f"ONNX export needs the package {name!r}, which is not installed: "
                "pip install 'ferlib[export]' (or onnx onnxruntime onnxscript)"
            ) from error
    return modules[0] if len(modules) == 1 else modules


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".partial")


def _export(model, example, target: Path, exporter: str, dynamic_batch: bool, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                model,
                (example,),
                str(target),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
                opset_version=opset,
                dynamo=False,
            )
        else:
            require_onnx("onnxscript")
            import contextlib
            import io

            # The dynamo exporter prints its progress; keep the caller's output clean.
            with contextlib.redirect_stdout(io.StringIO()):
                program = torch.onnx.export(
                    model,
                    (example,),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
                    opset_version=opset,
                    dynamo=True,
                    verbose=False,
                )
                program.save(str(target))


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_shape: Sequence[int],
    dynamic_batch: bool = True,
    *,
    exporter: str = "auto",
    opset: int = 18,
    check: bool = True,
) -> Path:
    """Export ``model`` (on the CPU, in eval mode) to an ONNX file with input ``"input"``
    (``[batch, *input_shape]``) and output ``"logits"``; returns the path.

    ``exporter``: ``"auto"`` (TorchScript, then dynamo if the check fails; see the module
    docstring), ``"torchscript"`` or ``"dynamo"``. ``check`` runs the file in ONNX Runtime on a
    batch of another size and compares with PyTorch (needed for ``"auto"``). The file is
    written under a temporary name and renamed when complete.
    """
    onnx = require_onnx("onnx")
    if exporter not in ("auto", "torchscript", "dynamo"):
        raise ConfigError.unknown("exporter", exporter, ("auto", "torchscript", "dynamo"))
    path = Path(path)
    target = _atomic_target(path)
    device = next(model.parameters()).device if next(model.parameters(), None) is not None else None
    was_training = model.training
    model = model.to("cpu").eval()
    example = torch.rand(2, *input_shape, generator=torch.Generator().manual_seed(0))
    probe = torch.rand(3 if dynamic_batch else 2, *input_shape, generator=torch.Generator().manual_seed(1))
    tries = ["torchscript", "dynamo"] if exporter == "auto" else [exporter]
    problems = []
    try:
        for kind in tries:
            try:
                _export(model, example, target, kind, dynamic_batch, opset)
                onnx.checker.check_model(str(target))
                if check or exporter == "auto":
                    difference = onnx_parity(model, target, probe)
                    if not difference <= 1e-3:
                        raise FerlibError(f"ONNX output differs from PyTorch by {difference:.3g}")
                model_proto = onnx.load(str(target))
                model_proto.doc_string = f"ferlib export of {getattr(model, 'ferlib_name', type(model).__name__)}"
                meta = model_proto.metadata_props.add()
                meta.key, meta.value = "ferlib_input_shape", ",".join(str(int(v)) for v in input_shape)
                meta = model_proto.metadata_props.add()
                meta.key, meta.value = "ferlib_exporter", kind
                onnx.save(model_proto, str(target))
                os.replace(target, path)
                return path
            except FerlibError as error:
                if "needs the package" in str(error):
                    raise
                problems.append(f"{kind}: {error}")
            except Exception as error:  # an exporter failure: try the next one
                problems.append(f"{kind}: {type(error).__name__}: {str(error).strip().splitlines()[0][:200]}")
        raise FerlibError("could not export the model to ONNX (" + "; ".join(problems) + ")")
    finally:
        target.unlink(missing_ok=True)
        if device is not None:
            model.to(device)
        model.train(was_training)


def _providers(device: str = "cpu") -> list[str]:
    ort = require_onnx("onnxruntime")
    available = ort.get_available_providers()
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxModel:
    """An ONNX Runtime session that behaves like a ferlib model at inference.

    ``OnnxModel(path)(x)`` returns logits (numpy ``[N, classes]``) for a numpy array or tensor
    ``x``; :meth:`predict_proba` softmax probabilities; :meth:`predict` class ids. ``threads``
    sets ONNX Runtime's intra-op threads (default: torch's thread count, for a fair comparison).
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None):
        ort = require_onnx("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise FerlibError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=_providers(device))
        except Exception as error:
            raise FerlibError(f"{path} is not a readable ONNX model: {str(error).splitlines()[0][:200]}") from None
        self.path = path
        self.input_name = self.session.get_inputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        shape = meta.get("ferlib_input_shape")
        self.input_shape = tuple(int(v) for v in shape.split(",")) if shape else None

    def __call__(self, x) -> np.ndarray:
        array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return self.session.run(None, {self.input_name: np.ascontiguousarray(array, dtype=np.float32)})[0]

    def predict_proba(self, x) -> np.ndarray:
        logits = self(x).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict(self, x) -> np.ndarray:
        return self(x).argmax(axis=1)

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r})"


def _as_batch(inputs) -> torch.Tensor:
    """A float tensor batch from a tensor, an array, or a dataset of ``(x, y, ...)`` samples."""
    if isinstance(inputs, torch.Tensor):
        return inputs.float().cpu()
    if isinstance(inputs, np.ndarray):
        return torch.from_numpy(inputs).float()
    return torch.stack([inputs[i][0] for i in range(len(inputs))]).float()


def onnx_parity(model: nn.Module, path: str | os.PathLike, inputs, batch_size: int = 64) -> float:
    """The largest absolute difference between PyTorch's and ONNX Runtime's logits on ``inputs``
    (a tensor batch, an array, or a dataset of ``(x, y, ...)``), the model in eval mode on the CPU."""
    session = OnnxModel(path)
    x = _as_batch(inputs)
    was_training = model.training
    model.eval()
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    worst = 0.0
    try:
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                chunk = x[start : start + batch_size]
                reference = model(chunk.to(device)).float().cpu().numpy()
                worst = max(worst, float(np.abs(session(chunk) - reference).max()))
    finally:
        model.train(was_training)
    return worst


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over a float array, in batches."""

    def __init__(self, input_name: str, data: np.ndarray, batch_size: int = 32):
        self.batches = iter([{input_name: data[i : i + batch_size]} for i in range(0, len(data), batch_size)])

    def get_next(self):
        return next(self.batches, None)

    def rewind(self):  # pragma: no cover - not used by MinMax calibration
        pass


def quantize_onnx(
    path: str | os.PathLike,
    out: str | os.PathLike,
    calibration=None,
    *,
    max_calibration: int = 256,
) -> Path:
    """Write an int8 version of the ONNX model ``path`` to ``out``.

    With ``calibration`` (a tensor/array batch or a dataset of real inputs): static
    quantisation, QDQ format, per-channel int8 weights, activation ranges from MinMax
    calibration on up to ``max_calibration`` inputs. Without: dynamic quantisation (int8
    weights of MatMul/Gemm; activations quantised at run time). Written atomically.
    """
    require_onnx("onnx", "onnxruntime")
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path, out = Path(path), Path(out)
    if not path.is_file():
        raise FerlibError(f"ONNX model not found: {path}")
    target = _atomic_target(out)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimisation; quantise the original if it fails
            prepared = path
        try:
            if calibration is None:
                # Linear layers only: ONNX Runtime's dynamic ConvInteger is slower than float Conv.
                quantize_dynamic(
                    str(prepared), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
                )
            else:
                data = _as_batch(calibration)[:max_calibration].numpy().astype(np.float32)
                quantize_static(
                    str(prepared),
                    str(target),
                    _Calibration(INPUT_NAME, data),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                )
            os.replace(target, out)
        except Exception as error:
            raise FerlibError(
                f"ONNX Runtime could not quantise {path}: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
            ) from error
        finally:
            target.unlink(missing_ok=True)
    return out


def _session_speed(session: OnnxModel, x: np.ndarray, runs: int) -> float:
    session(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session(x)
        times.append(time.perf_counter() - start)
    return len(x) / statistics.median(times)


def compare_quantized(
    float_path: str | os.PathLike,
    int8_path: str | os.PathLike,
    dataset,
    *,
    batch_size: int = 64,
    runs: int = 5,
) -> dict:
    """Accuracy and speed of the float and int8 ONNX models on ``dataset`` (``(x, y, ...)``).

    Returns ``accuracy_float``, ``accuracy_int8``, ``accuracy_drop`` (float minus int8),
    ``agreement`` (share of identical predictions), ``max_prob_difference``,
    ``throughput_float`` and ``throughput_int8`` (images/s at ``batch_size``), ``speedup``
    (int8 over float), and the two file sizes in bytes.
    """
    x = _as_batch(dataset).numpy().astype(np.float32)
    y = np.asarray([int(dataset[i][1]) for i in range(len(dataset))])
    float_model, int8_model = OnnxModel(float_path), OnnxModel(int8_path)
    probs = {}
    for name, session in (("float", float_model), ("int8", int8_model)):
        probs[name] = np.concatenate(
            [session.predict_proba(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )
    batch = x[:batch_size] if len(x) >= batch_size else np.resize(x, (batch_size, *x.shape[1:]))
    speed_float = _session_speed(float_model, batch, runs)
    speed_int8 = _session_speed(int8_model, batch, runs)
    accuracy = {name: float((p.argmax(1) == y).mean()) for name, p in probs.items()}
    return {
        "n": len(y),
        "accuracy_float": accuracy["float"],
        "accuracy_int8": accuracy["int8"],
        "accuracy_drop": accuracy["float"] - accuracy["int8"],
        "agreement": float((probs["float"].argmax(1) == probs["int8"].argmax(1)).mean()),
        "max_prob_difference": float(np.abs(probs["float"] - probs["int8"]).max()),
        "throughput_float": speed_float,
        "throughput_int8": speed_int8,
        "speedup": speed_int8 / speed_float,
        "size_float_bytes": Path(float_path).stat().st_size,
        "size_int8_bytes": Path(int8_path).stat().st_size,
    }
