"""The artifact cache: every expensive result, keyed by what produced it.

An artifact is a folder ``<root>/<kind>/<key>/``. Its key hashes its kind, its config and
the keys of its inputs. It is built in a temporary sibling folder and renamed into place
only once complete, with ``meta.json`` written last, so a crash mid-build leaves nothing
that is ever read. Tensors are stored as safetensors, metadata as JSON; nothing is pickled.

While a process builds an artifact it holds that artifact's lock (``locks.FileLock``): another
process that needs it waits and then reads it. ``meta.json`` records every file's size; an
artifact whose files no longer match (a truncated copy, a disk that filled up) is rebuilt with a
warning, and a file that cannot be read raises an ``ArtifactError`` that names the fix.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from persona_features.core.locks import FileLock, pid_alive
from persona_features.core.paths import repo_root

CACHE_ENV = "PERSONA_CACHE"
META = "meta.json"
# errors of the cache's disk, not of the build: reported as such, with the fix
DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
               errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is a file, not a folder"}


class ArtifactError(RuntimeError):
    """An artifact cannot be written or read; the message names it and the fix."""


def cache_root() -> Path:
    """``$PERSONA_CACHE`` if set, else ``.cache/artifacts`` in the repository (git-ignored)."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else repo_root() / ".cache" / "artifacts"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(obj: Any) -> str:
    """A short hash of JSON-serialisable content (texts, rows) for a key that must change when it does."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


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
        return self._read(META, lambda p: json.loads(p.read_text()))

    def tensors(self, name: str = "tensors") -> dict[str, torch.Tensor]:
        return self._read(f"{name}.safetensors", load_file)

    def json(self, name: str) -> Any:
        return self._read(f"{name}.json", lambda p: json.loads(p.read_text()))

    def _read(self, file: str, reader: Callable[[Path], Any]) -> Any:
        path = self.path / file
        try:
            return reader(path)
        except FileNotFoundError:
            raise
        except Exception as e:  # safetensors, json and OS errors of a damaged file
            raise ArtifactError(
                f"artifact {self.kind}/{self.key}: {file} cannot be read ({type(e).__name__}: {e}). The cached copy "
                f"is damaged: delete it with `rm -r {self.path}` and rerun the notebook or command that needs it, "
                "which rebuilds it.") from e


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


def _file_sizes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def damage(path: Path) -> str | None:
    """Why the finished artifact at ``path`` cannot be trusted, or None. Artifacts written before sizes
    were recorded are checked for a readable ``meta.json`` only."""
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError) as e:
        return f"{META} cannot be read ({e})"
    for name, size in meta.get("files", {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes; it was written with {size}"
    return None


def find(kind: str, config: Mapping[str, Any], inputs: Sequence[str] = ()) -> Artifact | None:
    """The finished, undamaged artifact for this config, or None."""
    key = artifact_key(kind, config, inputs)
    path = cache_root() / kind / key
    return Artifact(kind, key, path) if (path / META).is_file() and damage(path) is None else None


def _remove_stale_builds(parent: Path, key: str) -> None:
    for tmp in parent.glob(f".{key}.build-*"):
        pid = tmp.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _discard_damaged(path: Path, why: str) -> None:
    warnings.warn(f"the cached artifact {path} is damaged ({why}); it is deleted and built again", RuntimeWarning,
                  stacklevel=3)
    aside = path.with_name(f".{path.name}.damaged-{os.getpid()}")
    os.rename(path, aside)  # out of the way at once, then deleted
    shutil.rmtree(aside, ignore_errors=True)


MIN_FREE_BYTES = 1 << 30  # a run needs at least this much room in the cache (one fine-tune is 10-500 MB)


def _cache_message(what: str, reason: str, e: BaseException) -> ArtifactError:
    return ArtifactError(f"cannot write {what}: {reason} ({e}). The artifact cache is {cache_root()}: free space "
                         f"there, or set {CACHE_ENV} to a writable folder with room, then run again.")


def _disk_error(e: BaseException, what: str) -> ArtifactError | None:
    """``e`` as a clear error if the cache's disk caused it (full, read-only, not writable), else None.

    Writers other than Python's own (safetensors, torch) raise their own types with the system's message."""
    if not isinstance(e, OSError):
        full = "No space left on device" in str(e) or "Disk quota exceeded" in str(e)
        return _cache_message(what, "the disk is full", e) if full else None
    reason = DISK_ERRORS.get(e.errno) if e.errno is not None else None
    root = cache_root().resolve()
    where = Path(e.filename).resolve() if isinstance(e.filename, (str, Path)) else None
    if reason is None or (where is not None and root not in (where, *where.parents) and where not in root.parents):
        return None  # not the cache's disk (say, a file the build reads elsewhere)
    return _cache_message(what, reason, e)


def check_writable() -> None:
    """Raise ``ArtifactError`` now if the cache cannot be written, or its disk has less than ``MIN_FREE_BYTES``
    free (the runner calls it before any work)."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
        free = shutil.disk_usage(root).free
    except OSError as e:  # anything on the way to the cache root is the cache's problem here
        reason = DISK_ERRORS.get(e.errno, "it cannot be written") if e.errno is not None else "it cannot be written"
        raise _cache_message(f"the artifact cache {root}", reason, e) from e
    if free < MIN_FREE_BYTES:
        raise ArtifactError(f"the disk holding the artifact cache {root} has {free / 2**20:.0f} MB free; a run needs "
                            f"at least {MIN_FREE_BYTES / 2**30:.0f} GB. Free space there, or set {CACHE_ENV} to a "
                            "folder on a disk with room.")


def get_or_build(
    kind: str,
    config: Mapping[str, Any],
    build: Callable[[Path], Mapping[str, Any] | None],
    inputs: Sequence[str] = (),
) -> Artifact:
    """Return the artifact for ``config``, building it first if it is not cached.

    ``build(folder)`` writes its files into ``folder`` (a fresh temporary folder) and may
    return extra metadata. Only when it returns is the folder renamed into place. The artifact's
    lock is held meanwhile: a second process asking for it waits, then reads what the first built.
    """
    found = find(kind, config, inputs)
    if found:
        return found
    key = artifact_key(kind, config, inputs)
    parent = cache_root() / kind
    final = parent / key
    try:
        parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(parent / f".{key}.lock", f"the artifact {kind}/{key}")
        lock.acquire()
    except OSError as e:
        raise (_disk_error(e, f"the artifact {kind}/{key}") or e) from e
    try:
        if (final / META).is_file():  # built by the process we waited for, or damaged
            why = damage(final)
            if why is None:
                return Artifact(kind, key, final)
            _discard_damaged(final, why)
        _remove_stale_builds(parent, key)
        tmp = parent / f".{key}.build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            extra = build(tmp) or {}
            meta = {"kind": kind, "key": key, "config": dict(config), "inputs": list(inputs), **dict(extra),
                    "files": _file_sizes(tmp)}
            (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            os.rename(tmp, final)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, Exception) and (err := _disk_error(e, f"the artifact {kind}/{key}")):
                raise err from e
            raise
    finally:
        lock.release()
    return Artifact(kind, key, final)
