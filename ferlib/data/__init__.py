"""Datasets, labels and batching. Every dataset is reached through :func:`load_dataset`."""

from ferlib.data.labels import EMOTION_TO_ID, EMOTIONS, NUM_CLASSES, emotion_id
from ferlib.data.loader import collate_samples
from ferlib.data.registry import list_datasets, load_dataset, register_dataset

__all__ = [
    "EMOTIONS",
    "EMOTION_TO_ID",
    "NUM_CLASSES",
    "collate_samples",
    "emotion_id",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
