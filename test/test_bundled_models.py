"""The students shipped in the package (sparsekd_core/assets/checkpoints/): loaded by zoo name, fp16 and nothing
else, honest about where their weights come from, and they find the road users of simulated streets they never
saw (seeds other than the training set's).

Those streets are frozen in test/data/bundled_students_streets.npz: four HDL-64E snapshots (seeds 777-780, scene 0,
frame 0) of the simulator the bundled students were trained in (as of commit 4f79d51), cropped to x 0..40 m,
|y| < 20 m, z -3..1 m (both students' ranges), coordinates in steps of 2 mm (int16, x less 20 m) and intensity in
1/255: the students find the same boxes in them as in the simulator's float32 points (checked when frozen). They are
frozen because the simulator moves on (issue 11 makes it more like a real sensor) while the shipped weights stay
what they are until new students are bundled; a test of the weights must use the streets they were made for.
When new students are bundled, make the file again from the simulator that trained them (the seeds above,
``SnapshotScene(PRESETS["hdl64"], seed=s, scene_index=0).frame(0)``, each object's kind kept as the simulator names
it). Measured when frozen (road users found / in range, cars found / in range, false alarms): cp_pillar_v0.64
38/49, 19/21, 10; cp_voxel_s 53/64, 30/34, 31 (its bound is 32)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsekd_core.checkpoint import read_checkpoint
from sparsekd_core.inference import BUNDLED_DIR, load_detector, resolve_checkpoint

STREETS = Path(__file__).parent / "data" / "bundled_students_streets.npz"

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


@dataclass
class FrozenFrame:
    points: np.ndarray  # (N, 4) x, y, z, intensity
    boxes: np.ndarray  # (M, 7) x, y, z, l, w, h, yaw
    kinds: np.ndarray  # (M,) the simulator's kind of each object
    num_points: np.ndarray  # (M,) points on each object in the whole sweep


@pytest.fixture(scope="module")
def unseen_frames():
    z = np.load(STREETS)
    frames = []
    for i in range(4):
        xyz = z[f"xyz_{i}"] * z["quantum_m"] + [z["x_offset_m"], 0.0, 0.0]
        points = np.c_[xyz, z[f"intensity_{i}"] / 255.0].astype(np.float32)
        frames.append(FrozenFrame(points, z[f"boxes_{i}"], z[f"kinds_{i}"], z[f"num_points_{i}"]))
    return frames


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
