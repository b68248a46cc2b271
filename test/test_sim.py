"""The simulated LiDAR world: determinism, labels vs points, sensor limits, overlaps, written formats, drives."""
from __future__ import annotations

import json

import numpy as np
import pytest
from shapely.geometry import Polygon

from sparsekd_core.data import kitti_format as kf
from sparsekd_core.data import waymo_format as wf
from sparsekd_core.data.sim.actors import CAR_KINDS, MIRROR_REACH, VEHICLE_KINDS, reach_boxes
from sparsekd_core.data.sim.generate import generate, iterate_frames, plan_frames
from sparsekd_core.data.sim.placement import rects_overlap
from sparsekd_core.data.sim.scene import SnapshotScene
from sparsekd_core.data.sim.version import STREETS_VERSION
from sparsekd_core.data.sim.sensor import PRESETS
from sparsekd_core.data.sim.sequence import DriveScene
from sparsekd_core.geometry.boxes import bev_corners, points_in_boxes, points_to_box_frame


@pytest.fixture(scope="module")
def hdl64_frames():
    scene = SnapshotScene(PRESETS["hdl64"], seed=3, scene_index=0)
    return [scene.frame(k) for k in range(2)]


@pytest.fixture(scope="module")
def waymo_frame():
    return SnapshotScene(PRESETS["waymo_top"], seed=5, scene_index=1).frame(0)


def test_same_seed_same_frame_other_seed_other_frame(hdl64_frames):
    again = SnapshotScene(PRESETS["hdl64"], seed=3, scene_index=0).frame(1)
    first = hdl64_frames[1]
    np.testing.assert_array_equal(again.points, first.points)
    np.testing.assert_array_equal(again.boxes, first.boxes)
    np.testing.assert_array_equal(again.num_points, first.num_points)
    other = SnapshotScene(PRESETS["hdl64"], seed=4, scene_index=0).frame(1)
    assert other.points.shape != first.points.shape or not np.array_equal(other.points, first.points)


def test_frames_look_like_a_street_scan(hdl64_frames):
    for frame in hdl64_frames:
        assert 90_000 < len(frame.points) < 136_000  # 64 x 2118 rays, minus sky and dropouts
        assert frame.points.dtype == np.float32 and frame.points.shape[1] == 5
        kinds = set(frame.kinds.tolist())
        assert kinds & set(CAR_KINDS) and "pedestrian" in kinds
        assert np.all((frame.points[:, 3] >= 0) & (frame.points[:, 3] <= 1))
        # KITTI's intensity: steps of 0.01, weak and dark returns read exactly 0, nothing in (0, 0.03).
        np.testing.assert_allclose(frame.points[:, 3], np.round(frame.points[:, 3], 2), atol=1e-6)
        assert 0.01 < np.mean(frame.points[:, 3] == 0) < 0.3
        assert np.mean((frame.points[:, 3] > 0) & (frame.points[:, 3] < 0.03)) < 0.001
        # The road is 1.73 m below an hdl64: the lowest tenth of the points sits near z = -1.73.
        assert abs(np.percentile(frame.points[:, 2], 10) + 1.73) < 0.6


@pytest.mark.parametrize("which", ["hdl64", "waymo_top"])
def test_labels_carry_their_true_point_counts(which, hdl64_frames, waymo_frame):
    frame = hdl64_frames[0] if which == "hdl64" else waymo_frame
    assert len(frame) > 10
    inside = points_in_boxes(frame.points, frame.boxes)
    within_reach = points_in_boxes(frame.points, reach_boxes(frame.boxes, frame.kinds))
    for i in range(len(frame)):
        own = frame.point_label == i
        assert own.sum() >= 1
        assert (own & inside[:, i]).sum() == frame.num_points[i]  # the returns inside the box
        # every return off an object lies inside its box, but for a vehicle's wing mirrors just beside it
        assert within_reach[own, i].all()
        if frame.kinds[i] not in VEHICLE_KINDS:
            assert inside[own, i].all(), "every return off a pedestrian or cyclist lies inside its box"
        else:
            local = points_to_box_frame(frame.points[own & ~inside[:, i]], frame.boxes[i])
            assert np.all(np.abs(local[:, 1]) <= frame.boxes[i, 4] / 2 + MIRROR_REACH + 0.05)
    # The only world points inside boxes are ground returns by wheels and feet (the road's slope
    # lifts the ground a few cm above a box's flat bottom): nothing higher than 12 cm.
    world = frame.point_label < 0
    for i in range(len(frame)):
        stray = frame.points[world & inside[:, i]]
        if len(stray):
            height = points_to_box_frame(stray, frame.boxes[i])[:, 2] + frame.boxes[i, 5] / 2
            assert height.max() < 0.12, (frame.kinds[i], height.max())
    assert np.all((frame.occlusion >= 0) & (frame.occlusion <= 1))


@pytest.mark.parametrize("which", ["hdl64", "waymo_top"])
def test_points_respect_the_sensor_geometry(which, hdl64_frames, waymo_frame):
    preset = PRESETS[which]
    frame = hdl64_frames[0] if which == "hdl64" else waymo_frame
    xyz = frame.points[:, :3].astype(np.float64) - [0.0, 0.0, preset.frame_z_offset]
    rng = np.linalg.norm(xyz, axis=1)
    slack = 3 * preset.range_noise + 1e-4
    assert rng.max() <= preset.max_range + slack and rng.min() >= preset.min_range - slack
    elevation = np.degrees(np.arcsin(xyz[:, 2] / rng))
    assert elevation.max() <= max(preset.elevations) + 0.01
    assert elevation.min() >= min(preset.elevations) - 0.01
    # Every beam's points lie at that beam's elevation.
    np.testing.assert_allclose(elevation, np.asarray(preset.elevations)[frame.ring], atol=0.01)
    if which == "waymo_top":
        assert frame.points[:, 4].max() > 0.1  # elongation is filled
        assert abs(np.percentile(frame.points[:, 2], 10)) < 0.6  # vehicle frame: ground near z = 0


def test_objects_do_not_overlap(hdl64_frames, waymo_frame):
    for frame in [*hdl64_frames, waymo_frame]:
        polygons = [Polygon(c) for c in bev_corners(frame.boxes)]
        for i in range(len(polygons)):
            for j in range(i + 1, len(polygons)):
                assert polygons[i].intersection(polygons[j]).area < 1e-6, (frame.boxes[i], frame.boxes[j])


def test_separating_axis_check_agrees_with_shapely():
    rng = np.random.default_rng(0)
    rects = np.column_stack([rng.uniform(-4, 4, (300, 2)), rng.uniform(0.5, 5, (300, 2)),
                             rng.uniform(-np.pi, np.pi, 300)])
    ours = np.array([rects_overlap(rects[0], r) for r in rects[1:]])
    boxes = np.column_stack([rects[:, :2], np.zeros(300), rects[:, 2:4], np.ones(300), rects[:, 4]])
    polygons = [Polygon(c) for c in bev_corners(boxes)]
    truth = np.array([polygons[0].intersects(p) for p in polygons[1:]])
    np.testing.assert_array_equal(ours, truth)
    assert 20 < truth.sum() < 280  # the sample holds both cases


def test_plan_splits_whole_scenes_and_drives_in_time():
    plans = plan_frames(45, seed=0, val_fraction=0.2, sequence=False)
    assert len(plans) == 45 and [p.index for p in plans] == list(range(45))
    val_scenes = {p.scene for p in plans if p.split == "val"}
    train_scenes = {p.scene for p in plans if p.split == "train"}
    assert val_scenes and train_scenes and not val_scenes & train_scenes
    drive = plan_frames(10, seed=0, val_fraction=0.3, sequence=True)
    assert [p.split for p in drive] == ["train"] * 7 + ["val"] * 3
    assert [p.sample_idx for p in drive[7:]] == [0, 1, 2]
    assert all(p.split == "val" for p in plan_frames(5, 0, 1.0, sequence=True))
    with pytest.raises(ValueError, match="val-fraction"):
        plan_frames(5, 0, 1.5, sequence=False)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    summary = generate(out, frames=3, preset="hdl64", fmt="both", seed=7, val_fraction=0.4, preview=1,
                       progress=False, workers=1)
    return out, summary


def test_kitti_files_read_back_to_the_simulated_boxes(written):
    out, summary = written
    assert summary.frames == 3
    layout = kf.KittiLayout(out / "kitti")
    plans = plan_frames(3, seed=7, val_fraction=0.4, sequence=False)
    ids = kf.read_image_set(layout.image_set_path("train")) + kf.read_image_set(layout.image_set_path("val"))
    assert sorted(ids) == ["000000", "000001", "000002"]
    checked = 0
    for plan, frame in iterate_frames("hdl64", plans, seed=7, sequence=False):
        fid = kf.frame_id(plan.index)
        points = kf.read_points(layout.points_path(fid, reduced=False))
        np.testing.assert_array_equal(points, frame.points[:, :4])
        calib = kf.read_calib(layout.calib_path(fid))
        objects = kf.read_label(layout.label_path(fid))
        assert objects and {o.type for o in objects} <= {"Car", "Van", "Truck", "Pedestrian", "Cyclist"}
        boxes = kf.objects_to_lidar_boxes(objects, calib)
        # Each label matches one simulated box; every object around the sensor is labelled.
        assert len(objects) == len(frame)
        for obj, box in zip(objects, boxes):
            err = np.abs(frame.boxes - box)
            err[:, 6] = np.abs(np.angle(np.exp(1j * (frame.boxes[:, 6] - box[6]))))
            best = err.max(axis=1).argmin()
            assert err[best].max() < 1e-3, (obj.to_line(), frame.boxes[best])
            assert kf.KITTI_CLASSES.index(obj.type) >= 0
            checked += 1
        # Objects the camera sees carry their projected 2D box; the others a zero box, truncation 1 and
        # difficulty -1, so the KITTI metric ignores them.
        bbox, valid = kf.boxes_to_image_bbox(boxes, calib)
        in_view = valid & (calib.lidar_to_rect(boxes[:, :3])[:, 2] > 0)
        assert 0 < in_view.sum() < len(objects)
        written = np.stack([o.bbox for o in objects])
        np.testing.assert_allclose(written[in_view], bbox[in_view], atol=0.006)
        assert np.all(written[~in_view] == 0) and all(o.truncated == 1.0 for o, v in zip(objects, in_view) if not v)
        difficulty = kf.object_difficulty(objects)
        assert set(difficulty.tolist()) <= {-1, 0, 1, 2} and np.all(difficulty[~in_view] == -1)
    assert checked > 10


def test_waymo_layout_reads_back(written):
    out, _ = written
    layout = wf.WaymoLayout(out / "waymo")
    train = wf.read_infos(layout, "train")
    val = wf.read_infos(layout, "val", from_segments=True)
    assert len(train) + len(val) == 3 and train and val
    assert wf.read_image_set(layout.image_set_path("val")) == [val[0]["point_cloud"]["lidar_sequence"]]
    for info in train + val:
        annos = info["annos"]
        assert set(annos["name"].tolist()) <= set(wf.WAYMO_CLASSES)
        points = wf.load_frame(layout, info, tanh_intensity=False)
        assert points.shape[1] == 5 and len(points) == info["num_points_of_each_lidar"][0]
        inside = points_in_boxes(points, annos["gt_boxes_lidar"])
        assert np.all(inside.sum(axis=0) >= annos["num_points_in_gt"]) and np.all(annos["num_points_in_gt"] >= 1)
        assert info["pose"].shape == (4, 4)
    meta = json.loads((out / "sim_meta.json").read_text())
    assert meta["preset"] == "hdl64" and len(meta["frames_list"]) == 3 and meta["streets_version"] == STREETS_VERSION
    assert meta["ego_body"] is True and all(isinstance(f["ego_body"], bool) for f in meta["frames_list"])
    assert len(list((out / "preview").glob("*.png"))) == 1


def test_drive_objects_move_consistently():
    drive = DriveScene(PRESETS["hdl64"], seed=2, scene_index=0, num_frames=3)
    a, b = drive.frame(0), drive.frame(2)
    assert b.timestamp == pytest.approx(0.2)
    common = np.intersect1d(a.track_ids, b.track_ids)
    assert len(common) > 10
    moved = 0
    for tid in common:
        i, j = np.flatnonzero(a.track_ids == tid)[0], np.flatnonzero(b.track_ids == tid)[0]
        # In the world frame every object moved by its velocity x 0.2 s (boxes snap to 1 cm).
        wa = a.pose[:3, :3] @ a.boxes[i, :3] + a.pose[:3, 3]
        wb = b.pose[:3, :3] @ b.boxes[j, :3] + b.pose[:3, 3]
        vel = a.pose[:2, :2] @ a.velocity[i]
        np.testing.assert_allclose(wb[:2] - wa[:2], vel * 0.2, atol=0.015)
        np.testing.assert_allclose(a.boxes[i, 3:6], b.boxes[j, 3:6])
        assert a.kinds[i] == b.kinds[j]
        moved += np.linalg.norm(vel) > 0.5
    assert moved > 3
    # The ego drives along +x at its speed: the pose moved by speed x 0.2 s.
    assert b.pose[0, 3] - a.pose[0, 3] == pytest.approx(drive.ego0.speed * 0.2)


def test_cli_help_and_a_tiny_run(tmp_path, capsys):
    from sparsekd_core.cli.sim import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "hdl64" in capsys.readouterr().out
    assert main(["--out", str(tmp_path), "--frames", "1", "--format", "waymo", "--preset", "waymo_top",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "frames/s" in text
    assert (tmp_path / "waymo" / "waymo_infos_train.pkl").is_file()
    # --no-ego-body reaches the scenes, and sim_meta.json says so
    assert main(["--out", str(tmp_path / "n"), "--frames", "1", "--format", "waymo", "--preset", "waymo_top",
                 "--quiet", "--no-ego-body"]) == 0
    meta = json.loads((tmp_path / "n" / "sim_meta.json").read_text())
    assert meta["ego_body"] is False and not meta["frames_list"][0]["ego_body"]
    assert main(["--out", str(tmp_path / "x"), "--frames", "0", "--quiet"]) == 2


def test_ray_culling_keeps_every_ray_that_hits_an_actor():
    """The actor cast only covers rays inside some actor's angular extent: no ray that hits an actor
    may fall outside it (a truck right beside the sensor is the hard case: its nearest point is mid-side)."""
    import open3d as o3d

    from sparsekd_core.data.sim.actors import MeshLibrary
    from sparsekd_core.data.sim.meshes import pose_meshes
    from sparsekd_core.data.sim.sensor import Lidar, _BoxFrames

    lidar = Lidar(PRESETS["hdl64"])
    from sparsekd_core.data.sim.sizes import SizeSampler

    library = MeshLibrary(np.random.default_rng(0), SizeSampler(np.random.default_rng(0)), variants=1)
    sizes = {"truck": [10.0, 2.5, 3.8], "sedan": [4.5, 1.8, 1.5], "pedestrian": [0.6, 0.6, 1.75]}
    placed = [("truck", [1.0, 2.6, -1.73 + 1.9, 0.1]), ("sedan", [-3.0, -2.2, -1.73 + 0.75, 1.4]),
              ("pedestrian", [0.0, -1.2, -1.73 + 0.875, 0.0]), ("sedan", [30.0, 5.0, -1.73 + 0.75, 3.0])]
    boxes = np.array([[x, y, z, *sizes[k], yaw] for k, (x, y, z, yaw) in placed])
    reach = reach_boxes(boxes, [k for k, _ in placed])  # what the scan covers (mirrors included)
    meshes = [library.mesh(k, np.array(sizes[k]), True, np.random.default_rng(1)) for k, _ in placed]
    for subset, max_share in ((slice(None), 1.0), (slice(3, 4), 0.01)):  # all around / one far car
        mesh, _ = pose_meshes(meshes[subset], boxes[subset])
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(mesh.vertices), o3d.core.Tensor(mesh.triangles.astype(np.uint32)))
        for yaw, offset in ((0.0, 0.0), (0.7, 0.001)):
            local, _ = lidar.local_directions(offset)
            c, s = np.cos(yaw), np.sin(yaw)
            world = np.column_stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1],
                                     local[:, 2]])
            rays = np.hstack([np.zeros_like(world), world]).astype(np.float32)
            hits = np.isfinite(scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy())
            coverage = lidar._coverage(_BoxFrames(reach[subset]), np.zeros(3), yaw, offset)
            assert hits.sum() > 50
            assert not np.any(hits & (coverage == 0))
            assert coverage.astype(bool).mean() <= max_share  # and it does cull
