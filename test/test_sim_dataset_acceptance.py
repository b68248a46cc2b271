"""The data issue's acceptance path, as a user runs it: the default 200-frame simulated dataset in both
layouts, its infos and gt database, and the metrics' self-check (ground truth scored as predictions) at 100
for every class, difficulty and metric. KITTI's R40 AP can only reach 100 when a class has at least 40
objects in a difficulty: the KITTI self-check scores the 160-frame train split, because the simulator's road
users are as sparse in the camera's view as KITTI's (its 40 val frames hold about a dozen easy pedestrians), and
this also guards the simulator's class mix (enough of every class)."""
from __future__ import annotations

import json

import pytest

from sparsekd_core.cli import data as data_cli
from sparsekd_core.cli import eval as eval_cli
from sparsekd_core.cli import sim as sim_cli


@pytest.fixture(scope="module")
def default_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim200")
    assert sim_cli.main(["--out", str(out), "--seed", "0", "--quiet"]) == 0
    assert data_cli.main(["kitti", "--root", str(out / "kitti")]) == 0
    assert data_cli.main(["waymo", "--root", str(out / "waymo")]) == 0
    return out


def _gt_eval(root, tmp_path, metric: str, split: str = "val") -> dict:
    report = tmp_path / f"{metric}.json"
    assert eval_cli.main(["--dataset", str(root), "--split", split, "--gt-as-predictions", "--metric", metric,
                          "--quiet", "--json", str(report)]) == 0
    return json.loads(report.read_text())


def test_default_dataset_has_both_layouts_and_infos(default_dataset):
    meta = json.loads((default_dataset / "sim_meta.json").read_text())
    assert meta["frames"] == 200 and len(meta["frames_list"]) == 200
    assert len(list((default_dataset / "kitti/training/velodyne").glob("*.bin"))) == 200
    for name in ("kitti_infos_train.pkl", "kitti_infos_val.pkl", "kitti_dbinfos_train.pkl"):
        assert (default_dataset / "kitti/sparsekd_infos" / name).is_file(), name
    assert (default_dataset / "waymo/waymo_infos_val.pkl").is_file()


def test_ground_truth_scores_100_kitti_ap_on_every_class_and_difficulty(default_dataset, tmp_path):
    report = _gt_eval(default_dataset / "kitti", tmp_path, "both", split="train")
    kitti = report["kitti"]
    for name, per_difficulty in kitti["num_gt"].items():
        assert min(per_difficulty.values()) >= 40, f"{name}: {per_difficulty} objects, R40 AP cannot reach 100"
    values = kitti["summary"]
    assert len(values) == 3 * 3 * 4
    assert all(v == pytest.approx(100.0) for v in values.values()), values
    assert report["waymo"]["mean"]["LEVEL_2"]["mAPH"] == pytest.approx(100.0)


def test_ground_truth_scores_100_waymo_maph_on_the_waymo_layout(default_dataset, tmp_path):
    report = _gt_eval(default_dataset / "waymo", tmp_path, "waymo")
    waymo = report["waymo"]
    for level in ("LEVEL_1", "LEVEL_2"):
        assert waymo["mean"][level] == {"mAP": pytest.approx(100.0), "mAPH": pytest.approx(100.0)}
    assert set(waymo["classes"]) == {"Vehicle", "Pedestrian", "Cyclist"}
