import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from persona_features.core import artifacts


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
        from persona_features.core import artifacts
        def build(folder):
            (folder / "tensors.safetensors").write_bytes(b"partial")
            os._exit(9)
        artifacts.get_or_build("ft", {"lr": 1}, build)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**__import__("os").environ})
    assert proc.returncode == 9
    leftovers = list((tmp_cache / "ft").iterdir())
    assert leftovers and all(p.name.startswith(".") for p in leftovers)  # the temporary folder and the lock
    assert artifacts.find("ft", {"lr": 1}) is None

    with pytest.warns(RuntimeWarning, match="no longer running"):  # the dead builder's lock is taken over
        built = artifacts.get_or_build("ft", {"lr": 1}, lambda f: artifacts.save_json(f, "ok", True))
    assert built.json("ok") is True
    assert [p.name for p in (tmp_cache / "ft").iterdir()] == [built.key]  # the stale build and lock were removed


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


# ---------------------------------------------------------------- faults: races, kills, damage, full disks

BUILDER = textwrap.dedent("""
    import os, sys, time
    from persona_features.core import artifacts
    log = sys.argv[1]
    go = log + ".go"
    open(log + f".ready-{os.getpid()}", "w").close()
    while not os.path.exists(go):  # start together, whatever each one's import took
        time.sleep(0.05)
    def build(folder):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        artifacts.save_json(folder, "value", {"pid": os.getpid()})
        time.sleep(float(sys.argv[2]))
        artifacts.save_json(folder, "done", True)
    art = artifacts.get_or_build("race", {"n": 1}, build)
    print(art.path, art.json("value")["pid"])
""")


def _builder(log, sleep):
    return subprocess.Popen([sys.executable, "-c", BUILDER, str(log), str(sleep)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _go_when_ready(log, n):
    import time

    deadline = time.time() + 120
    while len(list(log.parent.glob(log.name + ".ready-*"))) < n and time.time() < deadline:
        time.sleep(0.05)
    (log.parent / (log.name + ".go")).touch()


def test_two_processes_racing_for_one_artifact_build_it_once(tmp_cache, tmp_path):
    log = tmp_path / "builds.log"
    procs = [_builder(log, 1.5) for _ in range(2)]
    _go_when_ready(log, 2)
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    assert len(log.read_text().split()) == 1  # one build; the other process waited and read it
    assert len({o[0] for o in outs}) == 1  # both read the same folder, written by the same builder
    assert any("waiting for the artifact race/" in o[1] for o in outs)  # the waiter said why it waited
    folders = list((tmp_cache / "race").iterdir())
    assert len(folders) == 1 and not folders[0].name.startswith(".")
    art = artifacts.find("race", {"n": 1})
    assert art.json("done") is True and artifacts.damage(art.path) is None


def test_kill_9_mid_build_then_rerun_builds_and_never_reads_the_partial_folder(tmp_cache, tmp_path):
    import signal
    import time

    proc = _builder(tmp_path / "builds.log", 60)
    _go_when_ready(tmp_path / "builds.log", 1)
    deadline = time.time() + 60
    while not list((tmp_cache / "race").glob(".*.build-*/value.json")) and time.time() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert artifacts.find("race", {"n": 1}) is None  # the half-written folder is not an artifact
    with pytest.warns(RuntimeWarning, match="no longer running"):
        art = artifacts.get_or_build("race", {"n": 1}, lambda f: artifacts.save_json(f, "done", True))
    assert art.json("done") is True
    assert [p.name for p in (tmp_cache / "race").iterdir()] == [art.key]


def _tensor_artifact(calls):
    def build(folder):
        calls.append(1)
        artifacts.save_tensors(folder, {"w": torch.arange(1000.0)})
    return artifacts.get_or_build("sae", {"k": 1}, build)


def test_truncated_safetensors_is_rebuilt_with_a_warning():
    calls = []
    art = _tensor_artifact(calls)
    file = art.path / "tensors.safetensors"
    file.write_bytes(file.read_bytes()[:100])  # truncated, as by a full disk or an interrupted copy
    assert artifacts.find("sae", {"k": 1}) is None
    with pytest.warns(RuntimeWarning, match="damaged.*tensors.safetensors has 100 bytes"):
        again = _tensor_artifact(calls)
    assert len(calls) == 2 and torch.equal(again.tensors()["w"], torch.arange(1000.0))


def test_damaged_file_of_the_right_size_is_a_clear_error_naming_the_artifact_and_the_fix():
    art = _tensor_artifact([])
    file = art.path / "tensors.safetensors"
    file.write_bytes(b"\xff" * file.stat().st_size)
    with pytest.raises(artifacts.ArtifactError) as e:
        art.tensors()
    msg = str(e.value)
    assert f"sae/{art.key}" in msg and "tensors.safetensors" in msg and f"rm -r {art.path}" in msg


def test_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(artifacts.CACHE_ENV, str(blocker / "cache"))
    for call in (artifacts.check_writable, lambda: artifacts.get_or_build("x", {}, lambda f: None)):
        with pytest.raises(artifacts.ArtifactError, match=f"{artifacts.CACHE_ENV} to a writable folder"):
            call()


@pytest.mark.parametrize("error", ["oserror", "safetensors"])
def test_full_disk_during_a_build_is_a_clear_error_and_leaves_nothing(tmp_cache, error):
    import errno

    from safetensors import SafetensorError

    def build(folder):
        (folder / "part").write_bytes(b"x")
        if error == "oserror":  # Python's own writers
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / "tensors.safetensors"))
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                              "\"No space left on device\" })")  # what safetensors' writer raises

    with pytest.raises(artifacts.ArtifactError, match="the disk is full.*free space"):
        artifacts.get_or_build("ft", {"lr": 1}, build)
    assert list((tmp_cache / "ft").iterdir()) == []


def test_a_cache_on_a_nearly_full_disk_is_refused_before_any_work(tmp_cache, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, (10 << 30) - (200 << 20), 200 << 20))
    with pytest.raises(artifacts.ArtifactError, match="200 MB free.*at least 1 GB"):
        artifacts.check_writable()


def test_a_lock_is_never_kept_when_taking_it_fails(tmp_path, monkeypatch):
    from persona_features.core import locks

    lock = locks.FileLock(tmp_path / "x.lock", "a test lock")

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(locks.os, "pwrite", full)
    with pytest.raises(OSError):
        lock.acquire()
    monkeypatch.undo()
    assert lock.acquire(wait=False)  # free again: the failed attempt let go
    lock.release()


def test_an_error_outside_the_cache_is_not_blamed_on_its_disk(tmp_cache):
    def build(folder):
        raise PermissionError(13, "Permission denied", "/etc/elsewhere")

    with pytest.raises(PermissionError):
        artifacts.get_or_build("ft", {"lr": 2}, build)
