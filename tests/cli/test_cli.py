import json
import subprocess
import sys

import pytest

from ferlib.cli import main


def test_help_of_every_command_has_examples(capsys):
    for command in ([], ["info"], ["train"], ["evaluate"], ["runs"], ["models"], ["synth"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_unknown_option_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "ferlib", "train", "--bogus"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unrecognized arguments: --bogus" in lines[0]


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"torch", "device", "torch_threads"} <= set(info)


def test_train_evaluate_runs_end_to_end(tmp_path, capsys):
    out, results = tmp_path / "run", tmp_path / "results.sqlite"
    args = [
        "train",
        "--dataset",
        "test-blobs",
        "--model",
        "cnn_small",
        "--profile",
        "smoke",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--results",
        str(results),
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    for name in ("best.ckpt", "last.ckpt", "history.csv", "metrics.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["metrics"]["test_accuracy"] <= 1.0
    assert metrics["environment"]["torch"]
    capsys.readouterr()
    assert main(args) == 0  # stored: skipped
    assert "already stored" in capsys.readouterr().out
    assert main(["evaluate", str(out / "best.ckpt"), "--dataset", "test-blobs", "--split", "val", "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["accuracy"] <= 1.0
    assert main(["runs", "--results", str(results)]) == 0
    assert "cnn_small" in capsys.readouterr().out


def test_holdout_selection_and_report_split(tmp_path):
    args = [
        "train",
        "--dataset",
        "test-blobs",
        "--profile",
        "smoke",
        "--epochs",
        "1",
        "--val-split",
        "holdout",
        "--report-split",
        "val",
        "--out",
        str(tmp_path),
        "--results",
        str(tmp_path / "r.sqlite"),
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert "val_accuracy" in json.loads((tmp_path / "metrics.json").read_text())["metrics"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "missing.ckpt", "--dataset", "test-blobs"], "checkpoint not found: missing.ckpt"),
        (["train", "--dataset", "nope", "--no-progress"], "unknown dataset 'nope'"),
        (["train", "--dataset", "test-blobs", "--model", "nope", "--no-progress"], "unknown model 'nope'"),
        (["runs", "--results", "nowhere.sqlite"], "no results database"),
    ],
)
def test_bad_input_is_a_one_line_error(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_an_error_is_printed_whole_with_the_fix_and_without_a_traceback(tmp_path, capsys):
    nowhere = str(tmp_path / "nowhere")
    code = main(["train", "--dataset", "fer2013", "--data-dir", nowhere, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "Expected layout:" in err and "<root>/fer2013.csv" in err and "never downloads it" in err


def test_debug_shows_the_traceback(tmp_path):
    from ferlib.errors import DataError

    with pytest.raises(DataError, match="does not exist"):
        main(["--debug", "train", "--dataset", "fer2013", "--data-dir", str(tmp_path / "nowhere")])


def test_a_typo_in_a_model_option_is_named_before_any_data_loads(tmp_path, capsys):
    code = main(["train", "--model", "vgg_fer", "--model-option", "widthz=[8,8,8,8]", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "unknown vgg_fer option 'widthz'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    code = main(["train", "--model", "vgg_fer", "--model-option", "widths=abc", "--profile", "smoke",
                 "--out", str(tmp_path / "r2")])
    assert code == 2 and "cannot build model 'vgg_fer' with widths='abc'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["train"], ["predict", "x.jpg", "--model", "m.ckpt"], ["export", "m.ckpt"]])
def test_image_size_must_be_positive(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--image-size", "-1"])
    assert exit_info.value.code == 2
    assert "--image-size: must be at least 1, got -1" in capsys.readouterr().err


def _train(out, *options):
    return main(["train", "--profile", "smoke", "--model", "cnn_small", "--epochs", "1", "--device", "cpu",
                 "--no-progress", "--results", str(out.parent / "r.sqlite"), "--out", str(out), *options])


def test_a_run_folder_belongs_to_one_configuration(tmp_path, capsys):
    out = tmp_path / "r1"
    assert _train(out, "--model-option", "width=8") == 0
    first = (out / "best.ckpt").read_bytes()
    # resuming, or training afresh, with another configuration is refused and names what differs
    for extra in (["--resume"], []):
        assert _train(out, "--model-option", "width=16", *extra) == 2
        err = capsys.readouterr().err
        assert "holds a run of another configuration (model_options: {'width': 8} -> {'width': 16})" in err
        assert (out / "best.ckpt").read_bytes() == first
    # --force moves the old run aside, whole, and trains the new one
    assert _train(out, "--model-option", "width=16", "--force") == 0
    assert "moved the run of another configuration" in capsys.readouterr().out
    (aside,) = tmp_path.glob("r1.replaced-*")
    assert (aside / "best.ckpt").read_bytes() == first
    assert json.loads((out / "config.json").read_text())["model_options"] == {"width": 16}
    # the same configuration resumes as before
    assert _train(out, "--model-option", "width=16", "--resume", "--force") == 0


def test_a_folder_written_before_config_json_is_judged_by_its_metrics(tmp_path, capsys):
    out = tmp_path / "old"
    assert _train(out) == 0
    (out / "config.json").unlink()  # as ferlib 0.1.0 left it: metrics.json holds the config
    assert _train(out, "--seed", "1") == 2
    assert "seed: 0 -> 1" in capsys.readouterr().err
