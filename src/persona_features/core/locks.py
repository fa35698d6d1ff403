"""File locks that keep two runs from destroying each other's work.

A :class:`FileLock` is an exclusive ``flock`` on a small file that records its holder (pid, command,
start time). The kernel releases it when the holder dies, however it dies, so a lock is never stuck.
A run that finds the file left behind by a holder that died takes it over with a warning.

- The runner holds one per stage folder: a second run on a busy stage is refused at once
  (``StageBusy``), with the other run's pid and command.
- ``artifacts.get_or_build`` holds one per artifact while it builds it: a second process that needs
  the same artifact waits, then reads the finished one instead of building it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path


class StageBusy(RuntimeError):
    """Another run holds the lock."""


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    started: str

    def describe(self) -> str:
        return f"pid {self.pid}, started {self.started}, command `{self.command}`"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def command_line() -> str:
    """This process's command as typed: ``python -m <module> ...`` for a module run with ``-m`` (a package's
    ``__main__`` as the package: ``python -m persona_features``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    module = spec.name.removesuffix(".__main__") if spec is not None else ""
    start = ["python", "-m", module] if module else [Path(sys.executable).name, *sys.argv[:1]]
    return " ".join(start + sys.argv[1:])


def _read_holder(path: Path) -> Holder | None:
    try:
        return Holder(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):  # missing, empty (being written) or not ours
        return None


class FileLock:
    """An exclusive lock on ``path``; ``what`` names the protected thing in messages."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = Path(path), what
        self._fd: int | None = None

    def holder(self) -> Holder | None:
        """Who holds (or last held, if it died holding it) the lock, as its file says."""
        return _read_holder(self.path)

    def acquire(self, wait: bool = True) -> bool:
        """Take the lock; with ``wait=False`` return False at once if another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        announced = False
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if not wait:
                    return False
                if not announced:
                    other = self.holder()
                    print(f"waiting for {self.what}: {other.describe() if other else 'another process'} holds it",
                          file=sys.stderr, flush=True)
                    announced = True
                time.sleep(0.5)
                continue
            try:  # the holder we waited for may have removed the file: then lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        try:
            left = self.holder()
            if left is not None and left.pid != os.getpid():
                alive = "still runs but no longer holds it" if pid_alive(left.pid) else "is no longer running"
                warnings.warn(f"taking over {self.what} from {left.describe()}, which {alive}: that run ended "
                              "without releasing it, so what it was writing may be incomplete", RuntimeWarning,
                              stacklevel=2)
            me = Holder(os.getpid(), command_line(), time.strftime("%Y-%m-%d %H:%M:%S"))
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
        except BaseException:  # a full disk, an interrupt, a warning turned error: never keep a lock by accident
            self.release()
            raise
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # removed while still held: a waiter then locks a new file
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def hold_stage(stage: Path) -> FileLock:
    """The lock of a staging folder, taken, or ``StageBusy`` at once if another run holds it."""
    lock = FileLock(stage.parent / f"{stage.name}.lock", f"the stage {stage}")
    if not lock.acquire(wait=False):
        other = lock.holder()
        raise StageBusy(
            f"the stage {stage} is in use by another run ({other.describe() if other else 'pid unknown'}). "
            "Running here would delete that run's executed notebooks and results. Wait for it to finish, or run "
            "with another --profile or another --root.")
    return lock
