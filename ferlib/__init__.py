"""ferlib: the library behind FER Book, deep learning for facial expression recognition.

The public API: ``EMOTIONS``, ``load_dataset``, ``create_model``, ``list_models``, ``fit``,
``evaluate``, ``load_checkpoint`` and friends. See the README and the book for a tour.
"""

__version__ = "0.1.0"

from ferlib.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint  # noqa: E402
from ferlib.data import EMOTIONS, NUM_CLASSES, collate_samples, list_datasets, load_dataset  # noqa: E402
from ferlib.data.datasets import load_split, load_splits  # noqa: E402
from ferlib.errors import CheckpointError, DataError, FerlibError  # noqa: E402
from ferlib.evaluate import EvaluationResult, evaluate, predict_proba  # noqa: E402
from ferlib.models import create_model, list_models  # noqa: E402
from ferlib.profiles import get_profile  # noqa: E402
from ferlib.runtime import environment_info, resolve_device, seed_everything  # noqa: E402
from ferlib.train import History, fit  # noqa: E402

__all__ = [
    "EMOTIONS",
    "NUM_CLASSES",
    "CheckpointError",
    "DataError",
    "EvaluationResult",
    "FerlibError",
    "History",
    "collate_samples",
    "create_model",
    "environment_info",
    "evaluate",
    "fit",
    "get_profile",
    "list_datasets",
    "list_models",
    "load_checkpoint",
    "load_dataset",
    "load_split",
    "load_splits",
    "predict_proba",
    "read_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
]
