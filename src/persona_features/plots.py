"""The house style for every figure, and saving them as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from .paths import figures_dir

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
