import random

import numpy as np
import pytest
import torch

from persona_features.book import chapter
from persona_features.core.params import ParameterError
from persona_features.lm import models


def test_setup_resolves_seeds_and_loads_the_profiles_model(monkeypatch):
    loaded = []
    monkeypatch.setattr(models, "load_model",
                        lambda name, dtype, device: loaded.append((name, dtype, device)) or "the model")
    P, base, the_judge = chapter.setup("smoke", {"max_new_tokens": 8})
    assert P.profile == "smoke" and P.max_new_tokens == 8
    assert base == "the model" and loaded == [(P.model, P.dtype, P.device)] and the_judge is None
    draws = random.random(), float(np.random.rand()), float(torch.rand(1))
    chapter.setup("smoke")
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == draws  # every generator seeded


def test_setup_checks_parameters_before_loading_anything(monkeypatch):
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("loaded a model for a bad parameter"))
    with pytest.raises(ParameterError, match="max_new_tokens"):
        chapter.setup("smoke", {"max_new_tokens": 0})
    with pytest.raises(ParameterError, match="profile"):
        chapter.setup("no such profile")


def test_setup_gives_the_profiles_judge_when_asked(monkeypatch):
    from persona_features.measure import judge
    monkeypatch.setattr(models, "load_model", lambda name, dtype, device: "the model")
    monkeypatch.setattr(judge, "default_judge", lambda base, P: ("judge of", base, P.profile))
    assert chapter.setup("smoke", with_judge=True).judge == ("judge of", "the model", "smoke")
