"""The layer contract of docs/architecture.md, checked with import-linter (contracts in .importlinter)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(REPO / ".importlinter")], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_imports_keep_the_layer_contract():
    res = _lint(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 kept, 0 broken" in res.stdout


def test_contract_catches_an_upward_import(tmp_path):
    """A copy of the sources with the old data/dataset.py -> train/data.py import breaks the contract."""
    for pkg in ("sparsekd_core", "sparsekd_ros"):
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("assets", "configs", "__pycache__"))
    dataset = tmp_path / "sparsekd_core" / "data" / "dataset.py"
    dataset.write_text(dataset.read_text() + "\nfrom sparsekd_core.train.data import build_datasets  # noqa\n")
    res = _lint(tmp_path, pythonpath=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Library layers point one way" in res.stdout and "BROKEN" in res.stdout
    assert "sparsekd_core.data.dataset -> sparsekd_core.train.data" in res.stdout
