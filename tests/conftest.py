import pytest

from persona_features import models


@pytest.fixture(scope="session")
def lm():
    """The embedded model, loaded once per test session (float32, as in the cpu profile)."""
    return models.load_model("smollm2-135m", dtype="float32")
