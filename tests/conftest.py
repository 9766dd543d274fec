"""Shared fixtures: tiny in-memory datasets that need no generator and no download."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import torch
from hypothesis import settings
from torch.utils.data import Dataset

# nbval kernels inherit the environment: chapters run in the smoke profile under pytest.
os.environ.setdefault("FERLIB_PROFILE", "smoke")
# The verdict chapter may be tested before the chapters it weighs have recorded their smoke evidence
# (each test file runs in its own worker): let it run them itself.
os.environ.setdefault("FERLIB_RUN_MISSING", "1")


def pytest_configure(config):
    """Child processes (nbval's kernels, papermill) get a temporary folder of their own, removed at
    the end. A chapter's scratch folder is removed when its kernel exits, but nbval kills the kernel."""
    tempfile.gettempdir()  # this process keeps the usual one (pytest's tmp_path included)
    config.ferlib_tmpdir = (os.environ.get("TMPDIR"), tempfile.mkdtemp(prefix="ferlib-pytest-children-"))
    os.environ["TMPDIR"] = config.ferlib_tmpdir[1]


def pytest_unconfigure(config):
    if not hasattr(config, "ferlib_tmpdir"):
        return
    previous, children = config.ferlib_tmpdir
    shutil.rmtree(children, ignore_errors=True)
    if previous is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = previous


# Property tests draw the same examples on every run (CI must not pass or fail by luck);
# HYPOTHESIS_PROFILE=explore draws fresh ones, for hunting new counter-examples locally.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n N`: the workers share the cores, so each (and each notebook kernel it starts) takes one thread.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def write_notebook(path, *cells: str, parameters: str | None = None, mode: str | None = None) -> None:
    """A Python 3 notebook at ``path``: a title, an optional ``parameters`` cell, then ``cells``; ``mode``
    sets its myst-nb execution mode (``"force"``, as the verdict chapter asks of jupyter-book)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if mode:
        nb.metadata["mystnb"] = {"execution_mode": mode}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    if parameters is not None:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, path)


class BlobFaces(Dataset):
    """Learnable toy images: class k is a texture (horizontal/vertical stripes, checkers, flat), plus noise.

    Metadata holds a subject id, as real datasets' samples do.
    """

    def __init__(self, n: int = 96, size: int = 16, num_classes: int = 4, seed: int = 0, channels: int = 1):
        if not 1 <= num_classes <= 4:
            raise ValueError("BlobFaces has at most 4 classes")
        generator = torch.Generator().manual_seed(seed)
        rows = torch.arange(size).view(-1, 1).expand(size, size)
        cols = torch.arange(size).view(1, -1).expand(size, size)
        textures = [(rows // 2) % 2, (cols // 2) % 2, ((rows // 2) + (cols // 2)) % 2, torch.ones(size, size)]
        self.labels = torch.arange(n) % num_classes
        self.images = torch.rand(n, channels, size, size, generator=generator) * 0.4
        for i, label in enumerate(self.labels.tolist()):
            self.images[i] += 0.6 * textures[label].float()
        self.num_classes = num_classes
        self.class_names = tuple(f"class{k}" for k in range(num_classes))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index]), {"subject": index % 5}


@pytest.fixture
def blobs() -> BlobFaces:
    return BlobFaces()


def _blob_dataset(split: str = "train", root=None, **options):
    """Registered as ``test-blobs`` so the CLI can be driven end to end without SynthFER."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}")
    return BlobFaces(n=96 if split == "train" else 48, seed={"train": 0, "val": 1, "test": 2}[split])


def register_test_datasets() -> None:
    from ferlib.data.registry import _DATASETS, register_dataset

    if "test-blobs" not in _DATASETS:
        register_dataset("test-blobs")(_blob_dataset)


register_test_datasets()
