"""The students shipped in the package (sparsekd_core/assets/checkpoints/): loaded by zoo name, fp16 and nothing
else, honest about where their weights come from, and they find the road users of simulated streets they never
saw (seeds other than the training set's)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsekd_core.checkpoint import read_checkpoint
from sparsekd_core.data.sim.scene import SnapshotScene
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.inference import BUNDLED_DIR, load_detector, resolve_checkpoint

BUNDLED = {"cp_voxel_s": "cp_voxel_s_sim", "cp_pillar_v0.64": "cp_pillar_v0.64_sim"}
KINDS = {"car": "Car", "pedestrian": "Pedestrian", "cyclist": "Cyclist"}


def test_the_bundled_folder_holds_exactly_the_documented_students():
    assert sorted(p.stem for p in BUNDLED_DIR.glob("*.pth")) == sorted(BUNDLED)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_student_is_fp16_weights_with_provenance(name):
    path = resolve_checkpoint(name)
    payload = read_checkpoint(path)
    assert payload["config"]["name"] == BUNDLED[name]
    weights = [v for v in payload["state_dict"].values() if v.is_floating_point()]
    assert all(v.dtype == torch.float16 for v in weights)
    tensor_bytes = sum(v.numel() * v.element_size() for v in payload["state_dict"].values())
    assert path.stat().st_size <= min(tensor_bytes, 10_000_000)  # fp16 weights, deflated; the 10 MB cap
    meta = payload["meta"]
    assert meta["bundled_as"] == name and meta["kd"] == "sparsekd"
    assert "simulated" in meta["provenance"] and "KITTI or Waymo" in meta["provenance"]
    assert set(meta["demo_teacher"]["scores"]["ap_r40_moderate"]) == {"Car", "Pedestrian", "Cyclist"}


@pytest.fixture(scope="module")
def unseen_frames():
    return [SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0).frame(0) for seed in (777, 778, 779, 780)]


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_student_finds_road_users_in_unseen_streets(name, unseen_frames):
    det = load_detector(name, device="cpu")
    det.score_threshold = 0.3  # the node's default
    r = det.point_cloud_range
    truth = found = false_alarms = cars = cars_found = 0
    for frame in unseen_frames:
        d = det(frame.points[:, :4])
        names, kinds, boxes = np.asarray(d.names), np.asarray(frame.kinds), frame.boxes
        visible = ((boxes[:, 0] >= r[0]) & (boxes[:, 0] < r[3]) & (boxes[:, 1] >= r[1]) & (boxes[:, 1] < r[4])
                   & (np.asarray(frame.num_points) >= 30))
        for kind, cls in KINDS.items():
            gt, pred = boxes[visible & (kinds == kind)], d.boxes[names == cls]
            dist = np.hypot(pred[:, None, 0] - gt[None, :, 0], pred[:, None, 1] - gt[None, :, 1])
            hit = (dist < 1.0).any(0) if len(pred) else np.zeros(len(gt), bool)
            truth, found = truth + len(gt), found + int(hit.sum())
            false_alarms += int((dist >= 1.0).all(1).sum()) if len(gt) else len(pred)
            if kind == "car":
                cars, cars_found = cars + len(gt), cars_found + int(hit.sum())
    assert truth >= 30 and cars >= 10
    assert cars_found / cars >= 0.8, f"{name}: {cars_found}/{cars} cars found"
    assert found / truth >= 0.6, f"{name}: {found}/{truth} road users found"
    assert false_alarms <= truth / 2, f"{name}: {false_alarms} false alarms for {truth} road users"
