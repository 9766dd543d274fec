import pytest
import torch

import ferlib
from ferlib.config import get_profile
from ferlib.data import collate_samples, emotion_id


def test_emotions_follow_fer2013_order():
    assert ferlib.EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert emotion_id("Happy") == 3
    assert emotion_id("contempt", {"contempt": None}) is None
    assert emotion_id("anger", {"anger": "angry"}) == 0
    with pytest.raises(ValueError, match="unknown emotion label 'contempt'"):
        emotion_id("contempt")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet9000'.*cnn_small"):
        ferlib.create_model("resnet9000")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        ferlib.load_dataset("mnist")
    with pytest.raises(ValueError, match="unknown profile 'huge'.*smoke, quick, full"):
        get_profile("huge")
    with pytest.raises(ValueError, match="unknown model kind"):
        ferlib.list_models(kind="audio")


def test_create_model_records_how_to_rebuild_it():
    model = ferlib.create_model("cnn_small", num_classes=3, in_channels=3, width=8)
    assert model.ferlib_name == "cnn_small"
    assert model.ferlib_config == {"num_classes": 3, "in_channels": 3, "width": 8}
    assert model(torch.zeros(2, 3, 40, 40)).shape == (2, 3)
    assert "cnn_small" in ferlib.list_models(kind="static")
    assert ferlib.list_models("cnn_sm*") == ["cnn_small"]


def test_collate_keeps_metadata_as_a_list():
    batch = [(torch.zeros(1, 4, 4), 1, {"subject": 1}), (torch.ones(1, 4, 4), 2, {"subject": 2, "group": {}})]
    x, y, meta = collate_samples(batch)
    assert x.shape == (2, 1, 4, 4) and y.tolist() == [1, 2] and meta[1]["subject"] == 2
    with pytest.raises(ValueError, match="different shapes"):
        collate_samples([(torch.zeros(1, 4, 4), 0), (torch.zeros(1, 5, 5), 0)])
    with pytest.raises(ValueError, match=r"\(x, y\) or \(x, y, meta\)"):
        collate_samples([torch.zeros(3)])
