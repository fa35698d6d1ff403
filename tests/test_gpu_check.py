import os
import subprocess
import sys

from persona_features.core.paths import repo_root


def test_the_gpu_checks_dry_run_plans_every_chapter_on_both_models_with_cuda():
    root = repo_root()
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if "execute --profile smoke --only" in line]
    chapters = sorted(root.glob("notebooks/0*.ipynb"))
    assert len(lines) == 2 * len(chapters)
    assert all("--set device=cuda" in line for line in lines)
    assert sum("qwen2_fixture" in line for line in lines) == len(chapters)
    assert f"dry run: {len(lines)} chapter runs planned" in proc.stdout
