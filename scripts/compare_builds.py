"""Do two builds of the book agree? Every chapter's results file and every value its text glues, compared.

For a change that must not move any number (issue 34's redesign): build the book twice, before and after,
from the same cache, then

    .venv/bin/python scripts/compare_builds.py OLD_STAGE NEW_STAGE [--tolerance 1e-9]

where a stage is a runner's staging folder (``_build/stage/<profile>``). Floats are equal within the
tolerance (relative); the software block of a results file (versions) is left out. Prints each difference and
exits 1 if there is one; prints what it compared and exits 0 if there is none.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def differences(old: Any, new: Any, tolerance: float, where: str = "") -> list[str]:
    """Where two JSON values differ: floats beyond ``tolerance`` (relative), anything else at all."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = [f"{where}/{k}: only in the {'old' if k in old else 'new'} build" for k in sorted(set(old) ^ set(new))]
        return out + [d for k in sorted(set(old) & set(new)) for d in differences(old[k], new[k], tolerance,
                                                                                   f"{where}/{k}")]
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: {len(old)} items, now {len(new)}"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, tolerance, f"{where}[{i}]")]
    if isinstance(old, float) and isinstance(new, float):
        same = (math.isnan(old) and math.isnan(new)) or math.isclose(old, new, rel_tol=tolerance, abs_tol=tolerance)
        return [] if same else [f"{where}: {old!r}, now {new!r}"]
    return [] if old == new and type(old) is type(new) else [f"{where}: {old!r}, now {new!r}"]


def results(stage: Path) -> dict[str, Any]:
    """Each chapter's results file: chapter, params and metrics (not the software versions; not the runner's own
    ``_runs.json``, whose times differ from run to run)."""
    return {p.stem: {k: v for k, v in json.loads(p.read_text()).items() if k != "software"}
            for p in sorted((stage / "results").glob("*.json")) if not p.name.startswith("_")}


def glued(stage: Path) -> dict[str, dict[str, str]]:
    """Per executed notebook, each glued name and its text (a figure's text is its repr, so it is left out)."""
    out = {}
    for nb in sorted((stage / "notebooks").glob("*.ipynb")):
        values = {}
        for cell in json.loads(nb.read_text())["cells"]:
            for o in cell.get("outputs", []):
                name = o.get("metadata", {}).get("scrapbook", {}).get("name")
                if name and "image/png" not in o.get("data", {}):
                    values[name] = "".join(o["data"].get("text/plain", ""))
                elif name:
                    values[name] = "(figure)"
        out[nb.stem] = values
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args(argv)
    for stage in (args.old, args.new):
        if not (stage / "results").is_dir():
            raise SystemExit(f"{stage}: no results/ folder; pass a runner's stage, e.g. _build/stage/cpu")
    old_r, new_r, old_g, new_g = results(args.old), results(args.new), glued(args.old), glued(args.new)
    found = differences(old_r, new_r, args.tolerance, "results") + differences(old_g, new_g, 0.0, "glued")
    for line in found:
        print(line)
    n_glued = sum(map(len, new_g.values()))
    print(f"{len(found)} differences; compared {len(new_r)} results files and {n_glued} glued values "
          f"in {len(new_g)} notebooks")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
