"""What makes simulated scans look like real ones: published size statistics, body types, clutter nobody
labels, the common sensors' beam layouts, mounting height and tilt, KITTI's intensity, and determinism."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sparsekd_core.data.sim.actors import (CAR_KINDS, PEOPLE_KINDS, UNLABELLED_KINDS, VEHICLE_KINDS, MeshLibrary,
                                          vehicle_mesh)
from sparsekd_core.data.sim.generate import generate
from sparsekd_core.data.sim.ego_body import (EDGE_OUT_RANGE, MIN_ROOF_HEIGHT, RIG_FIXTURES_RANGE, RIG_MIN_DISTANCE,
                                             RIG_RETURN_CHANCE_RANGE, Rig)
from sparsekd_core.data.sim.meshes import GLASS_RETURNS, Mesh
from sparsekd_core.data.sim.scene import SimOptions, SnapshotScene
from sparsekd_core.data.sim.sensor import PRESETS, SensorMix
from sparsekd_core.data.sim.sizes import CAR_TYPE_OFFSETS, LABEL_STYLES, SizeSampler, type_size_distributions
from sparsekd_core.data.sim.world import StreetLayout
from sparsekd_core.eval.domain_gap import ABOVE_ROAD, NEAR_SENSOR, near_sensor, standing_returns
from sparsekd_core.geometry.ground import estimate_ground


@pytest.mark.parametrize("style", sorted(LABEL_STYLES))
def test_car_body_types_mix_to_the_published_class_statistics(style):
    """Sampling body types at the style's weights and their sizes gives the dataset's Car mean and spread."""
    s = LABEL_STYLES[style]
    dists = type_size_distributions(s)
    cars = [t for t in CAR_TYPE_OFFSETS if s.type_class[t] == "Car"]
    w = np.array([s.type_weights[t] for t in cars])
    w = w / w.sum()
    means = np.array([dists[t][0] for t in cars])
    var = np.array([dists[t][1] ** 2 for t in cars])
    mix_mean = w @ means
    mix_var = w @ var + w @ (means - mix_mean) ** 2  # law of total variance
    np.testing.assert_allclose(mix_mean, s.classes["Car"].mean, atol=1e-9)
    np.testing.assert_allclose(np.sqrt(mix_var), s.classes["Car"].std, atol=1e-9)
    # and the sampler draws them (clipped at 3 sigma, rounded to centimetres)
    sampler = SizeSampler(np.random.default_rng(0), s)
    drawn = []
    while len(drawn) < 3000:
        kind = sampler.vehicle_type()
        if kind in cars:
            drawn.append(sampler(kind))
    drawn = np.array(drawn)
    np.testing.assert_allclose(drawn.mean(0), s.classes["Car"].mean, atol=0.04)
    np.testing.assert_allclose(drawn.std(0), s.classes["Car"].std, rtol=0.1)


def test_kitti_sizes_are_kittis():
    """The published KITTI means (KITTI's training-label class means as PointRCNN lists them; Wang et al. 2020
    for cars) in the default style."""
    k = LABEL_STYLES["kitti"].classes
    assert k["Car"].mean == pytest.approx((3.88, 1.63, 1.53))
    assert k["Pedestrian"].mean == pytest.approx((0.84, 0.66, 1.76))
    assert k["Cyclist"].mean == pytest.approx((1.76, 0.60, 1.74))
    assert LABEL_STYLES["waymo"].classes["Car"].mean == pytest.approx((4.80, 2.11, 1.78))
    sampler = SizeSampler(np.random.default_rng(1))
    peds = np.array([sampler("pedestrian") for _ in range(2000)])
    np.testing.assert_allclose(peds.mean(0), k["Pedestrian"].mean, atol=0.03)
    kids = np.array([sampler("pedestrian", child=True) for _ in range(200)])
    assert kids[:, 2].mean() < 1.4


def test_windows_return_few_pulses():
    """A car's glass band (above the beltline) returns a small share of what its paint does."""
    mesh = vehicle_mesh("sedan", np.array([4.4, 1.75, 1.45]), np.random.default_rng(0))
    glass = mesh.returns < 1
    assert glass.any() and np.allclose(mesh.returns[glass], GLASS_RETURNS)
    # glass triangles sit above the beltline, in the upper part of the body
    centres = mesh.vertices[mesh.triangles].mean(axis=1)
    assert np.all(centres[glass, 2] > -1.45 / 2 + 0.55 * 1.45)
    # the mirrors stick out of the 1.75 m label box; nothing else does
    outside = np.abs(mesh.vertices[:, 1]) > 1.75 / 2 + 1e-4
    assert outside.any() and np.all(np.abs(mesh.vertices[outside, 1]) < 1.75 / 2 + 0.16)


@pytest.mark.parametrize("kind", ["hatchback", "sedan", "van", "truck"])
def test_licence_plates_face_the_sensor_at_both_ends(kind):
    """A ray aimed at a plate meets the plate (retro-reflective, 0.9), not the body paint behind it."""
    from sparsekd_core.data.sim.raycast import RayCasterChoice

    size = np.array([4.6, 1.8, 1.6] if kind != "truck" else [7.0, 2.4, 3.0])
    mesh = vehicle_mesh(kind, size, np.random.default_rng(3))
    plates = np.flatnonzero(mesh.reflectivity == 0.9)
    centres = mesh.vertices[mesh.triangles[plates]].mean(axis=1)
    assert len(plates) == 4 and set(np.sign(centres[:, 0])) == {-1.0, 1.0}
    origins = centres * [0, 1, 1] + [[np.sign(x) * 10.0, 0, 0] for x in centres[:, 0]]
    rays = np.c_[origins, centres - origins].astype(np.float32)
    rays[:, 3:] /= np.linalg.norm(rays[:, 3:], axis=1, keepdims=True)
    hits = RayCasterChoice("torch", "cpu").build(mesh.vertices, mesh.triangles).cast_rays(rays)
    assert np.all(mesh.reflectivity[hits.primitive_ids] == 0.9)


@pytest.fixture(scope="module")
def busy_frames():
    """Frames of two streets, hdl64 at KITTI's mounting."""
    return [SnapshotScene(PRESETS["hdl64"], seed=21, scene_index=scene).frame(0) for scene in range(2)]


def test_clutter_that_nobody_labels_returns_points(busy_frames):
    """Parked bicycles and prams are placed, hit by the LiDAR and not labelled; streets of all kinds occur."""
    scene = SnapshotScene(PRESETS["hdl64"], seed=21, scene_index=0)
    from sparsekd_core.data.sim.placement import Densities, populate
    from sparsekd_core.data.sim.sizes import SizeSampler as Sizes

    kinds = set()
    for k in range(10):
        rng = np.random.default_rng(k)
        ego = scene._sample_ego(rng, 0.0)
        actors = populate(scene.world, rng, (-60, 60), ego, False, scene.library, Sizes(rng),
                          Densities(1.0, 1.0, 1.0, 1.0))
        kinds |= {a.kind for a in actors}
    assert set(UNLABELLED_KINDS) <= kinds
    for frame in busy_frames:
        assert not set(frame.kinds) & set(UNLABELLED_KINDS)
    # and a LiDAR sees them: a fan of level rays from 8 m to the side hits each one's mesh
    from sparsekd_core.data.sim.raycast import RayCasterChoice

    for kind in UNLABELLED_KINDS:
        mesh = scene.library.mesh(kind, MeshLibrary.UNLABELLED_BASE[kind], False, np.random.default_rng(0))
        heights = np.linspace(-0.3, 0.3, 7) * MeshLibrary.UNLABELLED_BASE[kind][2]
        along = np.linspace(-0.4, 0.4, 9) * MeshLibrary.UNLABELLED_BASE[kind][0]
        origins = np.array([(x, 8.0, z) for x in along for z in heights], np.float32)
        rays = np.c_[origins, np.tile([0.0, -1.0, 0.0], (len(origins), 1))].astype(np.float32)
        hits = RayCasterChoice("torch", "cpu").build(mesh.vertices, mesh.triangles).cast_rays(rays)
        assert np.isfinite(hits.t_hit).mean() > 0.2, kind
    from sparsekd_core.data.sim.world import StreetLayout

    rng = np.random.default_rng(0)
    assert {StreetLayout.sample(rng, (-50.0, 50.0)).kind for _ in range(30)} == {"city", "residential", "rural"}


@pytest.mark.parametrize("name", ["hdl32", "vlp16", "os1_64", "os1_128"])
def test_sensor_presets_scan_with_their_beam_layout(name):
    preset = PRESETS[name]
    frame = SnapshotScene(preset, seed=2, scene_index=1).frame(0)
    xyz = frame.points[:, :3].astype(np.float64) - [0.0, 0.0, preset.frame_z_offset]
    rng = np.linalg.norm(xyz, axis=1)
    elevation = np.degrees(np.arcsin(xyz[:, 2] / rng))
    np.testing.assert_allclose(elevation, np.asarray(preset.elevations)[frame.ring], atol=0.01)
    assert len(np.unique(frame.ring)) > 0.8 * preset.num_beams
    # Each column of a revolution fires every beam: point counts follow beams x columns
    assert len(frame.points) < preset.num_rays
    assert abs(estimate_ground(frame.points).height + preset.mount_height) < 0.25


def test_a_raised_and_tilted_sensor_is_written_in_the_nominal_frame():
    """With random mounting the sensor sits 0.5-2.3 m up and tilted, but its points land in the dataset's frame:
    the road stays at -1.73 m and labelled boxes sit on it."""
    options = SimOptions(random_mount=1.0, frame_height=1.73)
    scene = SnapshotScene(PRESETS["vlp16"], seed=4, scene_index=0, options=options)
    seen = []
    for k in range(3):
        frame = scene.frame(k)
        m = frame.meta
        seen.append((m["mount_height"], m["mount_pitch"], m["mount_roll"]))
        assert abs(estimate_ground(frame.points).height + 1.73) < 0.15
        bottoms = frame.boxes[:, 2] - frame.boxes[:, 5] / 2
        assert abs(np.median(bottoms) + 1.73) < 0.2
    heights = [s[0] for s in seen]
    assert len(set(heights)) == 3 and all(0.5 <= h <= 2.3 for h in heights)
    assert any(abs(s[1]) > 1e-4 for s in seen)


def test_a_roof_sensor_mounted_at_random_still_sees_peoples_heads():
    """An HDL-64E looks at most 2 degrees up: mounted low it would scan people as knee-high stumps under
    person-high labels, which teaches a detector to call short posts people. Its random mountings stay on a roof
    (1.5-2.3 m), where the top of every near person's box holds a return; a VLP-16, which looks 15 degrees up,
    still draws from 0.5 m."""
    assert PRESETS["hdl64"].mount_heights == PRESETS["waymo_top"].mount_heights == (1.5, 2.3)
    assert PRESETS["vlp16"].mount_heights == (0.5, 2.3)
    options = SimOptions(random_mount=1.0, frame_height=1.73)
    gaps, heights = [], []
    for scene_index in range(3):
        frame = SnapshotScene(PRESETS["hdl64"], seed=77, scene_index=scene_index, options=options).frame(0)
        heights.append(frame.meta["mount_height"])
        for m, kind in enumerate(frame.kinds):
            box = frame.boxes[m]
            own = frame.points[frame.point_label == m]
            if kind in PEOPLE_KINDS and np.hypot(box[0], box[1]) < 15 and len(own) >= 15:
                gaps.append(box[2] + box[5] / 2 - own[:, 2].max())
    assert all(1.5 <= h <= 2.3 for h in heights) and len(set(heights)) == 3
    assert len(gaps) >= 10
    # With heights drawn from 0.5 m, 42% of these people had no return in their box's top 0.3 m (40 frames).
    assert max(gaps) < 0.3, sorted(gaps)[-5:]


def test_sensor_mix_and_workers_do_not_change_the_data(tmp_path):
    """A mixed-sensor dataset is the same whatever the number of worker processes, frame by frame."""
    mix = "hdl64:0.5,vlp16:0.5"
    assert SensorMix.parse(mix).names == ("hdl64", "vlp16")
    with pytest.raises(ValueError, match="unknown sensor preset"):
        SensorMix.parse("hdl64,lidar9000")
    kw = dict(frames=2, preset=mix, fmt="kitti", seed=5, val_fraction=0.5, progress=False,
              options=SimOptions(frame_height=1.73))
    generate(tmp_path / "a", workers=1, **kw)
    generate(tmp_path / "b", workers=2, **kw)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "kitti").rglob("*") if p.is_file())
    assert len(files) >= 6
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    import json

    meta = json.loads((tmp_path / "a" / "sim_meta.json").read_text())
    assert meta["preset"] == mix and meta["frame_height"] == 1.73
    assert meta["mount_heights"] == {"hdl64": [1.5, 2.3], "vlp16": [0.5, 2.3]}
    assert sorted(f["sensor"] for f in meta["frames_list"]) == ["hdl64", "vlp16"]  # seed 5 draws each once
    assert meta["points_frame"] == "sensor"  # written 1.73 m above the road, whatever each sensor's mounting


def test_kitti_like_intensity(busy_frames):
    """KITTI's scale: asphalt around 0.2-0.4, dark paint and far returns read 0."""
    frame = busy_frames[0]
    r = np.hypot(frame.points[:, 0], frame.points[:, 1])
    ground = (frame.points[:, 2] < -1.6) & (r < 15) & (frame.point_label < 0)
    assert 0.2 < np.median(frame.points[ground, 3]) < 0.4
    far = r > 45
    assert np.mean(frame.points[far, 3] == 0) > 0.3
    cars = np.isin(frame.point_label, np.flatnonzero(np.isin(frame.kinds, CAR_KINDS)))
    assert 0.02 < np.mean(frame.points[cars, 3] == 0) < 0.8


def test_a_roof_sensor_sees_a_few_weak_unlabelled_returns_off_its_own_vehicle():
    """Real roof sensors see their own car: a few dozen returns at the sensor's feet that read intensity 0, lying on
    the car's footprint (more of it behind the sensor than ahead), and a shadow on the road around it. Nothing is
    labelled for it, and ``ego_body=False`` leaves it out."""
    hdl64 = PRESETS["hdl64"]
    for seed in (0, 3, 5):
        scene = SnapshotScene(hdl64, seed=seed, scene_index=0)
        with_body = scene.frame(0)
        without = SnapshotScene(hdl64, seed=seed, scene_index=0, options=SimOptions(ego_body=False)).frame(0)
        assert with_body.meta["ego_body"] and not without.meta["ego_body"]
        points = with_body.points
        # what sparsekd-gap counts as the own vehicle's returns: these streets keep nothing else there
        assert near_sensor(without.points, -hdl64.mount_height)[0] == 0
        returns = near_sensor(points, -hdl64.mount_height)[0]
        assert 10 <= returns <= 300, returns
        own = (np.hypot(points[:, 0], points[:, 1]) < NEAR_SENSOR) & (points[:, 2] > -hdl64.mount_height + ABOVE_ROAD)
        assert np.all(points[own, 3] == 0.0)  # weak: KITTI's scale reads 0
        assert np.all(with_body.point_label[own] == -1)  # world points: nobody labels the ego vehicle
        # on the body and its rig: within its footprint, which reaches sensor_ahead farther behind the sensor than
        # ahead, widened by what the rig's edge fixtures may stick out
        body = scene.ego_body
        half_length = body.size[0] / 2
        half_width = body.size[1] / 2 + max(0.2, EDGE_OUT_RANGE[1] + 0.1)  # + mirrors, fixtures and range noise
        assert np.all((points[own, 0] <= half_length - body.sensor_ahead + 0.05)
                      & (points[own, 0] >= -half_length - body.sensor_ahead - 0.05)
                      & (np.abs(points[own, 1]) <= half_width))
        assert np.linalg.norm(points[own, :3], axis=1).min() >= hdl64.min_range - 3 * hdl64.range_noise
        assert len(points) < len(without.points)  # the body hides the road under and around it


def test_a_vehicle_fits_under_the_sensor_only_when_its_mount_leaves_room_for_a_roof():
    body = SnapshotScene(PRESETS["hdl64"], seed=0, scene_index=0).ego_body
    body = dataclasses.replace(body, rig=Rig(Mesh.empty(), np.zeros((0, 3))))  # the bare body (the rig: below)
    assert body.roof_height(MIN_ROOF_HEIGHT + body.lift) == pytest.approx(MIN_ROOF_HEIGHT)
    assert body.roof_height(MIN_ROOF_HEIGHT + body.lift - 0.01) is None
    assert body.world_mesh(np.zeros(2), 0.0, 0.0, 1.0) is None
    mesh = body.world_mesh(np.array([10.0, 5.0]), 0.5, np.pi / 2, 2.0)  # heading +y, road 0.5 m up
    # the roof, the lift under the sensor (the mesh keeps MESH_MARGIN inside its box, here scaled to the roof)
    assert mesh.vertices[:, 2].max() == pytest.approx(0.5 + 2.0 - body.lift, abs=0.06)
    assert mesh.vertices[:, 2].min() >= 0.5  # wheels on the road
    # the body lies along the heading, centred sensor_ahead behind the sensor
    assert np.ptp(mesh.vertices[:, 1]) > np.ptp(mesh.vertices[:, 0])
    assert (mesh.vertices[:, 1].max() + mesh.vertices[:, 1].min()) / 2 == pytest.approx(5.0 - body.sensor_ahead,
                                                                                         abs=0.05)
    low = SnapshotScene(PRESETS["vlp16"], seed=0, scene_index=0).frame(0)  # mounted at 0.7 m: no car under it
    assert not low.meta["ego_body"]


def test_rigs_put_small_fixtures_on_the_vehicle_broadly_mostly_mirrored_and_out_of_the_blind_cone():
    """Rig.sample over many vehicles: every fixture lies on the vehicle's edges or roof, outside the cone under the
    sensor that no beam reaches; how many a rig has varies, some vehicles have none, and twins mirror each other."""
    rng = np.random.default_rng(0)
    size = np.array([4.5, 1.8, 1.5])
    counts, mirrored = [], 0
    for _ in range(400):
        ahead = float(rng.uniform(-0.2, 0.6))
        rig = Rig.sample(rng, size, ahead)
        c = rig.centres
        counts.append(len(c))
        assert len(c) <= 2 * RIG_FIXTURES_RANGE[1]
        assert np.all(np.hypot(c[:, 0], c[:, 1]) >= RIG_MIN_DISTANCE)
        assert np.all(np.abs(c[:, 1]) <= size[1] / 2 + EDGE_OUT_RANGE[1] + 1e-9)
        assert np.all((c[:, 0] >= -size[0] / 2 - ahead - 1e-9) & (c[:, 0] <= size[0] / 2 - ahead + 1e-9))
        assert np.all((c[:, 2] > -0.5) & (c[:, 2] < 0.2))  # from the shoulder line to just above the roof
        assert rig.mesh.num_triangles == 12 * len(c)  # one box each
        assert np.all(rig.mesh.returns <= RIG_RETURN_CHANCE_RANGE[1]) and np.all(rig.mesh.reflectivity < 0.1)
        twin = (np.abs(c[:, None, 0] - c[None, :, 0]) < 1e-9) & (np.abs(c[:, None, 1] + c[None, :, 1]) < 1e-9)
        mirrored += int(np.any(twin & ~np.eye(len(c), dtype=bool)))
    counts = np.array(counts)
    assert 0.08 < np.mean(counts == 0) < 0.25  # RIG_ABSENT_CHANCE (0.15) of the vehicles, a few rejected fixtures
    assert counts.max() >= 5 and len(np.unique(counts)) >= 5
    assert mirrored > 0.5 * np.sum(counts > 0)


def test_a_rig_returns_a_fixed_cluster_at_the_same_spot_in_every_sweep():
    """The rig rides with the sensor: each fixture the beams reach sends back a few weak, unlabelled returns around
    its centre, at the same place frame after frame (as real sweeps show around the sensor); the bare body alone
    sends fewer there."""
    hdl64 = PRESETS["hdl64"]
    scene = SnapshotScene(hdl64, seed=7, scene_index=0)  # an SUV with five fixtures
    body = scene.ego_body
    roof = body.roof_height(hdl64.mount_height)
    assert roof is not None and len(body.rig.centres) == 5
    bare = SnapshotScene(hdl64, seed=7, scene_index=0)
    bare.ego_body = dataclasses.replace(body, rig=Rig(Mesh.empty(), np.zeros((0, 3))))
    # the fixtures' centres in the output frame (level, at the sensor, frame_height above the road)
    centres = body.rig.centres + np.array([0.0, 0.0, roof - hdl64.nominal_frame_height])
    seen_per_frame = []
    for index in range(4):
        frame, plain = scene.frame(index), bare.frame(index)
        near = np.linalg.norm(frame.points[:, None, :3] - centres[None], axis=2) < 0.25  # (N, F)
        near_plain = np.linalg.norm(plain.points[:, None, :3] - centres[None], axis=2) < 0.25
        hits = near.any(axis=1)
        assert np.all(frame.point_label[hits] == -1) and np.all(frame.points[hits, 3] == 0.0)
        seen = near.sum(axis=0)
        seen_per_frame.append(seen > 0)
        assert seen.sum() >= 5 and near_plain.sum() < seen.sum(), (seen, near_plain.sum(0))
    seen_per_frame = np.array(seen_per_frame)
    assert np.any(np.all(seen_per_frame, axis=0))  # a fixture seen in every sweep, at the same spot


def test_narrow_streets_have_one_lane_each_way_narrow_sidewalks_and_buildings_close_by():
    wide = [StreetLayout.sample(np.random.default_rng(s), (-80.0, 80.0)) for s in range(200)]
    narrow = [StreetLayout.sample(np.random.default_rng(s), (-80.0, 80.0), narrow_share=1.0) for s in range(200)]
    assert all(n.lanes_per_direction == 1 and 2.75 <= n.lane_width <= 3.25 and 2.5 <= n.sidewalk_width <= 3.5
               for n in narrow)
    assert {w.kind for w in wide} == {n.kind for n in narrow} == {"city", "residential", "rural"}
    # the kind, slope and kerb stay those of the street it narrows; the buildings come nearer
    assert all(n.kind == w.kind and n.slope == w.slope for n, w in zip(narrow, wide))
    line = np.array([[l.building_line(side) for side in (-1, 1)] for l in wide])
    near_line = np.array([[l.building_line(side) for side in (-1, 1)] for l in narrow])
    assert np.median(near_line) < 0.6 * np.median(line) and np.median(near_line) < 10.0
    assert np.mean([p for n in narrow for p in n.parking]) > 0.75  # cars parked along most kerbs
    # a share of narrow streets: about that share of draws
    mixed = [StreetLayout.sample(np.random.default_rng(s), (-80.0, 80.0), narrow_share=0.5) for s in range(400)]
    assert 0.4 < np.mean([m.lanes_per_direction == 1 and m.sidewalk_width <= 3.5 for m in mixed]) < 0.6


def test_without_narrow_streets_a_seed_still_draws_the_version_4_streets_the_bundled_models_are_tested_on():
    """The frozen frames of test_bundled_models (scripts/freeze_streets.py, streets version 4): the default options
    must still draw them, labels and points, or STREETS_VERSION goes up (data/sim/version.py)."""
    from pathlib import Path

    frozen = np.load(Path(__file__).parent / "data" / "bundled_streets_v4_360.npz")
    frame = SnapshotScene(PRESETS["hdl64"], seed=783, scene_index=0).frame(0)
    np.testing.assert_allclose(frame.boxes, frozen["boxes_0"], atol=1e-5)
    np.testing.assert_array_equal(frame.num_points, frozen["num_points_0"])  # each object's returns, to the point


def test_narrow_streets_put_walls_and_parked_cars_near_the_sensor_as_real_sweeps_have_them():
    """KITTI's sweeps hold about 37,000 returns 0.3-3 m above the road 3-10 m from the sensor (median of the nine
    of ../shared, sparsekd-gap); wide simulated streets about 9,000 (median of 24 seeds), narrow ones 17,000."""
    def near_standing(narrow_share):
        counts = []
        for seed in range(24):
            frame = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0,
                                  options=SimOptions(narrow_streets=narrow_share)).frame(0)
            counts.append(standing_returns(frame.points, estimate_ground(frame.points).height)[0])
        return np.median(counts)

    assert near_standing(1.0) > 1.5 * near_standing(0.0)


def test_vehicle_glass_moves_car_returns_towards_the_box_centre_as_real_cars_have_them():
    """Real KITTI cars' returns lie 1.37 m in front of their box centre (median over cars, sparsekd-gap), version-4
    simulated cars' about 1.52 m: bare glass returns 12% of the pulses, what lies behind real windows more. The option
    changes the vehicles' windows and nothing else: the same seed draws the same road users."""
    from sparsekd_core.eval.domain_gap import DEPTH_RANGE, return_depth

    def car_depths(glass):
        depths, boxes = [], []
        for seed in range(10):
            frame = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0,
                                  options=SimOptions(vehicle_glass=glass)).frame(0)
            boxes.append(frame.boxes)
            for box, kind in zip(frame.boxes, frame.kinds):
                if kind in CAR_KINDS and DEPTH_RANGE[0] <= np.hypot(box[0], box[1]) <= DEPTH_RANGE[1]:
                    depth = return_depth(frame.points, box)
                    if depth is not None:
                        depths.append(depth)
        return np.median(depths), boxes

    bare, bare_boxes = car_depths(None)
    backed, backed_boxes = car_depths(0.6)
    for a, b in zip(bare_boxes, backed_boxes):  # the same road users; a few more get a return and a label
        assert len(b) >= len(a) and all((b == row).all(axis=1).any() for row in a)
    assert bare < -1.45 and backed > bare + 0.08, (bare, backed)


def library_pairs(**option):
    """(kind, mesh, the same mesh built with ``option``) for every variant of a MeshLibrary of fixed seeds."""
    libraries = [MeshLibrary(np.random.default_rng(5), SizeSampler(np.random.default_rng(0), LABEL_STYLES["kitti"]),
                             **extra) for extra in ({}, option)]
    for (kind, moving), variants in libraries[0]._cache.items():
        for (a, _), (b, _) in zip(variants, libraries[1]._cache[(kind, moving)]):
            yield kind, a, b


def test_vehicle_glass_sets_the_windows_of_road_vehicles_only():
    for kind, a, b in library_pairs(vehicle_glass=0.6):
        glass = a.returns == np.float32(GLASS_RETURNS)
        if kind in CAR_KINDS or kind in ("van", "truck", "bus", "pickup"):
            assert glass.any() and np.all(b.returns[glass] == np.float32(0.6)), kind
        else:
            np.testing.assert_array_equal(a.returns, b.returns)
        np.testing.assert_array_equal(a.returns[~glass], b.returns[~glass])
    with pytest.raises(ValueError, match="vehicle_glass must be a share"):
        SimOptions(vehicle_glass=1.5)


def test_people_brightness_scales_the_reflectivity_of_people_only():
    for kind, a, b in library_pairs(people_brightness=1.35):
        np.testing.assert_array_equal(a.vertices, b.vertices)  # the same shapes: no random number drawn
        np.testing.assert_array_equal(a.returns, b.returns)
        expected = np.minimum(a.reflectivity * np.float32(1.35), 1.0) if kind in PEOPLE_KINDS else a.reflectivity
        np.testing.assert_allclose(b.reflectivity, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="people_brightness must be a factor"):
        SimOptions(people_brightness=0.0)
    with pytest.raises(ValueError, match="people_brightness must be a factor"):
        SimOptions(people_brightness=5.0)


def test_people_brightness_makes_pedestrians_read_as_bright_as_real_ones():
    """Real KITTI pedestrians' returns read a median 0.35 (the nine sweeps of ../shared, 5-40 m: sparsekd-gap),
    version-4 simulated ones about 0.27; at 1.35 the same road users, in the same places, read about as real ones do."""
    from sparsekd_core.eval.domain_gap import object_intensity
    from sparsekd_core.geometry.boxes import points_in_boxes

    def people(gain):
        reads, boxes = [], []
        for seed in range(6):
            frame = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0,
                                  options=SimOptions(people_brightness=gain)).frame(0)
            boxes.append(frame.boxes)
            for box, kind in zip(frame.boxes, frame.kinds):
                if kind == "pedestrian" and 5 <= np.hypot(box[0], box[1]) <= 40:
                    inside = points_in_boxes(frame.points[:, :3], np.asarray(box, np.float64)[None])[:, 0].astype(bool)
                    value = object_intensity(frame.points, inside)
                    if value is not None:
                        reads.append(value)
        return np.median(reads), len(reads), boxes

    v4, n, v4_boxes = people(None)
    bright, m, bright_boxes = people(1.35)
    assert n == m >= 10
    for a, b in zip(v4_boxes, bright_boxes):
        np.testing.assert_array_equal(a, b)  # the same road users in the same places
    assert v4 < 0.3 and 0.32 < bright < 0.4, (v4, bright)


def test_clear_coat_paint_keeps_the_shapes_and_changes_only_vehicles_paint_and_windows():
    """The same draws, so the same shapes; vehicles' paint glints head-on (materials.clear_coat) and their windows are
    tinted; nothing else changes: plates, tyres, underbodies, truck cargo boxes and everyone who is not a vehicle."""
    from sparsekd_core.data.sim.materials import CLEAR_COAT_DIFFUSE, CLEAR_COAT_GLINT, TINTED_GLASS

    coated_kinds = set()
    for kind, a, b in library_pairs(clear_coat_paint=True):
        np.testing.assert_array_equal(a.vertices, b.vertices)
        np.testing.assert_array_equal(a.returns, b.returns)
        assert np.all(a.gloss == 0)
        if kind not in VEHICLE_KINDS:
            np.testing.assert_array_equal(a.reflectivity, b.reflectivity)
            assert np.all(b.gloss == 0), kind
            continue
        coated, glass = b.gloss > 0, a.returns == np.float32(GLASS_RETURNS)
        assert coated.sum() >= 12 and not (coated & glass).any(), kind  # at least a cab (a box)
        coated_kinds.add(kind)
        shade = a.reflectivity[coated]
        np.testing.assert_allclose(b.reflectivity[coated], shade + CLEAR_COAT_GLINT, rtol=1e-6)
        np.testing.assert_allclose(b.gloss[coated], 1 - CLEAR_COAT_DIFFUSE * shade / (shade + CLEAR_COAT_GLINT),
                                   rtol=1e-5)
        assert np.all(b.reflectivity[glass] == np.float32(TINTED_GLASS))
        rest = ~coated & ~glass  # plates 0.9, tyres, underbody, a truck's cargo box
        np.testing.assert_array_equal(a.reflectivity[rest], b.reflectivity[rest])
        assert np.isin(np.float32(0.9), b.reflectivity[rest])
    assert coated_kinds == set(VEHICLE_KINDS)


def test_a_glossy_panel_glints_head_on_and_reads_0_obliquely_where_a_matte_one_reads_alike():
    """The sensor's physics through Lidar.scan: a wall 10 m ahead of the HDL-64E, painted with a mid shade under a
    clear coat, reads about its head-on reflectivity where it faces the sensor and 0 where the rays meet it 50-60
    degrees off its normal; the same wall matte reads about the same at both."""
    from sparsekd_core.data.sim.materials import clear_coat
    from sparsekd_core.data.sim.meshes import MeshBuilder
    from sparsekd_core.data.sim.raycast import RayCasterChoice
    from sparsekd_core.data.sim.sensor import Lidar

    peak, gloss = clear_coat(0.2)
    lidar = Lidar(PRESETS["hdl64"], RayCasterChoice("torch", "cpu"))

    def wall_reads(gloss_value):
        wall = MeshBuilder().box((10.2, 0.0, 0.0), (0.4, 40.0, 3.0), peak, gloss=gloss_value).build()
        caster = lidar.caster.build(wall.vertices, wall.triangles)
        scan = lidar.scan(caster, wall, Mesh.empty(), np.zeros(0, np.int32), np.zeros((0, 7)),
                          np.array([0.0, 0.0, 0.5]), 0.0, np.random.default_rng(0), frame_height=0.5)
        off_normal = np.degrees(np.arctan2(np.abs(scan.points[:, 1]), scan.points[:, 0]))
        head_on, oblique = scan.points[off_normal < 10, 3], scan.points[(off_normal > 50) & (off_normal < 60), 3]
        assert len(head_on) > 100 and len(oblique) > 100
        return np.median(head_on), np.mean(oblique == 0), np.median(oblique)

    glossy_head_on, glossy_zero, _ = wall_reads(gloss)
    matte_head_on, matte_zero, matte_oblique = wall_reads(0.0)
    assert 0.8 * peak < glossy_head_on < 1.1 * peak and glossy_zero > 0.9, (glossy_head_on, glossy_zero)
    assert matte_zero < 0.05 and matte_oblique > 0.8 * matte_head_on, (matte_zero, matte_oblique, matte_head_on)


def test_clear_coat_makes_car_returns_read_as_real_kitti_cars_do():
    """On the nine real KITTI sweeps of ../shared, 54% of the returns off cars 5-40 m away read 0 (83% above 0.55 of
    the car's height: windows and roof), and the rest a median 0.32; version-4 cars differ (each car reads alike
    all over, dark ones all 0). With the clear coat and backed windows (sim65's options) the same road users, in the
    same places, read about as the real ones do (above the beltline 60-75% read 0): the coat changes how strongly
    cars return, not where anything stands (oblique paint returns more weakly, so a few far cars lose their last
    returns and their labels)."""
    from sparsekd_core.eval.domain_gap import DEPTH_RANGE, OBJECT_INTENSITY_MIN_RETURNS, zero_intensity_counts
    from sparsekd_core.geometry.boxes import points_in_boxes

    def car_returns(coat):
        """(returns, zeros, upper-body returns, upper-body zeros) over the cars 5-40 m away, their nonzero
        intensities, and each frame's boxes."""
        counts, bright, boxes = np.zeros(4, np.int64), [], []
        for seed in range(5):
            frame = SnapshotScene(PRESETS["hdl64"], seed=seed, scene_index=0,
                                  options=SimOptions(vehicle_glass=0.4, vehicle_clear_coat=coat)).frame(0)
            boxes.append(frame.boxes)
            for box, kind in zip(frame.boxes, frame.kinds):
                if kind in CAR_KINDS and DEPTH_RANGE[0] <= np.hypot(box[0], box[1]) < DEPTH_RANGE[1]:
                    inside = points_in_boxes(frame.points[:, :3], np.asarray(box, np.float64)[None])[:, 0] > 0
                    if inside.sum() < OBJECT_INTENSITY_MIN_RETURNS:  # as sparsekd-gap measures them
                        continue
                    counts += zero_intensity_counts(frame.points, box, inside)
                    bright.append(frame.points[inside & (frame.points[:, 3] > 0), 3])
        return counts, np.concatenate(bright), boxes

    v4, v4_bright, v4_boxes = car_returns(False)
    coated, coated_bright, coated_boxes = car_returns(True)
    for a, b in zip(v4_boxes, coated_boxes):  # the same road users; a far car may lose its last returns
        assert all((a == row).all(axis=1).any() for row in b) and len(b) >= 0.9 * len(a), (len(a), len(b))
    assert coated[0] > 2000
    assert v4[1] / v4[0] < 0.45 and v4[3] / v4[2] < 0.5 and np.median(v4_bright) < 0.25, (v4, np.median(v4_bright))
    assert 0.45 < coated[1] / coated[0] < 0.65 and coated[3] / coated[2] > 0.6, coated
    assert np.median(coated_bright) > 0.2
