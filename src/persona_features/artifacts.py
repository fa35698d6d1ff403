"""The artifact cache: every expensive result, keyed by what produced it.

An artifact is a folder ``<root>/<kind>/<key>/``. Its key hashes its kind, its config and
the keys of its inputs. It is built in a temporary sibling folder and renamed into place
only once complete, with ``meta.json`` written last, so a crash mid-build leaves nothing
that is ever read. Tensors are stored as safetensors, metadata as JSON; nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from safetensors.torch import load_file, save_file

from .paths import repo_root

CACHE_ENV = "PERSONA_CACHE"
META = "meta.json"


def cache_root() -> Path:
    """``$PERSONA_CACHE`` if set, else ``.cache/artifacts`` in the repository (git-ignored)."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else repo_root() / ".cache" / "artifacts"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def artifact_key(kind: str, config: Mapping[str, Any], inputs: Sequence[str] = ()) -> str:
    """A content hash of kind, config and input keys (config must be JSON-serialisable)."""
    try:
        blob = canonical_json({"kind": kind, "config": config, "inputs": list(inputs)})
    except TypeError as e:
        raise TypeError(f"artifact config for {kind!r} must be JSON-serialisable: {e}") from None
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Artifact:
    kind: str
    key: str
    path: Path

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / META).read_text())

    def tensors(self, name: str = "tensors") -> dict[str, torch.Tensor]:
        return load_file(self.path / f"{name}.safetensors")

    def json(self, name: str) -> Any:
        return json.loads((self.path / f"{name}.json").read_text())


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename: readers never see half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_tensors(folder: Path, tensors: Mapping[str, torch.Tensor], name: str = "tensors") -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, folder / f"{name}.safetensors")


def save_json(folder: Path, name: str, obj: Any) -> None:
    (folder / f"{name}.json").write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def find(kind: str, config: Mapping[str, Any], inputs: Sequence[str] = ()) -> Artifact | None:
    """The finished artifact for this config, or None."""
    key = artifact_key(kind, config, inputs)
    path = cache_root() / kind / key
    return Artifact(kind, key, path) if (path / META).is_file() else None


def _remove_stale_builds(parent: Path, key: str) -> None:
    for tmp in parent.glob(f".{key}.build-*"):
        pid = tmp.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def get_or_build(
    kind: str,
    config: Mapping[str, Any],
    build: Callable[[Path], Mapping[str, Any] | None],
    inputs: Sequence[str] = (),
) -> Artifact:
    """Return the artifact for ``config``, building it first if it is not cached.

    ``build(folder)`` writes its files into ``folder`` (a fresh temporary folder) and may
    return extra metadata. Only when it returns is the folder renamed into place.
    """
    found = find(kind, config, inputs)
    if found:
        return found
    key = artifact_key(kind, config, inputs)
    parent = cache_root() / kind
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(parent, key)
    tmp = parent / f".{key}.build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    final = parent / key
    try:
        extra = build(tmp) or {}
        meta = {"kind": kind, "key": key, "config": dict(config), "inputs": list(inputs), **dict(extra)}
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / META).is_file():  # not a concurrent finished build: a real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Artifact(kind, key, final)
