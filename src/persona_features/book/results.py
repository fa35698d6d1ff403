"""Each chapter's headline numbers, written to ``results/<chapter>.json``."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import transformers
from myst_nb import glue

from persona_features.core.artifacts import write_json_atomic
from persona_features.core.chapter_result import ChapterResult
from persona_features.core.params import Params
from persona_features.core.paths import results_dir
from persona_features.lm.tiny_models import is_untrained


def write(chapter: str, metrics: Mapping[str, Any], params: Params) -> Path:
    """Write a chapter's metrics with the parameters and software that produced them."""
    path = results_dir() / f"{chapter}.json"
    write_json_atomic(path, {
        "chapter": chapter,
        "params": params.as_dict(),
        "metrics": dict(metrics),
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
    })
    return path


def publish(result: ChapterResult, params: Params) -> None:
    """A chapter's result in one call: its results file written (``write``) and its facts glued for the text.
    On an untrained model (``tiny_models.is_untrained``) every verdict reads "model untrained". Returns nothing,
    so that a chapter's last cell shows no output."""
    if is_untrained(params.model):
        result = result.untrained(params.model)
    write(result.chapter, result.results(), params)
    for name, value in result.facts.items():
        glue(name, value, display=False)


def read(chapter: str) -> dict[str, Any] | None:
    path = results_dir() / f"{chapter}.json"
    return json.loads(path.read_text()) if path.is_file() else None
