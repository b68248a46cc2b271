"""ament_python package `sparsekd_ros`: installs sparsekd_core (no ROS) and sparsekd_ros (rclpy glue)."""
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "sparsekd_ros"
# The source directory: `colcon build --symlink-install` runs this file through a symlink from build/,
# so files beside it are found from its resolved path, not from the working directory.
HERE = Path(__file__).resolve().parent


def _requirements(name):
    with open(HERE / name) as f:
        return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["sparsekd_core", "sparsekd_core.*", "sparsekd_ros", "sparsekd_ros.*"]),
    package_data={"sparsekd_core": ["configs/**/*.yaml", "assets/**/*"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.xml")),
        ("share/" + PACKAGE + "/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=[
        r for r in _requirements("requirements.txt") if not r.startswith(("torch", "spconv", "onnxruntime"))
    ],
    extras_require={
        # torch, spconv and onnxruntime are left to the user's platform choice (CPU wheels here, CUDA builds on
        # GPUs: onnxruntime-gpu provides the same module with a CUDA provider).
        "cpu": ["torch==2.13.0", "spconv==2.3.8", "onnxruntime==1.32.0"],
        "cu118": ["spconv-cu118==2.3.8"],
        "cu126": ["spconv-cu126==2.3.8"],
        "ros": _requirements("requirements-ros.txt"),
        "test": _requirements("requirements-test.txt"),
        # The devkit itself goes in with `pip install --no-deps nuscenes-devkit==1.2.0` (its numpy<2 cap).
        "nuscenes": _requirements("requirements-nuscenes.txt"),
    },
    zip_safe=False,
    maintainer="sparsekd_ros developers",
    maintainer_email="sparsekd@example.org",
    description="Distilled CenterPoint LiDAR 3D detectors (SparseKD) for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "detector_node = sparsekd_ros.detector_node:run",
            "sparsekd-replay = sparsekd_ros.replay:main",
            "sparsekd-bag-detect = sparsekd_ros.bag_detect:main",
            "sparsekd-bench-node = sparsekd_ros.bench_node:main",
            "sparsekd-train = sparsekd_core.cli.train:main",
            "sparsekd-eval = sparsekd_core.cli.eval:main",
            "sparsekd-bench = sparsekd_core.cli.bench:main",
            "sparsekd-detect = sparsekd_core.cli.detect:main",
            "sparsekd-sim = sparsekd_core.cli.sim:main",
            "sparsekd-gap = sparsekd_core.cli.gap:main",
            "sparsekd-data = sparsekd_core.cli.data:main",
            "sparsekd-import = sparsekd_core.cli.import_weights:main",
            "sparsekd-export = sparsekd_core.cli.export:main",
            "sparsekd-soup = sparsekd_core.cli.soup:main",
        ],
    },
)
