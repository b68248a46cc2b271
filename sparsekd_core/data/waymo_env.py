"""The Python that has Waymo's official ``waymo-open-dataset`` package, for reading the downloaded tfrecords.

The package (``waymo-open-dataset-tf-2-12-0`` 1.6.7, TensorFlow 2.13, Python 3.11) pins numpy 1.23 and
TensorFlow's own dependencies, which clash with this project's pins (numpy 2), so it cannot be an extra of
the main environment. It lives in a virtualenv of its own (``make waymo-env`` builds ``.venv-waymo``), and
``sparsekd-data waymo-convert`` runs the conversion (waymo_tfrecord.py) in that Python, in a subprocess
that sees only this package's source besides its own site-packages.

Which Python, first match: ``--waymo-python``, ``$SPARSEKD_WAYMO_PYTHON``, the running Python when it has the
package, ``.venv-waymo/bin/python`` in the working directory or in the source checkout.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import sparsekd_core

WAYMO_REQUIREMENT = "waymo-open-dataset-tf-2-12-0==1.6.7"
ENV_VAR = "SPARSEKD_WAYMO_PYTHON"
VENV_NAME = ".venv-waymo"
_CHECK = "import importlib.util, sys; sys.exit(importlib.util.find_spec('waymo_open_dataset') is None)"


def install_hint() -> str:
    """What to run to get the package, for error messages."""
    checkout = Path(sparsekd_core.__file__).resolve().parents[1]
    return (f"the official Waymo package is needed to read tfrecords. In the source checkout run `make waymo-env` "
            f"(builds {checkout / VENV_NAME}: {WAYMO_REQUIREMENT} with tensorflow 2.13 on Python 3.11, about 2.8 GB),"
            f" or make any Python 3.11 virtualenv with `pip install {WAYMO_REQUIREMENT}` and pass its python as "
            f"--waymo-python (or set ${ENV_VAR}). It needs a venv of its own: its numpy/TensorFlow pins clash "
            "with this package's.")


def has_waymo_package(python: str | os.PathLike) -> bool:
    """Whether ``python`` can import ``waymo_open_dataset`` (without importing it, so it is quick)."""
    # Not resolved: every virtualenv's python links to the same interpreter, yet sees other packages.
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        return importlib.util.find_spec("waymo_open_dataset") is not None
    try:
        return subprocess.run([str(python), "-c", _CHECK], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_waymo_python(explicit: str | os.PathLike | None = None) -> str:
    """The Python to convert with (module docstring); FileNotFoundError with :func:`install_hint` if none."""
    given = explicit or os.environ.get(ENV_VAR)
    if given:
        if not Path(given).is_file():
            raise FileNotFoundError(f"Waymo Python {given} does not exist; {install_hint()}")
        if not has_waymo_package(given):
            raise FileNotFoundError(f"{given} cannot import waymo_open_dataset; {install_hint()}")
        return str(given)
    if importlib.util.find_spec("waymo_open_dataset") is not None:
        return sys.executable
    checkout = Path(sparsekd_core.__file__).resolve().parents[1]
    for venv in (Path.cwd() / VENV_NAME, checkout / VENV_NAME):
        python = venv / "bin" / "python"
        if python.is_file() and has_waymo_package(python):
            return str(python)
    raise FileNotFoundError(install_hint())


def run_in_waymo_python(python: str, module: str, argv: Sequence[str]) -> int:
    """Run ``python -m module argv`` in another Python, with this package importable there but not the rest of
    our environment. Returns its exit status."""
    package_dir = Path(sparsekd_core.__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="sparsekd-waymo-") as shim:
        # Only sparsekd_core goes on the path: the whole site-packages would bring our numpy into theirs.
        os.symlink(package_dir, Path(shim) / package_dir.name)
        env = {**os.environ, "PYTHONPATH": shim, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        return subprocess.call([python, "-m", module, *argv], env=env)
