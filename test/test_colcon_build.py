"""The package builds in a ROS 2 workspace as ROS developers build it: `colcon build` and
`colcon build --symlink-install` (colcon-common-extensions from PyPI), and the installed files are
where `ros2 run` and `ros2 launch` look for them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).parent / "colcon"
PACKAGE = "sparsekd_ros"
SHARED = ("package.xml", "launch/detector.launch.py", "config/detector.yaml", "config/fastdds_large_data.xml",
          "rviz/sparsekd.rviz")
EXECUTABLES = ("detector_node", "sparsekd-replay", "sparsekd-bag-detect", "sparsekd-bench-node", "sparsekd-train")


def _build(ws: Path, symlink: bool) -> subprocess.CompletedProcess:
    (ws / "src").mkdir(parents=True)
    (ws / "src" / PACKAGE).symlink_to(REPO)  # the checkout as a package of the workspace, as after a git clone
    cmd = [str(COLCON), "build", "--paths", f"src/{PACKAGE}", "--event-handlers", "console_direct+"]
    if symlink:
        cmd.append("--symlink-install")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLCON", "AMENT_PREFIX"))}
    return subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("symlink", [False, True], ids=["copy", "symlink-install"])
def test_colcon_build_installs_what_ros2_run_and_launch_need(tmp_path, symlink):
    res = _build(tmp_path, symlink)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    prefix = tmp_path / "install" / PACKAGE
    # `ros2 pkg prefix` / `ros2 launch` find the package through the ament index marker ...
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    # ... then read launch, config and RViz files from share/<package>/ ...
    share = prefix / "share" / PACKAGE
    for rel in SHARED:
        installed = share / rel
        assert installed.is_file(), f"{installed} missing"
        assert installed.read_bytes() == (REPO / rel).read_bytes()
        # with --symlink-install an edit of the source shows without a rebuild
        assert (installed.resolve() == (REPO / rel).resolve()) == symlink, installed
    # ... and `ros2 run sparsekd_ros detector_node` runs lib/<package>/<executable>.
    for name in EXECUTABLES:
        exe = prefix / "lib" / PACKAGE / name
        assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} missing or not executable"
    # The installed Python packages are the ones imported from the workspace.
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    probe = ("import sparsekd_core, sparsekd_ros.detector_node, sparsekd_core.configs;"
             "print(sparsekd_ros.__file__); print(sparsekd_core.__file__)")
    env = dict(os.environ, PYTHONPATH=str(site))
    if symlink:  # develop mode: an egg-link to build/, whose package folders are symlinks to the source
        link = (site / "sparsekd-ros.egg-link").read_text().split()[0]
        env["PYTHONPATH"] = link
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    where = [Path(p) for p in out.stdout.split()]
    base = Path(env["PYTHONPATH"])
    assert all(p.is_relative_to(base) for p in where), (where, base)
    # the bundled checkpoints and configs travel with sparsekd_core
    core = where[1].parent
    assert (core / "assets" / "checkpoints" / "cp_voxel_s.pth").is_file()
    assert (core / "configs" / "models" / "cp_voxel_s.yaml").is_file()
    help_out = subprocess.run([str(prefix / "lib" / PACKAGE / "detector_node"), "--help"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert help_out.returncode == 0 and "score_threshold" in help_out.stdout, help_out.stderr
