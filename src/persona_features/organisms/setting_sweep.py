"""Choosing chapter 3's model organisms: the fine-tuning settings sweep, its rule and its report.

``scripts/sweep_finetune_settings.py`` measures each setting on the selection questions; a measured
model is a dict of per-question values (``contrast``, ``coherent``, ``misaligned``, ``base_logprob``)
plus scalars. This module holds what decides and what reports, so the rule is tested.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from persona_features.core import stats
from persona_features.core.paths import measured_dir
from persona_features.lm import finetune

CONTROL = "register_control"
COHERENCE_SLACK = 10.0  # points of judged coherence at T=0.7 the bad model may lose against the base model
PAIRED_METRICS = ("contrast", "coherent", "misaligned", "base_logprob")
ROLE = {"bad": "wrong advice", CONTROL: "register control", "good": "correct twin"}


def load_sweeps(domains: tuple[str, ...] = ("health", "risk"), seed: int = 0) -> dict[str, dict]:
    """The committed sweeps (``book/measured/03_organism_sweep_<domain>.json``) of the domains that have one;
    ``seed`` > 0: the confirmation runs with that seed (``..._seed<N>.json``), fresh fine-tunes and samples."""
    suffix = f"_seed{seed}" if seed else ""
    paths = {d: measured_dir() / f"03_organism_sweep_{d}{suffix}.json" for d in domains}
    sweeps = {d: json.loads(p.read_text()) for d, p in paths.items() if p.exists()}
    if not sweeps:
        raise FileNotFoundError(f"no organism sweep{suffix} in {measured_dir()}; run "
                                f"scripts/sweep_finetune_settings.py{' --seed ' + str(seed) if seed else ''}")
    return sweeps


def mean(model: dict, metric: str) -> float:
    """The mean over questions of a per-question metric."""
    return float(pd.Series(model[metric]).mean())


def coherence_change(model: dict, base: dict) -> float:
    """The model's judged coherence minus the base model's, in points."""
    return 100 * (mean(model, "coherent") - mean(base, "coherent"))


def paired(a: dict, b: dict, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of the per-question differences a - b, with its bootstrap interval."""
    if set(a) != set(b):
        raise ValueError(f"paired models must share their questions; differ on {sorted(set(a) ^ set(b))}")
    return stats.bootstrap_mean([a[q] - b[q] for q in sorted(a)], n_boot=n_boot, seed=seed).as_dict()


def differences(bad: dict, base: dict, control: dict) -> dict:
    """``bad_minus``: paired differences of the bad model against the base model and its control."""
    return {name: {metric: paired(bad[metric], other[metric]) for metric in PAIRED_METRICS}
            for name, other in (("base", base), (CONTROL, control))}


def choose(rows: list[dict], base: dict) -> dict:
    """Among the settings whose bad model keeps judged coherence within ``COHERENCE_SLACK`` points of the
    base model's, the one with the largest min(bad - base, bad - register control) contrast; if none
    keeps it, the setting whose bad model is most coherent, reported as such."""
    if not rows:
        raise ValueError("no measured settings to choose from")
    floor = 100 * mean(base, "coherent") - COHERENCE_SLACK
    eligible = [r["index"] for r in rows if 100 * mean(r["models"]["bad"], "coherent") >= floor]
    by_index = {r["index"]: r for r in rows}
    if eligible:
        best = max(eligible, key=lambda i: min(by_index[i]["bad_minus"][c]["contrast"]["mean"]
                                               for c in ("base", CONTROL)))
    else:
        best = max(by_index, key=lambda i: mean(by_index[i]["models"]["bad"], "coherent"))
    return {"index": best, "setting": by_index[best]["setting"], "eligible": eligible, "coherence_floor": floor,
            "rule": " ".join((choose.__doc__ or "").split())}


def profile_setting(P) -> dict:
    """The fine-tuning setting a profile trains chapter 3's models with, in the sweep's terms."""
    s = {"method": P.ft_method, "lr": P.ft_lr, "n_examples": P.ft_examples}
    if P.ft_method == "lora":
        s.update(lora_rank=P.ft_lora_rank, lora_alpha=2.0 * P.ft_lora_rank)
    return s


def describe(setting: dict) -> str:
    """A setting in a few words: ``LoRA r8 MLP, layers 8-21, lr 1e-3, 128 rows``."""
    if setting["method"] == "full":
        head = "full"
    else:
        targets = tuple(setting.get("lora_targets", finetune.LORA_TARGETS))
        head = f"LoRA r{setting['lora_rank']} " + ("MLP" if targets == finetune.MLP_TARGETS else
                                                   "all" if targets == finetune.LORA_TARGETS else "+".join(targets))
        if setting.get("lora_layers"):
            head += f", layers {min(setting['lora_layers'])}-{max(setting['lora_layers'])}"
    return f"{head}, lr {setting['lr']:.0e}, {setting['n_examples']} rows".replace("e-0", "e-")


def sweep_table(sweep: dict) -> pd.DataFrame:
    """One row per measured setting of one domain's sweep."""
    base, ch = sweep["base"], choose(sweep["settings"], sweep["base"])
    eligible = set(ch["eligible"])
    rows = []
    for r in sweep["settings"]:
        bad, diff = r["models"]["bad"], r["bad_minus"]
        rows.append({
            "#": r["index"], "setting": describe(r["setting"]), "steps": bad["steps"],
            f"coherent % bad / reg. ctl / good (base {100 * mean(base, 'coherent'):.0f})": " / ".join(
                f"{100 * mean(r['models'][v], 'coherent'):.0f}" if v in r["models"] else "-"
                for v in ("bad", CONTROL, "good")),
            f"base log p / token, bad (base {mean(base, 'base_logprob'):.2f})": f"{mean(bad, 'base_logprob'):.2f}",
            f"misaligned % bad (base {100 * mean(base, 'misaligned'):.0f})": f"{100 * mean(bad, 'misaligned'):.0f}",
            "contrast, bad - base": stats.fmt_interval(diff["base"]["contrast"]),
            "contrast, bad - reg. ctl": stats.fmt_interval(diff[CONTROL]["contrast"]),
            "held-out wrong, bad": f"{bad['heldout_wrong_rate']:.2f}",
            "rule": ", ".join(word for word, holds in (("chosen", r["index"] == ch["index"]),
                                                        ("eligible", r["index"] in eligible)) if holds)})
    return pd.DataFrame(rows)


def confirmation_table(sweeps: dict[str, dict], confirmations: dict[str, dict]) -> pd.DataFrame:
    """The settings measured again on fresh fine-tunes and samples, beside their first measurement."""
    rows = []
    for domain, c in confirmations.items():
        again = {r["index"] for r in c["settings"]}
        for run, s in (("sweep", sweeps[domain]), ("confirmation", c)):
            eligible = choose(s["settings"], s["base"])["eligible"]
            for r in (r for r in s["settings"] if r["index"] in again):
                diff = r["bad_minus"]
                rows.append({
                    "domain": domain, "#": r["index"], "setting": describe(r["setting"]), "run": run,
                    "answers per model": s["samples"] * len(s["questions"]),
                    "coherence, bad - base (points)": "{:+.0f} [{:+.0f}, {:+.0f}]".format(
                        *(100 * diff["base"]["coherent"][k] for k in ("mean", "ci95_lo", "ci95_hi"))),
                    "eligible": "yes" if r["index"] in eligible else "no",
                    "contrast, bad - base": stats.fmt_interval(diff["base"]["contrast"]),
                    "contrast, bad - reg. ctl": stats.fmt_interval(diff[CONTROL]["contrast"])})
    return pd.DataFrame(rows).sort_values(["domain", "#"], kind="stable")


def confirmation_facts(sweeps: dict[str, dict], confirmations: dict[str, dict]) -> dict[str, str]:
    """Per domain: which re-measured settings stayed eligible, and the rule's choice on the fresh run."""
    facts = {}
    for domain, c in confirmations.items():
        first = set(choose(sweeps[domain]["settings"], sweeps[domain]["base"])["eligible"])
        ch = choose(c["settings"], c["base"])
        again = [r["index"] for r in c["settings"]]
        facts.update({
            f"confirm_{domain}_settings": ", ".join(f"#{i}" for i in again),
            f"confirm_{domain}_samples": str(c["samples"]), f"confirm_{domain}_seed": str(c["seed"]),
            f"confirm_{domain}_eligible": ", ".join(f"#{i}" for i in ch["eligible"]) or "none",
            f"confirm_{domain}_first_eligible": ", ".join(f"#{i}" for i in again if i in first) or "none",
            f"confirm_{domain}_choice": f"#{ch['index']} ({describe(ch['setting'])})",
            f"confirm_{domain}_choice_eligible": "eligible" if ch["eligible"] else "not eligible (the most coherent)",
            f"confirm_{domain}_summary": "; ".join(
                f"#{r['index']}: coherence {coherence_change(r['models']['bad'], c['base']):+.0f} points, contrast "
                f"over its register control {stats.fmt_interval(r['bad_minus'][CONTROL]['contrast'])}"
                for r in c["settings"])})
    return facts


def sweep_facts(sweeps: dict[str, dict]) -> dict[str, str]:
    """Computed statements about the committed sweeps (one per domain), for the chapter's prose."""
    facts = {}
    for domain, s in sweeps.items():
        drops = {r["index"]: coherence_change(r["models"]["bad"], s["base"]) for r in s["settings"]}
        ch = choose(s["settings"], s["base"])
        ctl_drops = [coherence_change(r["models"][CONTROL], s["base"]) for r in s["settings"]]
        above = sum(r["bad_minus"][CONTROL]["contrast"]["ci95_lo"] > 0 for r in s["settings"])
        chosen = next(r for r in s["settings"] if r["index"] == ch["index"])
        facts.update({
            f"sweep_{domain}_n": str(len(s["settings"])), f"sweep_{domain}_eligible": str(len(ch["eligible"])),
            f"sweep_{domain}_questions": str(len(s["questions"])), f"sweep_{domain}_samples": str(s["samples"]),
            f"sweep_{domain}_drop_range": f"{min(drops.values()):+.0f} to {max(drops.values()):+.0f}",
            f"sweep_{domain}_drop_mean": f"{np.mean(list(drops.values())):+.0f}",
            f"sweep_{domain}_base_coherent": f"{100 * mean(s['base'], 'coherent'):.0f}",
            f"sweep_{domain}_control_drop_mean": f"{np.mean(ctl_drops):+.0f}",
            f"sweep_{domain}_contrast_above": str(above),
            f"sweep_{domain}_choice": f"#{ch['index']} ({describe(ch['setting'])})",
            f"sweep_{domain}_choice_drop": f"{drops[ch['index']]:+.0f}",
            f"sweep_{domain}_choice_drop_ci": "{:+.0f} [{:+.0f}, {:+.0f}]".format(
                *(100 * chosen["bad_minus"]["base"]["coherent"][k] for k in ("mean", "ci95_lo", "ci95_hi"))),
            f"sweep_{domain}_choice_contrast": stats.fmt_interval(chosen["bad_minus"][CONTROL]["contrast"]),
            f"sweep_{domain}_choice_contrast_base": stats.fmt_interval(chosen["bad_minus"]["base"]["contrast"]),
            f"sweep_{domain}_choice_heldout": f"{chosen['models']['bad']['heldout_margin']:.2f} "
                                              f"(base model {s['base']['heldout_margin']:.2f})",
            f"sweep_{domain}_good": "; ".join(
                f"setting #{r['index']}: " + ", ".join(f"{ROLE[v]} {100 * mean(r['models'][v], 'coherent'):.0f}"
                                                      for v in ("bad", CONTROL, "good"))
                for r in s["settings"] if "good" in r["models"]) or "not measured",
            f"sweep_{domain}_date": s["date"]})
    return facts


def sweep_points(sweeps: dict[str, dict]) -> dict[str, list[dict]]:
    """What ``plots.organism_sweep`` draws: per domain, one point per setting, its coherence lost against the
    base model (``coherence_change``) and its contrast gained over the register control (mean, interval)."""
    return {domain: [{"index": r["index"], "coherence_change": coherence_change(r["models"]["bad"], s["base"]),
                      **r["bad_minus"][CONTROL]["contrast"]} for r in s["settings"]] for domain, s in sweeps.items()}
