"""``ferlib predict`` on photos and videos: outputs, their schema, and the error cases."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch

import ferlib
from ferlib.cli import main
from ferlib.data import EMOTIONS
from ferlib.deploy.demo import write_synth_video
from ferlib.deploy.predictor import FACE_COLUMNS, load_predictor
from ferlib.deploy.video import TIMELINE_COLUMNS, _Tracker

PROB_COLUMNS = [f"prob_{name}" for name in EMOTIONS]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "best.ckpt"
    ferlib.save_checkpoint(path, ferlib.create_model("cnn_small", width=8), train_config={"input_shape": [1, 40, 40]})
    return path


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    skimage_data = pytest.importorskip("skimage.data")
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_synth_video(tmp_path_factory.mktemp("video") / "clip.mp4", clips=2, fps=10)


def _predict(capsys, *args):
    code = main(["predict", *map(str, args), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ferlib predict: error: ")
    return lines[0]


def test_predictor_reads_input_shape_from_checkpoint(checkpoint):
    predictor = load_predictor(checkpoint)
    assert predictor.image_size == (40, 40) and predictor.channels == 1 and predictor.kind == "static"
    assert predictor.class_names == list(EMOTIONS)


@pytest.mark.parametrize("name", ["cnn_small", "r3d_small"])
def test_predictor_classifies_with_an_optimized_copy_that_agrees(tmp_path, monkeypatch, name):
    import ferlib.deploy.predictor
    from ferlib.data.synth import SynthFER

    torch.manual_seed(0)
    model = ferlib.create_model(name, **({"width": 8} if name == "cnn_small" else {"widths": (4, 8, 8)}))
    with torch.no_grad():  # running statistics far from the initial ones, so that folding matters
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    video = name == "r3d_small"
    shape = [6, 1, 40, 40] if video else [1, 40, 40]
    path = ferlib.save_checkpoint(tmp_path / f"{name}.ckpt", model, train_config={"input_shape": shape})
    fast, plain = load_predictor(path), load_predictor(path, optimize=False)
    assert fast.runner is not None and plain.runner is None
    # predictor.model stays the model as loaded (ferlib export and explanations use it).
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fast.model.modules())
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fast.runner.modules())
    options = {"task": "video-basic", "frames": 6} if video else {}
    data = SynthFER("test", size=24, image_size=40, cache=False, **options)
    x = torch.stack([data[i][0] for i in range(len(data))])
    probs_fast, probs_plain = fast.classify(x), plain.classify(x)
    np.testing.assert_allclose(probs_fast, probs_plain, atol=1e-5)
    assert np.array_equal(probs_fast.argmax(1), probs_plain.argmax(1))

    def differs(*args, **kwargs):
        raise ValueError("changed the output")

    monkeypatch.setattr(ferlib.deploy.predictor, "optimize_for_inference", differs)
    assert load_predictor(path).runner is None  # not safe: the model is used as it is


def test_predict_image_writes_annotated_png_csv_and_json(tmp_path, capsys, checkpoint, astronaut):
    out = tmp_path / "out"
    code, stdout, _ = _predict(capsys, astronaut, "--model", checkpoint, "--out", out)
    assert code == 0 and "1 face(s)" in stdout
    annotated = cv2.imread(str(out / "astronaut.annotated.png"))
    original = cv2.imread(str(astronaut))
    assert annotated.shape == original.shape and not np.array_equal(annotated, original)  # boxes drawn
    with open(out / "astronaut.faces.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == FACE_COLUMNS + PROB_COLUMNS
    record = json.loads((out / "astronaut.faces.json").read_text())
    assert set(record) == {"source", "checkpoint", "model", "classes", "image", "faces"}
    assert record["model"] == "cnn_small" and record["classes"] == list(EMOTIONS)
    assert record["image"] == {"width": 512, "height": 512}
    assert len(record["faces"]) == len(rows) == 1
    face = record["faces"][0]
    assert set(face) == {"face", "box", "emotion", "probability", "probabilities"}
    box = face["box"]
    # The astronaut's face lies in the upper middle of the photo.
    assert 120 < box["x"] + box["w"] / 2 < 330 and 40 < box["y"] + box["h"] / 2 < 200
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert face["emotion"] == max(face["probabilities"], key=face["probabilities"].get)
    assert float(rows[0]["probability"]) == pytest.approx(face["probability"], abs=1e-5)
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut.annotated.png",
        "astronaut.faces.csv",
        "astronaut.faces.json",
    ]


def test_predict_video_writes_timeline_annotated_video_and_plot(tmp_path, capsys, checkpoint, clip):
    import matplotlib

    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # stands for a notebook's inline backend, which the plot must not switch
    out = tmp_path / "out"
    try:
        code, stdout, _ = _predict(capsys, clip, "--model", checkpoint, "--out", out, "--every", "2",
                                   "--smooth", "0.5")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(backend)
    assert code == 0, stdout
    with open(out / "clip.timeline.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == TIMELINE_COLUMNS + PROB_COLUMNS
    capture = cv2.VideoCapture(str(clip))
    frames, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    assert frames == 32
    frame_ids = [int(row["frame"]) for row in rows]
    assert frame_ids == sorted(frame_ids) and len(set(frame_ids)) >= frames // 2  # a face in most frames
    for row in rows:
        assert float(row["time_s"]) == pytest.approx(int(row["frame"]) / fps, abs=1e-3)
        probs = [float(row[c]) for c in PROB_COLUMNS]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert row["emotion"] == EMOTIONS[int(np.argmax(probs))]
        assert 0 <= int(row["x"]) and int(row["x"]) + int(row["w"]) <= 320 + 5
    annotated = cv2.VideoCapture(str(out / "clip.annotated.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    assert (annotated.get(cv2.CAP_PROP_FRAME_WIDTH), annotated.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    annotated.release()
    plot = cv2.imread(str(out / "clip.timeline.png"))
    assert plot is not None and plot.shape[0] > 100
    assert not list(out.glob("*.partial*"))


def test_tracker_keeps_identity_of_a_moving_face():
    tracker = _Tracker()
    tracker.update([(100, 100, 50, 50)])
    tracker.update([(130, 100, 50, 50)])  # IoU 0.25: matched by the nearest centre
    tracker.update([(135, 102, 50, 50), (10, 10, 40, 40)])
    ids = {t.box: t.id for t in tracker.tracks}
    assert ids[(135, 102, 50, 50)] == 0 and ids[(10, 10, 40, 40)] == 1


def _assert_no_outputs(out):
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def test_image_without_a_face_fails_in_one_line(tmp_path, capsys, checkpoint):
    image = tmp_path / "wall.png"
    cv2.imwrite(str(image), np.full((200, 200, 3), 120, np.uint8))
    out = tmp_path / "out"
    code, _, err = _predict(capsys, image, "--model", checkpoint, "--out", out)
    assert code != 0
    assert "no face found" in _one_line_error(err) and "wall.png" in err
    _assert_no_outputs(out)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n garbage"])
def test_unreadable_image_fails_in_one_line(tmp_path, capsys, checkpoint, content):
    image = tmp_path / "broken.png"
    image.write_bytes(content)
    out = tmp_path / "out"
    code, _, err = _predict(capsys, image, "--model", checkpoint, "--out", out)
    assert code != 0 and "broken.png" in _one_line_error(err)
    _assert_no_outputs(out)


def test_empty_video_fails_in_one_line(tmp_path, capsys, checkpoint):
    video = tmp_path / "empty.mp4"
    video.write_bytes(b"")
    out = tmp_path / "out"
    code, _, err = _predict(capsys, video, "--model", checkpoint, "--out", out)
    assert code != 0 and "empty.mp4" in _one_line_error(err) and "empty" in err
    _assert_no_outputs(out)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_truncated_video_fails_in_one_line(tmp_path, capsys, checkpoint, suffix):
    video = write_synth_video(tmp_path / f"full{suffix}", clips=2, fps=10)
    data = video.read_bytes()
    truncated = tmp_path / f"cut{suffix}"
    truncated.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    code, _, err = _predict(capsys, truncated, "--model", checkpoint, "--out", out)
    assert code != 0 and f"cut{suffix}" in _one_line_error(err)
    _assert_no_outputs(out)


def test_missing_checkpoint_fails_in_one_line(tmp_path, capsys, astronaut):
    out = tmp_path / "out"
    code, _, err = _predict(capsys, astronaut, "--model", tmp_path / "nope.ckpt", "--out", out)
    assert code != 0 and "checkpoint not found" in _one_line_error(err) and "nope.ckpt" in err
    _assert_no_outputs(out)


def test_several_inputs_go_on_past_a_failure(tmp_path, capsys, checkpoint, astronaut):
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out"
    code, stdout, err = _predict(capsys, missing, astronaut, "--model", checkpoint, "--out", out)
    assert code != 0
    line = _one_line_error(err)
    assert "1 of 2 inputs done" in line and "missing.jpg" in line
    assert (out / "astronaut.faces.json").is_file() and "astronaut" in stdout


def test_export_command_checks_parity_and_writes_int8(tmp_path, capsys, checkpoint):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    assert main(["export", str(checkpoint), "--onnx", str(out), "--check", "--int8"]) == 0
    stdout = capsys.readouterr().out
    assert out.is_file() and (tmp_path / "model.int8.onnx").is_file()
    assert "parity" in stdout and "speed-up" in stdout
    assert main(["export", str(tmp_path / "nope.ckpt"), "--onnx", str(tmp_path / "x.onnx")]) != 0
    assert "checkpoint not found" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("command", ["predict", "export"])
def test_help_has_examples(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "examples:" in capsys.readouterr().out
