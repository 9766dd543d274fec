"""The FER2013 loader on the real copy in ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from ferlib.data import EMOTIONS, load_dataset
from ferlib.data.real import MissingSplitError, load_splits

ARCHIVE = Path(__file__).resolve().parents[3] / "shared" / "data" / "fer2013-dev.tar.gz"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"real FER2013 copy not found at {ARCHIVE}"),
]

TRAIN_COUNTS = {
    "angry": 3995,
    "disgust": 436,
    "fear": 4097,
    "happy": 7215,
    "neutral": 4965,
    "sad": 4830,
    "surprise": 3171,
}


@pytest.fixture(scope="session")
def fer2013_root(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("fer2013-real")
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(target, filter="data")
    return target


def test_fer2013_folder_copy_has_the_paper_split_sizes(fer2013_root, tmp_path):
    train = load_dataset("fer2013", split="train", root=fer2013_root, cache_dir=tmp_path)
    val = load_dataset("fer2013", split="val", root=fer2013_root)
    assert (len(train), len(val)) == (28_709, 3_589)
    assert train.class_counts() == {name: TRAIN_COUNTS[name] for name in EMOTIONS}
    assert tuple(train.images.shape) == (28_709, 1, 48, 48)
    assert {m["usage"] for m in val.metas} == {"PublicTest"}
    x, y, meta = train[0]
    assert tuple(x.shape) == (1, 48, 48) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(MissingSplitError, match="no 'test' split"):
        load_dataset("fer2013", split="test", root=fer2013_root)


def test_fer2013_recipe_protocol_without_private_test(fer2013_root):
    parts = load_splits("fer2013", root=fer2013_root, val_fraction=0.1, seed=0)
    assert len(parts["train"]) + len(parts["val"]) == 28_709
    assert abs(len(parts["val"]) - 2_871) <= 7  # 10% of each class, rounded
    assert len(parts["test"]) == 3_589 and "official val" in parts["test"].protocol


def test_the_recipe_selects_on_training_and_reports_public_test(fer2013_root):
    from ferlib.errors import DataError
    from ferlib.experiments.run import training_data

    config = {"dataset": "fer2013", "data_dir": str(fer2013_root), "profile": "full"}
    train, val, report = training_data(config)  # the defaults: select on 'val', report 'test'
    assert len(train) + len(val) == 28_709 and len(report) == 3_589
    assert {m["usage"] for m in val.metas} == {"Training"} and {m["usage"] for m in report.metas} == {"PublicTest"}
    with pytest.raises(DataError, match="not an official split"):  # 'val' is the hold-out of Training here
        training_data({**config, "val_split": "holdout", "report_split": "val"})
