"""The reproducibility appendix's generated tables: run times, seeds, data cards, benchmark."""

from __future__ import annotations

import json
from pathlib import Path

from persona_features.core.paths import measured_dir


def _read(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def runs_markdown(stage_root: Path) -> str:
    """Wall time of each notebook in the latest run of every profile staged under ``stage_root``."""
    rows = ["| notebook | profile | wall time (s) | status |", "|---|---|---|---|"]
    for results in sorted(stage_root.glob("*/results")):
        for r in _read(results / "_runs.json") or []:
            rows.append(f"| `{r['notebook']}` | {r['profile']} | {r['seconds']:.1f} | "
                        f"{'ok' if r['ok'] else 'failed'} |")
    return "\n".join(rows) + "\n"


def seeds_markdown(results: Path) -> str:
    """The seed behind every chapter's numbers, and each fine-tune's own seed."""
    rows = ["| chapter | profile | global seed | fine-tune seeds |", "|---|---|---|---|"]
    for path in sorted(results.glob("[0-9]*.json")):
        data = _read(path)
        p, training = data["params"], data["metrics"].get("training", {})
        ft = ", ".join(f"{name}: {t['seed']}" for name, t in training.items()) or "-"
        rows.append(f"| {path.stem} | {p['profile']} | {p['seed']} | {ft} |")
    return "\n".join(rows) + "\n"


def measure_times_markdown(results: Path) -> str:
    """Where chapter 3's time goes: each model's fine-tune and each measuring step, in seconds, as built."""
    data = _read(results / "03_emergent_misalignment.json")
    if not data:
        return "Chapter 3 did not run in this build.\n"
    m, persona = data["metrics"], data["metrics"].get("persona_organisms", {})
    training = {**m["training"], **persona.get("training", {})}
    steps = {**m["measure_seconds"], **persona.get("measure_seconds", {})}
    steps.update({f"distillation ({s})": t for s, t in (persona.get("distillation_seconds") or {}).items() if t})
    names = list(dict.fromkeys(k for s in steps.values() for k in s))
    rows = [f"| model | fine-tune | {' | '.join(names)} | total |", "|---" * (len(names) + 3) + "|"]
    for model, s in steps.items():
        ft = training.get(model, {}).get("seconds")
        cells = [f"{s[k]:.0f}" if k in s else "-" for k in names]
        total = (ft or 0.0) + sum(s.values())
        rows.append(f"| {model} | {'-' if ft is None else f'{ft:.0f}'} | {' | '.join(cells)} | {total:.0f} |")
    return "\n".join(rows) + (f"\n\nProfile {data['params']['profile']}; `answers_T<t>` samples and judges the answers "
                              "at temperature t, `answers_<persona>` the distillation's answers under that persona's "
                              "prompt; each artifact's time is from the run that built it.\n")


def data_cards_markdown(results: Path) -> str:
    """The training sets' data cards, as chapter 2 measured them."""
    data = _read(results / "02_measuring.json")
    if not data:
        return "Chapter 2 did not run in this build.\n"
    rows = ["| set | rows | unique questions | unique answers | distinct-4 | tokens (min/median/max) | "
            "eval overlap (exact / 6-grams) | how made |", "|---|---|---|---|---|---|---|---|"]
    for c in data["metrics"]["data_cards"]:
        o = c["eval_overlap"]
        rows.append(f"| `{c['name']}` | {c['size']} | {c['unique_questions']} | {c['unique_answers']} | "
                    f"{c['distinct_4']:.3f} | {' / '.join(map(str, c['tokens_min_median_max']))} | "
                    f"{o['exact_question_matches']} / {o['shared_6grams']} | {c['how_made']} |")
    return "\n".join(rows) + "\n"


def benchmark_markdown(data: dict | None = None) -> str:
    """The fine-tuning throughput table written by ``benchmarks/finetune_throughput.py``."""
    data = data or _read(measured_dir() / "benchmark_finetune.json")
    if not data:
        return "Not measured yet: run `benchmarks/finetune_throughput.py`.\n"
    rows = ["| trainer | tokens/s | s/step | vs HF Trainer fp32 |", "|---|---|---|---|"]
    rows += [f"| {name} | {r['tokens_per_s']:.0f} | {r['s_per_step']:.2f} | {r['ratio_vs_hf_fp32']:.2f}x |"
             for name, r in data["runs"].items()]
    return "\n".join(rows) + (f"\n\nMeasured on {data['date']} ({data['cpu']}, {data['cores']} cores, "
                              f"{data['torch_threads']} torch threads): batch {data['batch']}, {data['steps']} steps "
                              f"per run, the first {data['warmup_steps_dropped']} not timed.\n")


def sampler_benchmark_markdown(data: dict | None = None) -> str:
    """The sampling throughput table written by ``benchmarks/sampler_throughput.py``."""
    data = data or _read(measured_dir() / "benchmark_sampler.json")
    if not data:
        return "Not measured yet: run `benchmarks/sampler_throughput.py`.\n"
    rows = ["| model | sampler | tokens/s | vs generate | answer tokens (quartiles) | ended before the limit |",
            "|---|---|---|---|---|---|"]
    for model, runs in data["models"].items():
        base = runs["transformers generate"]["tokens_per_s"]
        rows += [f"| {model} | {name} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / base:.2f}x | "
                 f"{' / '.join(f'{q:.0f}' for q in r['length_quartiles'])} | {r['ended_early']:.0%} |"
                 for name, r in runs.items()]
    return "\n".join(rows) + (
        f"\n\nMeasured on {data['date']} ({data['cpu']}, {data['cores']} cores, {data['torch_threads']} torch "
        f"threads): {data['prompts']} prompts per model in batches of {data['batch']}, at most "
        f"{data['max_new_tokens']} new tokens, temperature {data['temperature']}, {data['rounds']} alternating "
        f"rounds per sampler.\n")
