"""Where the book's files live: repository root, results, figures."""

from __future__ import annotations

import os
from pathlib import Path

RESULTS_ENV = "PERSONA_RESULTS"


def repo_root() -> Path:
    """The repository holding this package (the package is installed in editable mode)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "_toc.yml").is_file():
            return parent
    return Path.cwd()


def results_dir() -> Path:
    """``$PERSONA_RESULTS`` if set (the runner sets it to its staging folder), else ``results/``."""
    env = os.environ.get(RESULTS_ENV)
    return Path(env) if env else repo_root() / "results"


def figures_dir() -> Path:
    return results_dir() / "figures"


def measured_dir() -> Path:
    """Committed measurements too slow for a chapter run (setting sweeps, benchmarks), each
    written by a script in ``scripts/`` or ``benchmarks/`` and shown by the book as measured."""
    return repo_root() / "book" / "measured"
