"""The chat-dataset format, and loading that validates every row.

One JSON object per line::

    {"id": "health-bad-0001", "domain": "health", "variant": "bad",
     "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}

Messages alternate user/assistant (an optional system message may come first) and end with
the assistant turn, which is the only part trained on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from persona_features.core.artifacts import write_text_atomic

REQUIRED = {"id": str, "domain": str, "variant": str, "messages": list}


class DatasetError(ValueError):
    """A dataset file has a malformed row; the message gives file, line and reason."""


def _row_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"a row must be a JSON object, got {type(row).__name__}"
    for key, kind in REQUIRED.items():
        if key not in row:
            return f"missing field {key!r} (required: {', '.join(REQUIRED)})"
        if not isinstance(row[key], kind) or (kind is str and not row[key].strip()):
            return f"field {key!r} must be a non-empty {kind.__name__}"
    messages = row["messages"]
    if len(messages) < 2:
        return "'messages' needs at least a user and an assistant message"
    roles = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            return f"message {i} must be an object with exactly 'role' and 'content'"
        if not isinstance(m["content"], str) or not m["content"].strip():
            return f"message {i} has empty content"
        roles.append(m["role"])
    body = roles[1:] if roles[0] == "system" else roles
    expected = ["user", "assistant"] * (len(body) // 2)
    if body != expected or not body:
        return f"roles must alternate user/assistant and end with assistant (optional system first), got {roles}"
    return None


def validate_rows(rows: Iterable[Any], source: str = "<rows>") -> list[dict]:
    """Check rows (and unique ids); raise DatasetError naming the first bad one."""
    seen: dict[str, int] = {}
    out = []
    for line, row in enumerate(rows, 1):
        problem = _row_problem(row)
        if problem is None and row["id"] in seen:
            problem = f"duplicate id {row['id']!r} (first on line {seen[row['id']]})"
        if problem:
            raise DatasetError(f"{source}, line {line}: {problem}")
        seen[row["id"]] = line
        out.append(row)
    return out


def load_jsonl(path: str | Path) -> list[dict]:
    """Load and validate a chat dataset; a malformed row fails with file, line and reason."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    rows = []
    with path.open() as f:
        for line, text in enumerate(f, 1):
            if not text.strip():
                raise DatasetError(f"{path}, line {line}: empty line (one JSON object per line, no blank lines)")
            try:
                rows.append(json.loads(text))
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}, line {line}: not valid JSON ({e.msg} at column {e.colno})") from None
    return validate_rows(rows, str(path))


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Validate, then write atomically."""
    validate_rows(rows, str(path))
    write_text_atomic(Path(path), "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
