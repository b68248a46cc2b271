"""Load a Python file that is not in a package (a script, a launch file) as a module, for tests to call into."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_file_module(path: Path, name: str) -> ModuleType:
    """Execute ``path`` as module ``name`` and return it."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
