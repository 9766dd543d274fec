"""book/results/ records: made from a `ferlib train` folder, read back best first."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ferlib.book import results
from ferlib.errors import FerlibError

REPO_RESULTS = Path(__file__).resolve().parents[2] / "book" / "results"


def fake_run(folder: Path, *, report_split: str = "test", usage: dict | None = None, accuracy: float = 0.66,
             dataset: str = "fer2013", val_split: str = "holdout", splits: bool = True) -> Path:
    """The two files `ferlib train` writes that a record is made from; by default a run on a
    copy without PrivateTest, whose loader reports PublicTest as its 'test' split."""
    folder.mkdir(parents=True)
    split = report_split
    usage = {"PublicTest": 3589} if usage is None else usage
    metrics = {f"{split}_n": sum(usage.values()), f"{split}_accuracy": accuracy,
               f"{split}_accuracy_ci_low": accuracy - 0.02, f"{split}_accuracy_ci_high": accuracy + 0.02,
               f"{split}_balanced_accuracy": accuracy - 0.03, f"{split}_macro_f1": accuracy - 0.01,
               "best_epoch": 2, "best_val": 0.6}
    config = {"command": "train", "dataset": dataset, "data_dir": "/data/my fer", "model": "vgg_fer",
              "model_options": {"widths": [32, 64, 128, 512]}, "epochs": 2, "val_split": val_split,
              "holdout_fraction": 0.1, "report_split": report_split, "tta": True}
    command = ("ferlib train --dataset fer2013 --data-dir '/data/my fer' --model vgg_fer --model-option "
               "widths=[32,64,128,512] --epochs 2 --no-progress --force --out runs/x --results /tmp/r.sqlite")
    run = {"command": command, "wall_time_s": 123.456, "config": config, "metrics": metrics,
           "cost": {"train_time_s": 120.0}, "environment": {"device": "cpu", "torch": "2.14.1"}}
    if splits:
        run["splits"] = {"train": {"n": 23_253, "protocol": None}, "selection": {"n": 2_584, "protocol": None},
                         "report": {"n": sum(usage.values()), "protocol": None, "usage": usage}}
    (folder / "metrics.json").write_text(json.dumps(run))
    pd.DataFrame({"epoch": [1, 2], "train_loss": [1.8, 1.5], "val_accuracy": [0.4, 0.6]}).to_csv(
        folder / "history.csv", index=False)
    return folder


def test_record_from_a_train_folder(tmp_path):
    record = results.fer2013_record(fake_run(tmp_path / "run"), hardware="2-core CPU", note="a test run",
                                    date="2026-11-27")
    assert record["reported_split"] == "FER2013 PublicTest"
    assert record["public_test_accuracy"] == 0.66
    assert record["public_test_accuracy_ci95"] == pytest.approx([0.64, 0.68])
    assert record["public_test_macro_f1"] == pytest.approx(0.65)
    assert record["protocol"] == ("checkpoint selected on a stratified 10% hold-out of the train split (2,584 images); "
                                  "reported on PublicTest (the loader's 'test' split); horizontal-flip test-time "
                                  "augmentation")
    assert record["wall_time_s"] == 123.5 and record["date"] == "2026-11-27"
    # the command can be pasted elsewhere: no local data folder, results store or progress flag
    assert record["command"] == ("ferlib train --dataset fer2013 --data-dir DATA_DIR --model vgg_fer "
                                 "--model-option 'widths=[32,64,128,512]' --epochs 2 --out runs/x")
    assert record["config"]["data_dir"] == "DATA_DIR"
    assert record["history"] == [{"epoch": 1, "train_loss": 1.8, "val_accuracy": 0.4},
                                 {"epoch": 2, "train_loss": 1.5, "val_accuracy": 0.6}]
    assert record["environment"]["device"] == "cpu"
    assert results.fer2013_record(tmp_path / "run", hardware="h", note="n", wall_time_s=99)["wall_time_s"] == 99


def test_private_test_runs_are_named_so(tmp_path):
    run = fake_run(tmp_path / "run", usage={"PrivateTest": 3589}, val_split="val")
    record = results.fer2013_record(run, hardware="h", note="n")
    assert record["reported_split"] == "FER2013 PrivateTest"
    assert "private_test_accuracy" in record and "public_test_accuracy" not in record
    assert record["protocol"].startswith("checkpoint selected on the loader's 'val' split (2,584 images), PublicTest")


def test_the_selection_split_is_described_from_the_loader(tmp_path):
    run = fake_run(tmp_path / "run", val_split="val")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["splits"]["selection"]["protocol"] = "val: stratified 0.1 hold-out of the official train split, seed 0"
    (run / "metrics.json").write_text(json.dumps(metrics))
    record = results.fer2013_record(run, hardware="h", note="n")
    assert record["protocol"].startswith("checkpoint selected on the loader's 'val' split (2,584 images), "
                                         "stratified 0.1 hold-out of the official train split, seed 0; "
                                         "reported on PublicTest")


def test_a_run_without_selection_says_so(tmp_path):
    run = fake_run(tmp_path / "run", val_split="none")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["splits"]["train"]["n"], metrics["splits"]["selection"] = 28_709, None
    metrics["config"]["crop"] = 0.8333
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert results.fer2013_record(run, hardware="h", note="n")["protocol"] == (
        "no checkpoint selection: trained on the whole official train split (28,709 images) and the last epoch "
        "reported; reported on PublicTest (the loader's 'test' split); trained on random crops of 0.8333 of the "
        "side, reported on ten crops (five crops and their mirrors)")


def test_a_selection_recorded_as_a_bare_size(tmp_path):
    run = fake_run(tmp_path / "run", val_split="val")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["splits"]["selection"] = 2_872
    metrics["splits"]["report"]["protocol"] = "test: the official val split (the layout has no test split)"
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert results.fer2013_record(run, hardware="h", note="n")["protocol"].startswith(
        "checkpoint selected on the loader's 'val' split (2,872 images), a stratified hold-out of Training")


@pytest.mark.parametrize(("kwargs", "message"), [
    # a loader split name says nothing by itself: the images' usage decides
    ({"report_split": "val", "usage": {"Training": 2872}}, "holds 2872 Training images, not one of FER2013"),
    ({"usage": {"PublicTest": 10, "PrivateTest": 10}}, "10 PrivateTest, 10 PublicTest images"),
    ({"splits": False}, "does not say which images the run reported on"),
    ({"dataset": "rafdb"}, "not fer2013"),
])
def test_bad_runs_are_named(tmp_path, kwargs, message):
    with pytest.raises(FerlibError, match=message):
        results.fer2013_record(fake_run(tmp_path / "run", **kwargs), hardware="h", note="n")


def test_a_folder_without_a_finished_run(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FerlibError, match="metrics.json not found"):
        results.fer2013_record(tmp_path / "run", hardware="h", note="n")


def test_recorded_runs_best_first(tmp_path, monkeypatch):
    folder = tmp_path / "book" / "results"
    folder.mkdir(parents=True)
    for name, accuracy in (("a", 0.61), ("b", 0.69), ("c", 0.65)):
        record = results.fer2013_record(fake_run(tmp_path / name, accuracy=accuracy), hardware="h", note=name)
        (folder / f"fer2013_{name}.json").write_text(json.dumps(record))
    private = results.fer2013_record(fake_run(tmp_path / "p", usage={"PrivateTest": 3589}), hardware="h", note="p")
    (folder / "fer2013_p.json").write_text(json.dumps(private))
    assert [run["note"] for run in results.recorded_runs(results_dir=folder)] == ["b", "c", "a"]
    runs = results.recorded_runs(results_dir=folder)
    assert [run["record"] for run in runs] == ["fer2013_b", "fer2013_c", "fer2013_a"]  # the file names
    assert [run["note"] for run in results.recorded_runs(results_dir=folder, metric="private_test_accuracy")] == ["p"]
    monkeypatch.chdir(tmp_path)  # found from the repository root, as a script would run
    assert len(results.recorded_runs()) == 3
    monkeypatch.chdir(folder)  # nothing under the current folder: as in a notebook opened alone
    assert results.recorded_runs() == []
    (folder / "fer2013_broken.json").write_text("{")
    with pytest.raises(FerlibError, match="fer2013_broken.json is not valid JSON"):
        results.recorded_runs(results_dir=folder)


def test_seed_groups_gather_one_recipe_over_seeds():
    def run(accuracy, seed, epochs=45):
        return {"public_test_accuracy": accuracy, "config": {"model": "vgg_fer", "epochs": epochs, "seed": seed}}

    runs = [run(0.66, 1), run(0.70, 0, epochs=90), run(0.68, 0), run(0.67, 2), run(0.69, 0, epochs=50),
            run(0.65, 1, epochs=50)]
    groups = results.seed_groups(runs)
    # recipes with one seed (90 epochs) are left out; each group is best first, groups by their best run
    assert [[(r["config"]["epochs"], r["config"]["seed"]) for r in group] for group in groups] == [
        [(50, 0), (50, 1)], [(45, 0), (45, 2), (45, 1)]]
    assert results.seed_groups(runs[:2]) == []


def test_the_command_line_writes_the_record(tmp_path, capsys):
    out = tmp_path / "results" / "fer2013_run.json"
    assert results.main([str(fake_run(tmp_path / "run")), str(out), "--hardware", "h", "--note", "n"]) == 0
    assert json.loads(out.read_text())["public_test_accuracy"] == 0.66
    assert "PublicTest accuracy 0.6600" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # the chapters only read fer2013_*.json
        results.main([str(tmp_path / "run"), str(tmp_path / "other.json"), "--hardware", "h", "--note", "n"])


def test_the_shipped_records_are_readable():
    runs = results.recorded_runs(results_dir=REPO_RESULTS)
    assert runs, "book/results/ holds the recorded FER2013 runs the book tables"
    for run in runs:
        assert {"command", "hardware", "wall_time_s", "config", "history"} <= set(run)
        low, high = run["public_test_accuracy_ci95"]
        assert low <= run["public_test_accuracy"] <= high
