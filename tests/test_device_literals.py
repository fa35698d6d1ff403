"""The compute paths take their device from the model: no ``"cpu"`` literal and no ``.cpu()`` call in them.

A tensor fed to the model, or combined with its outputs, is made on ``lm.device``; a result comes back to the host
through ``models.to_host``, whose ``HOST`` is the one CPU literal allowed. Saving (``core.artifacts``), the knob
table (``core.params``), the environment report and the book's runner and plots are not compute paths. The scan
reads tokens, so comments and docstrings that mention the CPU pass, and so does a lookup ``record["cpu"]`` (a field
naming a processor, as in chapter 4's cross-CPU record). Imports no torch.
"""

import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "persona_features"
NOT_COMPUTE = ("core/artifacts.py", "core/params.py", "core/environment.py", "book/")
HOST_FILE, HOST_LINE = "lm/models.py", 'HOST = torch.device("cpu")'


def _value(string: str):
    """A string token's value; None for an f-string, whose value is known only when it runs."""
    try:
        return ast.literal_eval(string)
    except ValueError:
        return None


def violations(source: str) -> list[int]:
    """Lines of ``source`` holding a string literal equal to "cpu" (other than a lookup ``x["cpu"]``) or a
    ``.cpu(`` call."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
              if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    lines = set()
    for i, t in enumerate(tokens):
        lookup = (1 < i < len(tokens) - 1 and tokens[i - 1].string == "[" and tokens[i + 1].string == "]"
                  and (tokens[i - 2].type == tokenize.NAME or tokens[i - 2].string in (")", "]")))  # not a list
        if t.type == tokenize.STRING and _value(t.string) == "cpu" and not lookup:
            lines.add(t.start[0])
        if (t.type == tokenize.NAME and t.string == "cpu" and 0 < i < len(tokens) - 1
                and tokens[i - 1].string == "." and tokens[i + 1].string == "("):
            lines.add(t.start[0])
    return sorted(lines)


def test_the_scan_finds_literals_and_calls_and_skips_comments_and_docstrings():
    source = ('"""Runs on the cpu."""\nx = t.cpu()  # not "cpu"\ny = torch.device(\'cpu\')\n'
              'z = {"device": "cuda"}\nw = t.cpu\nv = r"cpu"\nu = f"{x}cpu"\ns = build["cpu"]\nr = ["cpu"]\n'
              'q = x.to(\n    "cpu")\n')
    assert violations(source) == [2, 3, 6, 9, 11]


def test_compute_paths_take_their_device_from_the_model():
    found, scanned, host = [], 0, 0
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(NOT_COMPUTE):
            continue
        scanned += 1
        lines = path.read_text().splitlines()
        for n in violations(path.read_text()):
            if rel == HOST_FILE and lines[n - 1].strip().startswith(HOST_LINE):
                host += 1
                continue
            found.append(f"src/persona_features/{rel}:{n}: {lines[n - 1].strip()}")
    assert scanned >= 40, f"scanned only {scanned} files under {PACKAGE}"
    assert host == 1, f"{HOST_FILE} must define {HOST_LINE} once (found {host})"
    assert not found, ("CPU literals in compute paths (make tensors on lm.device; bring results back with "
                       "models.to_host):\n" + "\n".join(found))
