"""The students (and the teacher) shipped in the package (sparsekd_core/assets/checkpoints/): loaded by zoo name,
fp16 and nothing else, honest about where their weights come from, and they find the road users of simulated
streets they never saw (seeds other than the training set's).

Those streets are frozen in test/data/, of the simulator the students were trained in: four HDL-64E snapshots (scene
0, frame 0 of four seeds), cropped to the widest bundled range, coordinates in steps of 2 mm (int16, less an x
offset) and intensity in 1/255; the models find nearly the same boxes in them as in the simulator's float32 points
(checked when frozen: at most two boxes a frame differ, near the threshold or moved over 0.1 m). They are frozen
because the simulator moves on while the shipped weights stay what they are until new students are bundled; a test
of the weights must use the streets they were made for. When a student is bundled, freeze its streets with
``scripts/freeze_streets.py --model CONFIG`` (which also writes each object's KITTI class) and name the file below.

Road users "in range" are those with at least 30 returns; a false alarm is a box within 1 m of no labelled object
of its class (one with fewer returns is not a false alarm: the 360-degree student finds many such).

``bundled_streets_v4_360.npz``: streets version 4 (the sensor rides on a vehicle with a rig of small fixtures),
+-40.96 m all around, seeds 783, 785, 791 and 792, whose ego vehicles and rigs send returns
(``scripts/freeze_streets.py --model cp_pillar_v0.64_sim360 --seeds 783,785,791,792``). Measured with session 29's
bundles (one more epoch each on version-4 streets), found / in range, cars, false alarms, frames with a box on the
own vehicle:

- cp_voxel_s (session 62's: session 29's plus one epoch of SparseKD on streets with the roof mounts fixed, from a
  teacher grown from it by ``sparsekd-train --widen``) 91/102, 79/90, 17, one (OWN_VEHICLE_FRAMES); session 29's,
  which it replaced: 93/102, 81/90, 26, one (a car at 0.34); session 27's: 89/102, 77/90, 23, two; session 29's
  teacher (7.76 M parameters, too big to ship) 88/102, 76/90, 26, one.
- cp_pillar_v0.64 100/104, 88/92, 33, two (three cars at 0.35-0.44; OWN_VEHICLE_FRAMES); session 26's, which it
  replaced: 100/104, 88/92, 34, two.
- cp_pillar_sim360 (session 59's: session 40's plus one epoch on streets with squares, real bicycles and pedalling
  riders, publishing as its students do) 91/104, 79/92, 15, none; session 40's (two more epochs, with people and
  furniture on the road) 100/104, 88/92, 15, none; session 29's: 95/104, 83/92, 19, none; session 26's: 90/104,
  78/92, 23, three.
- cp_pillar_s (session 60's: session 59's plus four more epochs of SparseKD from session 59's second teacher on
  streets with the roof mounts fixed) 100/104, 88/92, 17, none; the soup of session 59's with the first two of those
  epochs, bundled for part of session 60: 99/104, 87/92, 22, none; session 59's (session 53's averaged 1:1 with
  two more epochs of SparseKD from session 59's teacher on its streets) 98/104, 86/92, 22, none; session 53's (its
  width student on its grid; session 40's, two epochs of SparseKD from that teacher on streets with people and
  furniture on the road) 100/104, 88/92, 14, one (a car at 0.34; OWN_VEHICLE_FRAMES); with NMS
  within each class (session 45, same weights) 100/104, 88/92, 15, one; session 38's, which it replaced: 99/104,
  87/92, 14, one (0.30); session 37's: 99/104, 87/92, 16, one (0.31).

On version 3's file (``bundled_streets_v3_360.npz``, seeds 779, 784, 786 and 787, in the history at commit
a647ab6) the same weights (fp32) scored 74/81, 79/81 and 76/81 with 40, 34 and 29 false alarms and no box on the own
vehicle; session 26's pillar pair 79/81 (29) and 76/81 (26). Version 2's file is at commit 7d661c4, version 1's
(``bundled_students_streets.npz``, where the 40 m-ahead voxel student found 25 of 38) at aebd717."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsekd_core.checkpoint import read_checkpoint
from sparsekd_core.config import load_model_config
from sparsekd_core.inference import BUNDLED_DIR, load_detector, resolve_checkpoint

DATA = Path(__file__).parent / "data"

#: bundled name -> (the config it was trained as, its frozen streets)
BUNDLED = {"cp_voxel_s": ("cp_voxel_s_sim360", "bundled_streets_v4_360.npz"),
           "cp_pillar_v0.64": ("cp_pillar_v0.64_sim360", "bundled_streets_v4_360.npz"),
           "cp_pillar_s": ("cp_pillar_s_sim360", "bundled_streets_v4_360.npz"),
           "cp_pillar_sim360": ("cp_pillar_sim360", "bundled_streets_v4_360.npz")}
#: the bundled teachers (trained without KD; students are distilled from them with --teacher NAME)
TEACHERS = {"cp_pillar_sim360"}
#: Frozen frames in which a student may put a box on its own vehicle, where none is not yet met: both of session
#: 29's students put a car inside the ego body of the version-4 frames, at scores just over the node's 0.3 (the
#: pillar teacher puts none); the students they replaced did so in as many frames or more; session 40's cp_pillar_s
#: one (0.34), as session 38's did (0.30), session 59's none. The node's own_vehicle footprint drops such boxes on a
#: robot.
OWN_VEHICLE_FRAMES = {"cp_voxel_s": 1, "cp_pillar_v0.64": 2}
CLASSES = ("Car", "Pedestrian", "Cyclist")
#: The classes each bundled model publishes with a square footprint (head.post.square_footprint), as its config now
#: asks: the students adopted it by session 51's rule on simulated streets (docs/results.md "Square footprints"), the
#: teacher in session 59.
SQUARE = {"cp_voxel_s": ("Pedestrian",), "cp_pillar_v0.64": ("Pedestrian",), "cp_pillar_s": ("Pedestrian",),
          "cp_pillar_sim360": ("Pedestrian",)}
#: The classes whose boxes each bundled model drops under returns just over them (head.post.clear_overhead), as its
#: config asks: the students adopted it by session 53's rule on simulated streets (docs/results.md "Clear overhead");
#: the teacher took both with its students' settings by session 59's rule (docs/results.md "Heads a roof sensor sees").
OVERHEAD = {"cp_voxel_s": ("Pedestrian", "Cyclist"), "cp_pillar_v0.64": ("Pedestrian", "Cyclist"),
            "cp_pillar_s": ("Pedestrian", "Cyclist"), "cp_pillar_sim360": ("Pedestrian", "Cyclist")}


def test_the_bundled_folder_holds_exactly_the_documented_models():
    assert sorted(p.stem for p in BUNDLED_DIR.glob("*.pth")) == sorted(BUNDLED)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_is_fp16_weights_with_provenance(name):
    path = resolve_checkpoint(name)
    payload = read_checkpoint(path)
    assert payload["config"]["name"] == BUNDLED[name][0]
    weights = [v for v in payload["state_dict"].values() if v.is_floating_point()]
    assert all(v.dtype == torch.float16 for v in weights)
    tensor_bytes = sum(v.numel() * v.element_size() for v in payload["state_dict"].values())
    assert path.stat().st_size <= min(tensor_bytes, 10_000_000)  # fp16 weights, deflated; the 10 MB cap
    meta = payload["meta"]
    assert meta["bundled_as"] == name and meta["kd"] == ("none" if name in TEACHERS else "sparsekd")
    assert "simulated" in meta["provenance"] and "KITTI or Waymo" in meta["provenance"]
    if name not in TEACHERS:
        assert set(meta["demo_teacher"]["scores"]["ap_r40_moderate"]) == {"Car", "Pedestrian", "Cyclist"}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_publishes_the_square_classes_its_config_asks_for(name):
    det = load_detector(name, device="cpu")
    assert det.square_footprint == SQUARE[name]
    assert tuple(load_model_config(BUNDLED[name][0]).head.post.square_footprint) == SQUARE[name]


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_checks_overhead_for_the_classes_its_config_asks_for(name):
    assert load_detector(name, device="cpu").clear_overhead == OVERHEAD[name]
    assert tuple(load_model_config(BUNDLED[name][0]).head.post.clear_overhead) == OVERHEAD[name]


@dataclass
class FrozenFrame:
    points: np.ndarray  # (N, 4) x, y, z, intensity
    boxes: np.ndarray  # (M, 7) x, y, z, l, w, h, yaw
    classes: np.ndarray  # (M,) each object's KITTI class (Van, Truck and the like count as none of CLASSES)
    num_points: np.ndarray  # (M,) points on each object in the whole sweep
    ego_body: bool  # the sensor's own vehicle is under it (streets version 3 on)


def frozen_frames(filename: str) -> list[FrozenFrame]:
    z = np.load(DATA / filename)
    frames = []
    for i in range(4):
        xyz = z[f"xyz_{i}"] * z["quantum_m"] + [z["x_offset_m"], 0.0, 0.0]
        points = np.c_[xyz, z[f"intensity_{i}"] / 255.0].astype(np.float32)
        frames.append(FrozenFrame(points, z[f"boxes_{i}"], z[f"classes_{i}"], z[f"num_points_{i}"],
                                  bool(z[f"ego_body_{i}"])))
    return frames


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_finds_road_users_in_unseen_streets(name):
    det = load_detector(name, device="cpu")
    det.score_threshold = 0.3  # the node's default
    r = det.point_cloud_range
    truth = found = false_alarms = cars = cars_found = 0
    for frame in frozen_frames(BUNDLED[name][1]):
        d = det(frame.points[:, :4])
        names, classes, boxes = np.asarray(d.names), np.asarray(frame.classes), frame.boxes
        visible = ((boxes[:, 0] >= r[0]) & (boxes[:, 0] < r[3]) & (boxes[:, 1] >= r[1]) & (boxes[:, 1] < r[4])
                   & (np.asarray(frame.num_points) >= 30))
        for cls in CLASSES:
            gt, pred = boxes[visible & (classes == cls)], d.boxes[names == cls]
            dist = np.hypot(pred[:, None, 0] - gt[None, :, 0], pred[:, None, 1] - gt[None, :, 1])
            hit = (dist < 1.0).any(0) if len(pred) else np.zeros(len(gt), bool)
            truth, found = truth + len(gt), found + int(hit.sum())
            # a false alarm is a box on no labelled object of its class, however few returns that object has
            labelled = boxes[classes == cls]
            dist_any = np.hypot(pred[:, None, 0] - labelled[None, :, 0], pred[:, None, 1] - labelled[None, :, 1])
            false_alarms += int((dist_any >= 1.0).all(1).sum()) if len(labelled) else len(pred)
            if cls == "Car":
                cars, cars_found = cars + len(gt), cars_found + int(hit.sum())
    assert truth >= 30 and cars >= 10
    assert cars_found / cars >= 0.8, f"{name}: {cars_found}/{cars} cars found"
    assert found / truth >= 0.6, f"{name}: {found}/{truth} road users found"
    assert false_alarms <= truth / 2, f"{name}: {false_alarms} false alarms for {truth} road users"


@pytest.mark.parametrize("name", sorted(n for n, (_, f) in BUNDLED.items()
                                        if any(fr.ego_body for fr in frozen_frames(f))))
def test_bundled_model_puts_no_box_on_its_own_vehicle(name):
    """The few weak returns a roof sensor gets off its own car (data/sim/ego_body.py) are not a road user: the
    models bundled before the simulator had an ego body put a car there in every real KITTI sweep (score ~0.5), and
    on these frames too."""
    det = load_detector(name, device="cpu")
    det.score_threshold = 0.3  # the node's default
    found = []
    for frame in (f for f in frozen_frames(BUNDLED[name][1]) if f.ego_body):
        p = frame.points
        assert on_own_vehicle(p[p[:, 2] > -1.4]).sum() >= 5  # the body's returns are in the frozen frame
        d = det(p[:, :4])
        on_it = on_own_vehicle(d.boxes)
        if on_it.any():
            found.append(f"{np.asarray(d.names)[on_it]} at {d.boxes[on_it, :2].round(2).tolist()}")
    assert len(found) <= OWN_VEHICLE_FRAMES.get(name, 0), f"{name} on its own vehicle: {found}"


def on_own_vehicle(xy: np.ndarray) -> np.ndarray:
    """Which points or box centres (N, >=2) lie on the ego vehicle's footprint around the sensor: no road user's
    centre can (the simulator keeps them 3 m from the ego's bumpers and beside its 1.95 m width)."""
    return (np.abs(xy[:, 0]) < 2.6) & (np.abs(xy[:, 1]) < 1.2)
