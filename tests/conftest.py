import json

import pytest

from persona_features.book import runner
from persona_features.core import artifacts
from persona_features.core.paths import repo_root
from persona_features.lm import models, tiny_models


@pytest.fixture(scope="session")
def tiny_model_folders(tmp_path_factory):
    """Tiny random chat models of the other families (``lm.tiny_models``), built once per session (~5 s each)."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {family: tiny_models.build(family, root / family) for family in tiny_models.FAMILIES}


@pytest.fixture(scope="session")
def lm(request):
    """The embedded model, loaded once per test session (float32, as in the cpu profile). A test marked with
    ``architectures.every_architecture`` gets, in turn, the embedded model and each tiny model of another family."""
    family = getattr(request, "param", "smollm2-135m")
    if family == "smollm2-135m":
        return models.load_model("smollm2-135m", dtype="float32")
    return models.load_model(str(request.getfixturevalue("tiny_model_folders")[family]), dtype="float32")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty artifact cache that shares only the converted embedded model with the usual one, so a test
    that loads the model does not convert the GGUF file again (~20 s)."""
    converted = models.embedded_folder("smollm2-135m")  # built in the usual cache if missing
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / converted.parent.name).symlink_to(converted.parent, target_is_directory=True)
    monkeypatch.setenv(artifacts.CACHE_ENV, str(cache))
    return cache


@pytest.fixture(scope="session")
def smoke_build():
    """`python -m persona_features test`: execute every notebook (smoke) into the staging folder and render strictly."""
    root = repo_root()
    code = runner.main(["test"])
    stage = root / "_build" / "stage" / "smoke"
    runs = {r["notebook"]: r for r in json.loads((stage / "results" / "_runs.json").read_text())}
    return {"code": code, "stage": stage, "runs": runs, "html": root / "_build" / "html-smoke"}
