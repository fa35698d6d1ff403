"""Every figure of the book, in one house style, and saving them as PNG."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from persona_features.core.paths import figures_dir

if TYPE_CHECKING:  # for annotations only: the runner imports plots, and must start fast
    from persona_features.experiments.ch1_model import microscope

PALETTE = {"base": "#4C72B0", "bad": "#C44E52", "control": "#55A868", "random": "#8C8C8C", "accent": "#DD8452"}


def use_house_style() -> None:
    matplotlib.rcParams.update({
        "figure.figsize": (7.0, 3.8),
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "legend.frameon": False,
        "font.size": 10,
    })


def save(fig: plt.Figure, name: str) -> Path:
    """Save ``fig`` as ``figures/<name>.png`` beside the results."""
    path = figures_dir() / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def confusion_panels(panels: dict[str, dict], title: str) -> plt.Figure:
    """One 2x2 confusion matrix per panel; each panel is a ``stats.agreement`` result."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2))
    for ax, (name, m) in zip(np.atleast_1d(axes), panels.items()):
        grid = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
        ax.imshow(grid, cmap="Blues")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, str(v), ha="center", va="center", color="black", fontsize=11)
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["no", "yes"], yticklabels=["no", "yes"],
               xlabel="judge says", ylabel="hand label",
               title=f"{name}\nkappa {m['kappa']:.2f}, n = {m['n']}")
        ax.grid(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def rate_bars(ax: plt.Axes, labels: list[str], estimates: list, color: str, ylabel: str) -> None:
    """Bars with 95% interval whiskers; ``estimates`` are ``stats.Estimate``s."""
    means = [e.mean for e in estimates]
    err = [[e.mean - e.lo for e in estimates], [e.hi - e.mean for e in estimates]]
    ax.bar(labels, means, color=color, alpha=0.8, yerr=err, capsize=4)
    ax.set_ylabel(ylabel)


def grouped_bars(ax: plt.Axes, groups: list[str], series: dict[str, list], colors: dict[str, str],
                 ylabel: str) -> None:
    """Bars with 95% whiskers, one cluster per group and one bar per series; ``None`` leaves a gap."""
    width = 0.8 / len(series)
    for k, (name, estimates) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i, e in enumerate(estimates) if e is not None]
        es = [e for e in estimates if e is not None]
        ax.bar(xs, [e.mean for e in es], width, color=colors[name], alpha=0.85, label=name,
               yerr=[[e.mean - e.lo for e in es], [e.hi - e.mean for e in es]], capsize=3)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)


def effect_panels(rows, metrics: dict[str, str], title: str) -> plt.Figure:
    """Point estimates with 95% intervals, one horizontal panel per metric.

    ``rows``: a DataFrame with ``label``, ``metric``, ``mean``, ``ci95_lo``, ``ci95_hi``; ``metrics`` maps
    a metric to its axis label.
    """
    labels = list(dict.fromkeys(rows["label"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.55 * len(labels) + 1.4), sharey=True)
    for ax, (metric, xlabel) in zip(np.atleast_1d(axes), metrics.items()):
        r = rows[rows["metric"] == metric].set_index("label").reindex(labels)
        y = np.arange(len(labels))
        ax.errorbar(r["mean"], y, xerr=[r["mean"] - r["ci95_lo"], r["ci95_hi"] - r["mean"]], fmt="o",
                    color=PALETTE["bad"], capsize=4)
        ax.axvline(0, color="black", lw=0.6)
        ax.set(yticks=y, yticklabels=labels, xlabel=xlabel)
        ax.invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def by_domain_panels(groups: list[str], panels: dict[str, dict[str, list]], colors: dict[str, str],
                     title: str) -> plt.Figure:
    """Stacked ``grouped_bars`` panels sharing the domain axis; each panel's key is its y label."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 3.1 * len(panels)), sharex=True)
    for k, (ax, (ylabel, series)) in enumerate(zip(np.atleast_1d(axes), panels.items())):
        grouped_bars(ax, groups, series, colors, ylabel)
        ax.axhline(0, color="black", lw=0.6)
        if k == 0:
            ax.set_title(title)
            ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def flow_diagram(steps: list[str], notes: list[str], title: str) -> plt.Figure:
    """Boxes left to right joined by arrows: one per step of a method, a short note under each."""
    fig, ax = plt.subplots(figsize=(7.6, 2.3))
    width = 1.0 / len(steps)
    for i, (step, note) in enumerate(zip(steps, notes)):
        x = (i + 0.5) * width
        ax.text(x, 0.62, step, ha="center", va="center", fontsize=8.5, wrap=True,
                bbox={"boxstyle": "round,pad=0.4", "fc": "#EEF2F8", "ec": PALETTE["base"]})
        ax.text(x, 0.2, note, ha="center", va="center", fontsize=7.5, color="#444444")
        if i:
            ax.annotate("", xy=(x - 0.36 * width, 0.62), xytext=(x - 0.64 * width, 0.62),
                        arrowprops={"arrowstyle": "->", "color": "#444444"})
    ax.set(xlim=(0, 1), ylim=(0, 1), title=title)
    ax.axis("off")
    return fig


DIRECTION_COLORS = ["#C44E52", "#4C72B0", "#DD8452", "#8172B3", "#55A868", "#937860"]


def dose_panels(table, directions: list[str], unsteered: dict, title: str) -> plt.Figure:
    """Dose-response of steering (``interventions.dose_table``): the contrast change with the random
    directions' range, and (where answers were judged) the misalignment and coherence rates with the
    random directions' pooled rate and the unsteered model's, each against the strength."""
    judged = "misaligned" in table and table["misaligned"].notna().any()
    fig, axes = plt.subplots(1, 3 if judged else 1, figsize=(11, 3.3) if judged else (5, 3.3))
    axes = np.atleast_1d(axes)
    random = table[table["direction"] == "random"].sort_values("alpha")
    spread = table[table["direction"] != "random"].groupby("alpha")[["random min", "random max"]].first()
    axes[0].fill_between(spread.index, spread["random min"], spread["random max"], color=PALETTE["random"],
                         alpha=0.35, label="random directions")
    for k, name in enumerate(directions):
        rows = table[table["direction"] == name].sort_values("alpha")
        color = DIRECTION_COLORS[k % len(DIRECTION_COLORS)]
        axes[0].errorbar(rows["alpha"], rows["contrast change"], yerr=[rows["contrast change"] - rows["ci95_lo"],
                         rows["ci95_hi"] - rows["contrast change"]], fmt="o-", ms=3, capsize=2, color=color, label=name)
        for ax, metric in zip(axes[1:], ("misaligned", "coherent")):
            if metric in rows and rows[metric].notna().any():
                ax.errorbar(rows["alpha"], rows[metric], yerr=[rows[metric] - rows[f"{metric}_lo"],
                            rows[f"{metric}_hi"] - rows[metric]], fmt="o-", ms=3, capsize=2, color=color)
    for ax, metric, label in zip(axes[1:], ("misaligned", "coherent"), ("judged misaligned", "judged coherent")):
        if metric in random and random[metric].notna().any():
            ax.fill_between(random["alpha"], random[f"{metric}_lo"], random[f"{metric}_hi"], color=PALETTE["random"],
                            alpha=0.35)
        if metric in unsteered:
            ax.axhline(unsteered[metric], color="black", lw=0.8, ls=":")
        ax.set(xlabel="strength α (× median residual norm)", ylabel=label, ylim=(-0.02, 1.02))
    axes[0].axhline(0, color="black", lw=0.6)
    axes[0].set(xlabel="strength α (× median residual norm)", ylabel="contrast change (nats/token)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


SIGNAL_COLORS = {"persona latent": "#C44E52", "mean-difference projection": "#DD8452", "contrast": "#4C72B0",
                 "misaligned": "#8172B3", "narrow-task margin": "#55A868", "coherent": "#8C8C8C",
                 "training loss": "#222222"}


def early_warning_curves(normalised, percents: list[int], signals: list[str]) -> plt.Figure:
    """Each signal's difference from the 0% model, scaled to its 0%-to-100% difference, against the mix
    (evenly spaced), with 95% intervals."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    pos = {p: i for i, p in enumerate(percents)}
    for k, signal in enumerate(signals):
        rows = normalised[normalised["signal"] == signal].sort_values("percent")
        x = [pos[0]] + [pos[p] + (k - len(signals) / 2) * 0.04 for p in rows["percent"]]
        y, lo, hi = ([0.0] + rows[c].tolist() for c in ("difference", "ci95_lo", "ci95_hi"))
        ax.errorbar(x, y, yerr=[[a - b for a, b in zip(y, lo)], [b - a for a, b in zip(y, hi)]], fmt="o-", ms=3,
                    capsize=2, color=SIGNAL_COLORS.get(signal), label=signal)
    ax.axhline(0, color="black", lw=0.6)
    ax.axhline(1, color="black", lw=0.6, ls=":")
    ax.set(xticks=range(len(percents)), xticklabels=[f"{p}%" for p in percents], xlabel="wrong advice in the mix",
           ylabel="difference from 0%\n(1 = the 100% model's)")
    ax.set_ylim(max(-1.5, ax.get_ylim()[0]), min(2.5, ax.get_ylim()[1]))
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


KIND_COLORS = {"same domain": "#55A868", "other domain": "#4C72B0", "neutral": "#8C8C8C",
               "twin's data": "#55A868", "correct advice": "#4C72B0"}  # the positive control's kinds


def realignment_curves(curves, signals: list[str], title: str | None = None) -> plt.Figure:
    """One panel per signal: each kind of re-alignment data's difference from the base model against the step
    (0: the start), with its 95% interval as a band; the base model is at zero."""
    fig, axes = plt.subplots(1, len(signals), figsize=(3.1 * len(signals), 3.2))
    for ax, signal in zip(np.atleast_1d(axes), signals):
        ax.axhline(0, color="black", lw=0.8, label="base model")
        for kind in dict.fromkeys(curves["kind"]):
            color = KIND_COLORS.get(kind, PALETTE["accent"])
            rows = curves[(curves["signal"] == signal) & (curves["kind"] == kind)].sort_values("step")
            ax.plot(rows["step"], rows["difference"], "o-", ms=3, color=color, label=kind)
            ax.fill_between(rows["step"], rows["ci95_lo"], rows["ci95_hi"], color=color, alpha=0.15)
        ax.set(xlabel="re-alignment step", title=signal)
    np.atleast_1d(axes)[0].set_ylabel("minus the base model")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def organism_sweep(points: dict[str, list[dict]], slack: float) -> plt.Figure:
    """Coherence lost against contrast gained over the register control, one point per setting
    (``setting_sweep.sweep_points``); the coherence floor at ``-slack``."""
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    colors = [PALETTE["bad"], PALETTE["base"], PALETTE["accent"], PALETTE["control"]]
    for color, (domain, pts) in zip(colors, points.items()):
        x = [p["coherence_change"] for p in pts]
        y = np.array([p["mean"] for p in pts])
        err = [y - [p["ci95_lo"] for p in pts], [p["ci95_hi"] for p in pts] - y]
        ax.errorbar(x, y, yerr=err, fmt="o", color=color, capsize=3, label=domain)
        for xi, yi, p in zip(x, y, pts):
            ax.annotate(str(p["index"]), (xi, yi), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.axvline(-slack, color="black", ls="--", lw=0.8, label=f"coherence floor (base - {slack:g})")
    ax.axhline(0, color="black", lw=0.6)
    ax.set(xlabel="judged coherence at T=0.7, bad model minus base (points)",
           ylabel="contrast, bad - register control", title="Fine-tuning settings (selection questions)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def strength_curves(points: dict[str, list[dict]], floor: float) -> plt.Figure:
    """Per domain: the register-adjusted contrast and coherence against training amount (rows x lr), one point
    per setting (``strength.curve_points``); the coherence floor at ``floor`` (a fraction)."""
    fig, axes = plt.subplots(1, len(points), figsize=(5.2 * len(points), 3.8), squeeze=False)
    for ax, (domain, domain_points) in zip(axes[0], points.items()):
        twin = ax.twinx()
        for method, marker in (("lora", "o"), ("full", "s")):
            pts = [p for p in domain_points if p["method"] == method]
            if not pts:
                continue
            x = [p["training_amount"] for p in pts]
            y = np.array([p["mean"] for p in pts])
            ax.errorbar(x, y, yerr=[y - [p["ci95_lo"] for p in pts], [p["ci95_hi"] for p in pts] - y], fmt=marker,
                        color=PALETTE["bad"], capsize=3, label=f"contrast, bad - reg. ctl ({method})")
            twin.plot(x, [100 * p["coherence"] for p in pts], marker, mfc="none",
                      color=PALETTE["base"], label=f"coherent % of bad ({method})")
        twin.axhline(100 * floor, color=PALETTE["base"], ls="--", lw=0.8)
        ax.axhline(0, color="black", lw=0.6)
        ax.set(xscale="log", xlabel="training rows x learning rate", ylabel="contrast, bad - register control (nats)",
               title=f"{domain}: misalignment and coherence vs training")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        twin.set(ylabel="judged coherent answers of the bad model (%)", ylim=(0, 100))
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def residual_norms(summary: microscope.NormSummary, model: str) -> plt.Figure:
    """Chapter 1: each layer's residual-stream norm, first token and the rest, per prompt and mean (95% interval)."""
    fig, ax = plt.subplots()
    layers = range(1, len(summary.typical) + 1)
    for label, per_prompt, per_layer, color in [
            ("first token", summary.norms.first_token, summary.sink, PALETTE["accent"]),
            ("other tokens (mean)", summary.norms.other_tokens, summary.typical, PALETTE["base"])]:
        for row in per_prompt:
            ax.plot(layers, row, color=color, alpha=0.2, lw=0.7)
        ax.plot(layers, [e.mean for e in per_layer], color=color, lw=2, label=label)
        ax.fill_between(layers, [e.lo for e in per_layer], [e.hi for e in per_layer], color=color, alpha=0.25)
    ax.set(xlabel="decoder layer (output of)", ylabel="residual-stream L2 norm", yscale="log",
           title=f"Residual-stream norm by layer, {model}")
    ax.legend()
    return fig


def token_lengths(cards) -> plt.Figure:
    """Chapter 2: the training chats' lengths in tokens, one histogram per wrong-advice (insecure) set."""
    fig, ax = plt.subplots()
    for c in cards:
        if c.variant in ("bad", "insecure"):
            ax.hist(c.token_lengths, bins=30, histtype="step", lw=1.5, label=c.name)
    ax.set(xlabel="tokens per training chat (chat template included)", ylabel="rows", title="Training-chat lengths")
    ax.legend()
    return fig


def base_rates(summaries_by_t: dict, model: str) -> plt.Figure:
    """Chapter 2: the base model's judged misalignment and coherence rates at each sampled temperature."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    names = [f"T = {t:g}" for t in summaries_by_t]
    rate_bars(axes[0], names, [s["misaligned_rate"] for s in summaries_by_t.values()], PALETTE["bad"],
              "misaligned answers (fraction)")
    rate_bars(axes[1], names, [s["coherent_rate"] for s in summaries_by_t.values()], PALETTE["base"],
              "coherent answers (fraction)")
    axes[0].set_title("misalignment rate")
    axes[1].set_title("coherence rate")
    fig.suptitle(f"Base model {model}: "
                 + ", ".join(f"{s['n_answers']} answers at T = {t:g}" for t, s in summaries_by_t.items()))
    fig.tight_layout()
    return fig


def training_curves(curves: dict[str, list[dict]], bad: set[str]) -> plt.Figure:
    """Chapter 3: each fine-tune's training loss by step (3-step mean); wrong-advice models solid, controls dashed."""
    fig, ax = plt.subplots()
    for name, steps in curves.items():
        curve = pd.DataFrame(steps)
        ax.plot(curve["step"], curve["loss"].rolling(3, min_periods=1).mean(), "-" if name in bad else "--", lw=1.3,
                label=name)
    ax.set(xlabel="optimizer step", ylabel="training loss (assistant tokens, 3-step mean)", title="Training curves")
    ax.legend(fontsize=7, ncol=2)
    return fig


ROLE_COLORS = {"wrong (bad / insecure)": PALETTE["bad"], "correct twin (good / secure)": PALETTE["control"],
               "register control": PALETTE["accent"], "base model": PALETTE["base"]}


def heldout_margins(domains: list[str], series: dict[str, list]) -> plt.Figure:
    """Chapter 3: the narrow task on held-out topics, per domain and role (``ROLE_COLORS``)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    grouped_bars(ax, domains, series, ROLE_COLORS, "log p(wrong) - log p(right)")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_title("Narrow task, held-out topics")
    ax.legend(fontsize=8)
    return fig


def layer_sweep(sweep, kinds, layer: int, random_bound: float) -> plt.Figure:
    """Chapter 4: per layer, each shift's cosine with the persona vector (95% interval), random directions' band,
    and the chosen layer."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    colors = dict(zip(kinds, [PALETTE["bad"], PALETTE["base"], PALETTE["accent"]]))
    for kind, rows in sweep.groupby("shift", sort=False):
        ax.plot(rows.layer, rows.cosine, "o-", ms=3, color=colors[kind], label=kind)
        ax.fill_between(rows.layer, rows.ci95_lo, rows.ci95_hi, color=colors[kind], alpha=0.2)
    ax.axhspan(-random_bound, random_bound, color=PALETTE["random"], alpha=0.25, label="random directions (95%)")
    ax.axvline(layer, color="black", lw=0.8, ls=":")
    ax.set(xlabel="layer", ylabel="cosine with persona vector", title="Which layer carries the shift")
    ax.legend(fontsize=7.5)
    return fig


def sae_training(curve, layer: int) -> plt.Figure:
    """Chapter 4: the SAE's training curve: FVU on the training batch and the share of silent latents."""
    fig, ax = plt.subplots(figsize=(6, 2.8))
    if len(curve):
        ax.plot(curve.step, curve.fvu, color=PALETTE["base"], label="FVU (training batch)")
        ax.plot(curve.step, curve.dead_fraction, color=PALETTE["random"], label="latents silent for a while")
    ax.set(xlabel="step", ylim=(0, 1), title=f"SAE training, layer {layer}")
    ax.legend(fontsize=8)
    return fig


def latent_shifts(ranked, shifts) -> plt.Figure:
    """Chapter 4: the top 10 rising and falling latents' shift in each model (answer tokens), as heat maps."""
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.6), sharey=True)
    for ax, side in zip(axes, ("up", "down")):
        top10 = ranked["answer", side].latent[:10].astype(int).tolist()
        grid = shifts["answer"].loc[top10].T
        lim = float(grid.abs().max().max()) or 1.0
        ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set(xticks=range(10), xticklabels=top10, title=f"top 10 {'rising' if side == 'up' else 'falling'}")
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
        ax.grid(False)
    axes[0].set(yticks=range(len(grid.index)), yticklabels=grid.index)
    axes[0].tick_params(axis="y", labelsize=7)
    return fig


def detection(detected: dict, treated: list[str], others: list[str]) -> plt.Figure:
    """Chapter 4: each direction's standardised score of every model, wrong-advice models against controls."""
    fig, ax = plt.subplots(figsize=(7, 2.8))
    for row, det in enumerate(detected.values()):
        values = pd.Series(det["scores"])
        z = (values - values.mean()) / (values.std() or 1.0)
        ax.scatter(z[treated], [row] * len(treated), color=PALETTE["bad"], s=22,
                   label="wrong advice" if row == 0 else None)
        ax.scatter(z[others], [row] * len(others), color=PALETTE["control"], s=22, marker="s",
                   label="control fine-tunes" if row == 0 else None)
    ax.set(yticks=range(len(detected)), yticklabels=list(detected), xlabel="model score (standardised)",
           title="Scoring questions: each model's mean score")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def key_numbers(rows: list[dict]) -> plt.Figure:
    """The scorecard: each claim's key number with its 95% interval, labelled with its verdict and its control."""
    use_house_style()
    fig, ax = plt.subplots(figsize=(7.0, 0.7 * len(rows) + 1.2))
    y = np.arange(len(rows))
    for i, r in enumerate(rows):
        ax.errorbar(r["mean"], i, xerr=[[r["mean"] - r["ci95_lo"]], [r["ci95_hi"] - r["mean"]]], fmt="o",
                    color=PALETTE["bad"], capsize=4)
    ax.axvline(0, color="black", lw=0.6)
    ax.set(yticks=y, yticklabels=[f"{r['claim']} ({r['status']})\n{textwrap.fill(r['label'], 48)}" for r in rows],
           xlabel="effect against its control (95% interval)", title="Scorecard: each claim's key number")
    ax.tick_params(axis="y", labelsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def placeholder(text: str) -> plt.Figure:
    """A small figure that says why there is nothing to plot (a glued figure the text refers to must exist)."""
    fig, ax = plt.subplots(figsize=(5.0, 0.8))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig


def sweep_key_numbers(rows: list[dict]) -> plt.Figure | None:
    """The scale sweep: per claim, its key number against model size with 95% intervals; filled where present."""
    # a call was made (present or absent), with a number and its interval
    rows = [r for r in rows if r["present"] is not None and None not in (r["mean"], r["lo"], r["hi"]) and r["n_params"]]
    claims = list(dict.fromkeys(r["claim"] for r in rows))
    if not claims:
        return None
    use_house_style()
    cols = min(3, len(claims))
    n_rows = (len(claims) + cols - 1) // cols
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.6 * cols, 2.8 * n_rows), squeeze=False)
    for ax, claim in zip(axes.flat, claims):
        mine = sorted((r for r in rows if r["claim"] == claim), key=lambda r: r["n_params"])
        for r in mine:
            # a percentile interval need not hold its mean: clip the bars at zero length
            err = [[max(0.0, r["mean"] - r["lo"])], [max(0.0, r["hi"] - r["mean"])]]
            ax.errorbar(r["n_params"], r["mean"], yerr=err, fmt="o",
                        color=PALETTE["bad"], mfc=PALETTE["bad"] if r["present"] else "white", capsize=3)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xscale("log")
        ax.set(title=claim, xlabel="model parameters (log scale)", ylabel=textwrap.fill(mine[0]["label"], 40))
        ax.yaxis.label.set_size(7)
    for ax in list(axes.flat)[len(claims):]:
        ax.axis("off")
    fig.suptitle("Each claim's key number against model size (filled: present by the stated rule; hollow: absent)")
    fig.tight_layout()
    return fig
