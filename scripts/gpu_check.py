"""The prepared GPU check: the smoke book on the embedded model and on a tiny Qwen2 fixture, with ``device=cuda``.

    scripts/gpu_check.sh              # on a CUDA machine, with the book installed (make install): under 10 minutes
    scripts/gpu_check.sh --dry-run    # anywhere: build the fixture and check every command's arguments, run nothing

Each chapter runs as its own ``python -m persona_features execute --only NN`` (into the smoke stage, which each
run replaces; the artifact cache is the usual one), so its wall time and its peak GPU memory (polled from
``nvidia-smi`` every half second, for the whole GPU) are its own. Prints one table, chapter by model; exits 1 if
any chapter failed.
The dry run resolves every command's parameters (``params.resolve``, the runner's up-front checks) and lists
the commands, so a renamed knob or chapter fails it on a CPU machine too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

from persona_features.book.runner import select_notebooks
from persona_features.core.params import resolve
from persona_features.core.paths import repo_root
from persona_features.lm import tiny_models

OVERRIDES = {"device": "cuda"}


def plan(root: Path, fixture: Path) -> list[tuple[str, str, list[str]]]:
    """(model label, chapter, command) for every chapter of both models."""
    out = []
    for label, model in (("smollm2-135m", "smollm2-135m"), ("qwen2 fixture", str(fixture))):
        resolve("smoke", model=model, **OVERRIDES)  # the runner's own check, before any work
        for nb in select_notebooks(root):
            chapter = Path(nb).stem[:2]
            out.append((label, Path(nb).stem, [sys.executable, "-m", "persona_features", "execute", "--profile",
                                               "smoke", "--only", chapter, "--root", str(root), "--set",
                                               f"model={model}", *sum((["--set", f"{k}={v}"]
                                                                       for k, v in OVERRIDES.items()), [])]))
    return out


class PeakMemory:
    """The GPU's peak used memory (MiB, from nvidia-smi) while the block runs."""

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True).stdout.split()
            except FileNotFoundError:
                self.peak = -1  # printed as -1: no nvidia-smi to ask
                return
            self.peak = max([self.peak, *(int(x) for x in out if x.isdigit())])
            self._stop.wait(0.5)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="check the plan and list the commands; run nothing")
    args = parser.parse_args(argv)
    root = repo_root()
    fixture = tiny_models.build("qwen2", root / "_build" / "gpu_check" / "qwen2_fixture")
    steps = plan(root, fixture)
    if args.dry_run:
        for label, chapter, cmd in steps:
            print(f"{label:>14}  {chapter:<28}  {' '.join(cmd[1:])}")
        print(f"dry run: {len(steps)} chapter runs planned, every parameter checked; nothing executed")
        return 0
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: run this on a GPU machine, or pass --dry-run", file=sys.stderr)
        return 2
    rows, start = [], time.perf_counter()
    for label, chapter, cmd in steps:
        t = time.perf_counter()
        with PeakMemory() as mem:
            ok = subprocess.run(cmd, cwd=root).returncode == 0
        rows.append((label, chapter, time.perf_counter() - t, mem.peak, ok))
    print(f"\n{'model':>14}  {'chapter':<28}  {'seconds':>8}  {'peak GPU MiB':>12}  status")
    for label, chapter, seconds, peak, ok in rows:
        print(f"{label:>14}  {chapter:<28}  {seconds:8.1f}  {peak:12d}  {'ok' if ok else 'FAILED'}")
    print(f"total {(time.perf_counter() - start) / 60:.1f} min on {torch.cuda.get_device_name(0)}")
    return 0 if all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
