import json
import subprocess
import sys
import textwrap

import pytest
import torch

from persona_features import artifacts


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(artifacts.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_key_depends_on_config_and_inputs_only():
    k = artifacts.artifact_key("ft", {"lr": 1e-4, "steps": 3}, ["abc"])
    assert k == artifacts.artifact_key("ft", {"steps": 3, "lr": 1e-4}, ["abc"])  # order-free
    assert k != artifacts.artifact_key("ft", {"lr": 2e-4, "steps": 3}, ["abc"])
    assert k != artifacts.artifact_key("ft", {"lr": 1e-4, "steps": 3}, ["abd"])
    assert k != artifacts.artifact_key("sae", {"lr": 1e-4, "steps": 3}, ["abc"])


def test_non_json_config_is_a_clear_error():
    with pytest.raises(TypeError, match="JSON"):
        artifacts.artifact_key("ft", {"x": object()})


def test_build_once_then_reuse():
    calls = []

    def build(folder):
        calls.append(folder)
        artifacts.save_tensors(folder, {"w": torch.arange(6.0).reshape(2, 3)})
        artifacts.save_json(folder, "curve", [1.0, 0.5])
        return {"steps": 2}

    a = artifacts.get_or_build("ft", {"lr": 1}, build)
    b = artifacts.get_or_build("ft", {"lr": 1}, build)
    assert len(calls) == 1 and a == b
    assert torch.equal(b.tensors()["w"], torch.arange(6.0).reshape(2, 3))
    assert b.json("curve") == [1.0, 0.5]
    assert b.meta["steps"] == 2 and b.meta["config"] == {"lr": 1}
    assert not any(p.name.startswith(".") for p in a.path.parent.iterdir())


def test_failed_build_leaves_nothing(tmp_cache):
    def build(folder):
        (folder / "tensors.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        artifacts.get_or_build("ft", {"lr": 1}, build)
    assert artifacts.find("ft", {"lr": 1}) is None
    assert list((tmp_cache / "ft").iterdir()) == []


def test_crash_mid_write_is_never_read(tmp_cache):
    # A separate process dies (no cleanup, no exception handling) while writing.
    script = textwrap.dedent("""
        import os
        from persona_features import artifacts
        def build(folder):
            (folder / "tensors.safetensors").write_bytes(b"partial")
            os._exit(9)
        artifacts.get_or_build("ft", {"lr": 1}, build)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**__import__("os").environ})
    assert proc.returncode == 9
    leftovers = list((tmp_cache / "ft").iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".")  # only the temporary folder
    assert artifacts.find("ft", {"lr": 1}) is None

    built = artifacts.get_or_build("ft", {"lr": 1}, lambda f: artifacts.save_json(f, "ok", True))
    assert built.json("ok") is True
    assert [p.name for p in (tmp_cache / "ft").iterdir()] == [built.key]  # the stale build was removed


def test_write_json_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "r" / "x.json"
    artifacts.write_json_atomic(path, {"a": 1})
    artifacts.write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]
    with pytest.raises(TypeError):
        artifacts.write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]
