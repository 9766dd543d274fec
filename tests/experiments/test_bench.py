import sqlite3

import pytest

from ferlib.experiments.store import ResultsStore, config_hash


def test_config_hash_is_order_independent():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_store_skips_stored_runs_and_forces(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    calls = []

    def run(config):
        calls.append(config)
        return {"metrics": {"accuracy": 0.5 + len(calls) / 10}, "cost": {"train_time_s": 1.0}, "device": "cpu"}

    config = {"model": "cnn_small", "seed": 0}
    first = store.run(config, run)
    again = store.run(config, run)
    assert len(calls) == 1 and first == again
    forced = store.run(config, run, force=True)
    assert len(calls) == 2 and forced["metrics"]["accuracy"] == pytest.approx(0.7)
    store.run({"model": "vgg_fer", "seed": 0}, run)
    records = store.records()
    assert [r["config"]["model"] for r in records] == ["cnn_small", "vgg_fer"]
    assert {"torch", "ferlib", "python"} <= set(records[0]["versions"])
    frame = store.to_frame()
    assert {"config.model", "metrics.accuracy", "cost.train_time_s"} <= set(frame.columns)


def test_store_survives_reopening(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path).add({"x": 1}, {"accuracy": 1.0})
    assert ResultsStore(path).has({"x": 1})
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1


def test_not_a_database(tmp_path):
    path = tmp_path / "r.sqlite"
    path.write_text("hello, I am text " * 100)
    with pytest.raises(ValueError, match="not a ferlib results database"):
        ResultsStore(path)
