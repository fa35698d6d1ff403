import json

import pytest

from persona_features import models, runner
from persona_features.paths import repo_root


@pytest.fixture(scope="session")
def lm():
    """The embedded model, loaded once per test session (float32, as in the cpu profile)."""
    return models.load_model("smollm2-135m", dtype="float32")


@pytest.fixture(scope="session")
def smoke_build():
    """`runner test`: execute every notebook (smoke) into the staging folder and render strictly."""
    root = repo_root()
    code = runner.main(["test"])
    stage = root / "_build" / "stage" / "smoke"
    runs = {r["notebook"]: r for r in json.loads((stage / "results" / "_runs.json").read_text())}
    return {"code": code, "stage": stage, "runs": runs, "html": root / "_build" / "html-smoke"}
