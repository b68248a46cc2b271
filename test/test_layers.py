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


def _doc_layers(package: str) -> list[str]:
    """The layer table of ``package`` in docs/architecture.md, one 'a | b' row per layer, as .importlinter writes it."""
    lines = (REPO / "docs" / "architecture.md").read_text().splitlines()
    start = lines.index(f"`{package}`:")
    rows = []
    for line in lines[start + 1:]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("| `"):
            layer = line[2:].split(" | ", 1)[0]  # the first column: `a` \| `b`
            rows.append(" | ".join(name.strip(" `") for name in layer.split("\\|")))
    return rows


def _contract_layers(contract: str) -> list[str]:
    lines = (REPO / ".importlinter").read_text().splitlines()
    start = lines.index(f"[importlinter:contract:{contract}]")
    layers = lines.index("layers =", start)
    rows = []
    for line in lines[layers + 1:]:
        if not line.startswith("    "):
            break
        rows.append(line.strip())
    return rows


def test_the_design_page_tables_are_the_contract():
    """docs/architecture.md says its layer tables are what import-linter checks: they must list the same layers."""
    assert _doc_layers("sparsekd_core") == _contract_layers("core-layers")
    assert _doc_layers("sparsekd_ros") == _contract_layers("ros-layers")
    assert len(_doc_layers("sparsekd_ros")) == 5 and "stop_signal" in _doc_layers("sparsekd_ros")[3]
