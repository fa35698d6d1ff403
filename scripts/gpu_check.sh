#!/usr/bin/env bash
# The prepared GPU check (scripts/gpu_check.py): the smoke book on the embedded model and on a tiny Qwen2 fixture
# with device=cuda, printing each chapter's time and peak GPU memory.
#   scripts/gpu_check.sh            # on a CUDA machine, after `make install`
#   scripts/gpu_check.sh --dry-run  # anywhere: checks the plan, runs nothing (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" scripts/gpu_check.py "$@"
