"""``ferlib bench``: grid expansion and validation, resuming a killed grid, shards + merge, reports."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ferlib.cli import main
from ferlib.experiments import run as experiment
from ferlib.experiments.grid import GridError, expand_grid, load_grid, parse_shard, shard
from ferlib.experiments.store import ResultsStore, config_hash, merge_stores
from ferlib.models import registry
from ferlib.models.registry import ModelEntry, list_models

TINY = {
    "datasets": ["synthfer"],
    "tasks": ["static"],
    "models": ["cnn_small", "gru_rows"],
    "seeds": [0, 1],
    "profile": "smoke",
    "sizes": {"train": 16, "val": 8, "test": 8},
    "data_options": {"image_size": 16},
    "fit": {"epochs": 1, "batch_size": 16},
    "latency_runs": 1,
}


def _write(path, spec):
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))  # JSON is YAML
    return path


@pytest.fixture
def clip_model(monkeypatch):
    """A registered video model, whatever the registry holds."""
    registry.list_models()  # import the model families first
    monkeypatch.setitem(registry._MODELS, "zz_clip", ModelEntry("zz_clip", "video", lambda **kw: None, "test"))
    return "zz_clip"


def test_star_expands_to_the_models_whose_kind_fits_each_task(clip_model):
    spec = {"tasks": ["static", "video-basic"], "models": ["*"], "seeds": [0, 2], "profile": "smoke"}
    configs = expand_grid(spec)
    by_task = {task: [c for c in configs if c["task"] == task] for task in ("static", "video-basic")}
    static, video = list_models(kind="static"), list_models(kind="video")
    assert clip_model in video and "cnn_small" in static
    assert [(c["model"], c["seed"]) for c in by_task["static"]] == [(m, s) for m in static for s in (0, 2)]
    assert [(c["model"], c["seed"]) for c in by_task["video-basic"]] == [(m, s) for m in video for s in (0, 2)]
    assert len({config_hash(c) for c in configs}) == len(configs)
    assert expand_grid(spec) == configs  # a stable order


def test_globs_kinds_options_and_profile_seeds(clip_model):
    spec = {
        "tasks": ["static", "video-subtle"],
        "models": ["cnn_s*", "video"],
        "profile": ["smoke", "quick"],
        "fit": {"epochs": 2, "lr": 0.01},
        "model_options": {"cnn_small": {"dropout": 0.1}},
        "sizes": {"train": 10},
    }
    configs = expand_grid(spec)
    static = [c for c in configs if c["task"] == "static"]
    assert {c["model"] for c in static} == set(list_models("cnn_s*", kind="static"))
    assert {c["model"] for c in configs if c["task"] == "video-subtle"} == set(list_models(kind="video"))
    small = [c for c in configs if c["model"] == "cnn_small"]
    # seeds default to each profile's: smoke (0,), quick (0, 1, 2)
    assert [(c["profile"], c["seed"]) for c in small] == [("smoke", 0), ("quick", 0), ("quick", 1), ("quick", 2)]
    assert all(c["model_options"] == {"dropout": 0.1} and c["epochs"] == 2 and c["lr"] == 0.01 for c in small)
    assert all(c["model_options"] == {} and c["sizes"] == {"train": 10} for c in configs if c["model"] != "cnn_small")


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"models": ["nope_net"]}, "unknown model 'nope_net' in models"),
        ({"models": ["cnn_small"], "tasks": ["video-fast"]}, "unknown task 'video-fast'"),
        ({"models": ["cnn_small"], "task": ["static"]}, "unknown grid key 'task'"),
        ({"models": ["cnn_small"], "tasks": ["video-basic"]}, "model 'cnn_small' is a static model and does not fit"),
        ({"models": ["zzz*"]}, "models entry 'zzz*' matches no registered model"),
        ({"models": ["cnn_small"], "fit": {"epoch": 2}}, "unknown fit option 'epoch'"),
        ({"models": ["cnn_small"], "profile": "huge"}, "unknown profile 'huge'"),
        ({"models": ["cnn_small"], "seeds": [0, "one"]}, "seeds must be non-negative integers, got 'one'"),
        ({"models": ["cnn_small"], "sizes": {"train": 0}}, "sizes.train must be a positive integer"),
        ({"models": ["cnn_small"], "datasets": ["nope"]}, "unknown dataset 'nope'"),
        ({"models": ["cnn_small"], "model_options": {"vgg": {}}}, "unknown model 'vgg' in model_options"),
        ({"tasks": ["static"]}, "the grid has no 'models' key"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(GridError, match=re.escape(message)) as error:
        expand_grid(spec)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("models: [cnn_small\ntasks: static\n", "is not valid YAML at line"),
        ("- cnn_small\n", "must hold a YAML mapping"),
    ],
)
def test_bad_files_are_one_line_cli_errors(tmp_path, capsys, text, message):
    grid = _write(tmp_path / "grid.yaml", text)
    assert main(["bench", str(grid), "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("ferlib bench: error:")
    with pytest.raises(GridError):
        expand_grid(load_grid(grid))


def test_shards_partition_the_grid():
    configs = [{"i": k} for k in range(7)]
    parts = [shard(configs, i, 3) for i in (1, 2, 3)]
    assert [[index for index, _ in part] for part in parts] == [[0, 3, 6], [1, 4], [2, 5]]
    assert parse_shard("3/3") == (3, 3)
    for bad in ("0/3", "4/3", "1", "a/b", "1/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """The tiny grid run through the CLI, interrupted at its 3rd run, then restarted."""
    tmp = tmp_path_factory.mktemp("bench")
    grid, store = _write(tmp / "tiny.yaml", TINY), tmp / "all.sqlite"
    real, completed, attempts = experiment.run_experiment, [], []

    def counting(config, **kw):
        attempts.append(config_hash(config))
        if len(attempts) == 3 and interrupt:
            raise KeyboardInterrupt  # as Ctrl-C or a scheduler's SIGINT mid-grid
        result = real(config, **kw)
        completed.append((config["model"], config["seed"]))
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(experiment, "run_experiment", counting)
        interrupt = True
        first = main(["bench", str(grid), "--store", str(store), "--device", "cpu"])
        stored_after_kill = len(ResultsStore(store).records())
        interrupt = False
        second = main(["bench", str(grid), "--store", str(store), "--device", "cpu"])
        third = main(["bench", str(grid), "--store", str(store), "--device", "cpu"])
    return {
        "grid": grid,
        "store": store,
        "codes": (first, second, third),
        "stored_after_kill": stored_after_kill,
        "completed": completed,
        "tmp": tmp,
    }


def test_killed_grid_resumes_without_rerunning_stored_runs(resumed):
    assert resumed["codes"] == (130, 0, 0)
    assert resumed["stored_after_kill"] == 2
    expected = [("cnn_small", 0), ("cnn_small", 1), ("gru_rows", 0), ("gru_rows", 1)]
    assert resumed["completed"] == expected  # each config ran to completion exactly once
    records = ResultsStore(resumed["store"]).records()
    assert [(r["config"]["model"], r["seed"]) for r in records] == expected
    assert all(r["metrics"]["test_n"] == 8 and r["cost"]["flops"] > 0 for r in records)


def _fake_run(log):
    """A run function that logs each call and is SIGKILLed (no cleanup at all) at the 3rd call."""

    def run(config, **kw):
        import os
        import signal

        with open(log, "a") as handle:
            handle.write(f"{config['model']}{config['seed']}\n")
        if os.environ.get("KILL_AT_3") and len(open(log).read().split()) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"metrics": {"test_accuracy": 0.5 + config["seed"]}, "cost": {}, "device": "cpu"}

    return run


def test_a_hard_kill_keeps_the_finished_runs(tmp_path, monkeypatch, capsys):
    """SIGKILL during the 3rd run: the store holds the first two, intact, and a restart runs the rest."""
    grid, store, log = _write(tmp_path / "g.yaml", TINY), tmp_path / "s.sqlite", tmp_path / "calls.txt"
    script = (
        "import os; os.environ['KILL_AT_3'] = '1'\n"
        "from ferlib.experiments import run as experiment; from ferlib.cli import main\n"
        "from tests.experiments.test_bench_grid import _fake_run\n"
        f"experiment.run_experiment = _fake_run({str(log)!r})\n"
        f"main(['bench', {str(grid)!r}, '--store', {str(store)!r}])\n"
    )
    root = Path(__file__).resolve().parents[2]
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root)
    assert killed.returncode == -9, killed.stderr
    assert "[2/4] cnn_small static seed 1: done" in killed.stdout
    stored = [(r["config"]["model"], r["seed"]) for r in ResultsStore(store).records()]
    assert stored == [("cnn_small", 0), ("cnn_small", 1)]
    monkeypatch.setattr(experiment, "run_experiment", _fake_run(log))
    assert main(["bench", str(grid), "--store", str(store)]) == 0
    assert "[1/4] cnn_small static seed 0: skipped" in capsys.readouterr().out
    assert log.read_text().split() == ["cnn_small0", "cnn_small1", "gru_rows0", "gru_rows0", "gru_rows1"]
    assert len(ResultsStore(store).records()) == 4


def test_two_shards_merged_equal_one_unsharded_run(resumed, capsys):
    tmp, grid = resumed["tmp"], resumed["grid"]
    shards = [tmp / "shard1.sqlite", tmp / "shard2.sqlite"]
    for i, path in enumerate(shards, start=1):
        assert main(["bench", str(grid), "--store", str(path), "--shard", f"{i}/2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "shard 1/2: 2 of 4 configs" in out and "[2/4] cnn_small static seed 1: done" in out
    assert [r["seed"] for r in ResultsStore(shards[0]).records()] == [0, 0]
    merged = tmp / "merged.sqlite"
    assert main(["bench", "merge", str(merged), *map(str, shards)]) == 0
    whole = {r["config_hash"]: r for r in ResultsStore(resumed["store"]).records()}
    parts = {r["config_hash"]: r for r in ResultsStore(merged).records()}
    assert set(parts) == set(whole) and len(whole) == 4
    for digest, record in whole.items():
        assert parts[digest]["config"] == record["config"]
        assert json.dumps(parts[digest]["metrics"], sort_keys=True) == json.dumps(record["metrics"], sort_keys=True)
    # merging the same shards again adds nothing and reports no conflict
    assert main(["bench", "merge", str(merged), *map(str, shards)]) == 0
    assert "0 records added, 4 already there (0 with different metrics" in capsys.readouterr().out
    # a dry run of the merged store finds every config stored
    assert main(["bench", str(grid), "--store", str(merged), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 configs, 4 stored" in out and "to run" not in out


def test_merge_keeps_the_first_of_conflicting_records(tmp_path, capsys):
    first, second, out = (ResultsStore(tmp_path / name) for name in ("a.sqlite", "b.sqlite", "out.sqlite"))
    config = {"model": "cnn_small", "task": "static", "seed": 0}
    first.add(config, {"test_accuracy": 0.5}, cost={"train_time_s": 1.0})
    second.add(config, {"test_accuracy": 0.5}, cost={"train_time_s": 2.0})  # same metrics: not a conflict
    second.add({**config, "seed": 1}, {"test_accuracy": 0.7})
    third = ResultsStore(tmp_path / "c.sqlite")
    third.add(config, {"test_accuracy": 0.9})
    with pytest.warns(UserWarning, match=r"conflicting records for config \w+ \(cnn_small static seed 0\)"):
        counts = merge_stores(out.path, [first.path, second.path, third.path])
    assert counts == {"added": 2, "duplicates": 2, "conflicts": 1}
    kept = out.get(config)
    assert kept["metrics"] == {"test_accuracy": 0.5} and kept["cost"] == {"train_time_s": 1.0}
    assert kept["created"] == first.get(config)["created"] and kept["versions"] == first.get(config)["versions"]
    assert main(["bench", "merge", str(tmp_path / "o2.sqlite"), str(first.path), str(third.path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kept the one from" in err[0] and "c.sqlite" in err[0]
    assert main(["bench", "merge", str(tmp_path / "o3.sqlite"), str(tmp_path / "missing.sqlite")]) == 2


def test_report_writes_tidy_tables_and_plots(resumed, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["bench", "report", "--store", str(resumed["store"]), "--out", str(out)]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4
    expected = {"dataset", "task", "model", "seed", "profile", "accuracy", "macro_f1", "test_accuracy"}
    assert expected | {"train_time_s", "parameters", "flops", "latency_ms", "git_commit"} <= set(runs.columns)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["model"]) == ["cnn_small", "gru_rows"] and list(summary["n"]) == [2, 2]
    assert {"dataset", "task", "accuracy", "accuracy_low", "accuracy_high", "flops", "latency_ms"} <= set(summary)
    small = runs[runs["model"] == "cnn_small"]["accuracy"]
    assert summary.loc[0, "accuracy"] == pytest.approx(small.mean())
    markdown = (out / "summary.md").read_text()
    assert "## synthfer / static" in markdown and "| cnn_small | 2 |" in markdown
    for name in ("accuracy.png", "accuracy_vs_flops.png", "accuracy_vs_latency.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    empty = tmp_path / "empty.sqlite"
    ResultsStore(empty)
    assert main(["bench", "report", "--store", str(empty), "--out", str(out)]) == 2
    assert "no runs stored" in capsys.readouterr().err


def test_help_of_bench_commands_has_examples(capsys):
    for command in (["bench"], ["bench", "run"], ["bench", "merge"], ["bench", "report"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_shipped_grids_expand():
    grids = Path(__file__).resolve().parents[2] / "benchmarks" / "grids"
    default = expand_grid(load_grid(grids / "default.yaml"))
    static, video = list_models(kind="static"), list_models(kind="video")
    assert len(default) == 3 * (len(static) + 3 * len(video))
    assert {c["profile"] for c in default} == {"quick"} and {c["seed"] for c in default} == {0, 1, 2}
    assert {c["model"] for c in default if c["task"] == "static"} == set(static)
    smoke = expand_grid(load_grid(grids / "smoke.yaml"))
    assert 0 < len(smoke) <= 4 and all(c["profile"] == "smoke" for c in smoke)


def test_a_typo_in_a_grids_model_options_fails_the_dry_run(tmp_path, capsys):
    grid = _write(tmp_path / "g.yaml", {**TINY, "model_options": {"cnn_small": {"widht": 8}}})
    assert main(["bench", str(grid), "--store", str(tmp_path / "s.sqlite"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "model_options of 'cnn_small'" in err and "did you mean 'width'" in err
