"""Multi-sweep input: earlier sweeps brought into the current sensor frame with a known motion, time lags, the
stream buffer, dataset frames, and a multi-sweep zoo model that trains and runs."""
import math

import numpy as np
import pytest
import torch

from sparsekd_core.config import load_model_config
from sparsekd_core.data import waymo_format as wf
from sparsekd_core.data.dataset import DetectionDataset
from sparsekd_core.data.infos import FrameInfo, ObjectAnnos, frame_info_from_dict, load_points, loaded_features
from sparsekd_core.data.sweeps import Sweep, SweepBuffer, merge_sweeps
from sparsekd_core.geometry.transforms import RigidTransform

# A pole and a wall corner, fixed in the world, seen by a sensor driving forward and turning left.
WORLD = np.array([[20.0, 3.0, 0.5], [20.0, 3.0, 1.5], [12.0, -6.0, 0.2], [13.0, -6.0, 0.2]])


def _pose(t: float) -> RigidTransform:
    """The sensor at time t (s): 12 m/s forward along a left turn of 0.4 rad/s, 1.8 m above ground."""
    yaw = 0.4 * t
    return RigidTransform.from_xyz_rpy(12.0 * t * math.cos(yaw / 2), 12.0 * t * math.sin(yaw / 2), 1.8, yaw=yaw)


def _seen_from(pose: RigidTransform, intensity: float) -> np.ndarray:
    """WORLD in the sensor frame of ``pose``, with an intensity column and an empty time_lag column."""
    xyz = pose.inverse().apply_points(WORLD)
    return np.column_stack([xyz, np.full(len(xyz), intensity), np.zeros(len(xyz))]).astype(np.float32)


def test_earlier_sweeps_land_where_the_current_sweep_sees_the_same_things():
    stamps = [0.0, 0.1, 0.2]
    sweeps = [Sweep(_seen_from(_pose(t), 0.1 * i), t, _pose(t)) for i, t in enumerate(stamps)]
    merged, n = merge_sweeps(sweeps[2], sweeps[1::-1], time_lag_column=4)
    assert n == 3 and merged.shape == (12, 5)
    current = _seen_from(_pose(0.2), 0.0)[:, :3]
    for k in range(3):  # current, then 0.1 s and 0.2 s earlier: the same world points, in the current frame
        np.testing.assert_allclose(merged[4 * k:4 * k + 4, :3], current, atol=1e-4)
    np.testing.assert_allclose(merged[:, 4], np.repeat([0.0, 0.1, 0.2], 4), atol=1e-6)
    np.testing.assert_allclose(merged[:, 3], np.repeat([0.2, 0.1, 0.0], 4), atol=1e-6)  # features ride along
    # without the motion (a static sensor assumed) the earlier sweeps land 1.2 m and 2.4 m off
    static = [Sweep(s.points, s.stamp, RigidTransform.identity()) for s in sweeps]
    wrong, _ = merge_sweeps(static[2], static[1::-1], 4)
    assert np.linalg.norm(wrong[8:, :3] - current, axis=1).min() > 2.0


def test_a_sweep_without_a_pose_is_left_out():
    a = Sweep(_seen_from(_pose(0.0), 0), 0.0, None)
    b = Sweep(_seen_from(_pose(0.1), 0), 0.1, _pose(0.1))
    merged, n = merge_sweeps(b, [a], 4)
    assert n == 1 and len(merged) == 4
    merged, n = merge_sweeps(Sweep(b.points, 0.1, None), [Sweep(a.points, 0.0, _pose(0.0))], 4)
    assert n == 1  # nor can anything be placed when the current sweep has no pose


def test_stream_buffer_keeps_the_last_sweeps_and_forgets_stale_ones():
    buf = SweepBuffer(count=3, time_lag_column=4, max_age=0.35)
    counts = []
    for i, t in enumerate([0.0, 0.1, 0.2, 0.3]):
        merged, n = buf.merge(Sweep(_seen_from(_pose(t), 0), t, _pose(t)))
        counts.append(n)
    assert counts == [1, 2, 3, 3] and len(buf) == 2
    assert sorted(set(np.round(merged[:, 4], 3))) == [0.0, 0.1, 0.2]
    merged, n = buf.merge(Sweep(_seen_from(_pose(0.8), 0), 0.8, _pose(0.8)))  # a pause: older than max_age
    assert n == 1
    merged, n = buf.merge(Sweep(_seen_from(_pose(0.0), 0), 0.0, _pose(0.0)))  # time went back (a bag looped)
    assert n == 1 and len(buf) == 1
    with pytest.raises(ValueError, match="at least 1"):
        SweepBuffer(0, None)
    single = SweepBuffer(1, None)
    assert single.merge(Sweep(_seen_from(_pose(0.0), 0)[:, :4], 0.0, None))[1] == 1 and len(single) == 0


def _write_drive(root, frames=4, classes=("Vehicle",)):
    """A Waymo-layout segment of a sensor driving past WORLD: vehicle poses, 10 Hz timestamps, one labelled box."""
    layout = wf.WaymoLayout(root)
    infos = []
    for i in range(frames):
        t = 0.1 * i
        pose = _pose(t)
        matrix = np.eye(4)
        matrix[:3, :3], matrix[:3, 3] = pose.rotation, pose.translation
        pts = _seen_from(pose, 0.5)[:, :5].copy()  # x y z intensity elongation
        wf.write_frame_points(layout.frame_path("segment-drive", i), pts)
        box = np.array([[*pose.inverse().apply_points(WORLD[:1])[0], 4.0, 1.8, 1.5, 0.0]])
        annos = wf.make_annos(list(classes), box, [2])
        info = wf.make_frame_info("segment-drive", i, matrix, annos, num_points=len(pts))
        info["timestamp_micros"] = int(1_700_000_000_000_000 + round(t * 1e6))
        infos.append(info)
    wf.write_segment_infos(layout, "segment-drive", infos)
    return [frame_info_from_dict(d, "waymo") for d in infos]


def test_dataset_frames_come_with_their_earlier_sweeps(tmp_path):
    infos = _write_drive(tmp_path)
    merged = load_points(infos[3], tmp_path, sweeps=3)
    assert loaded_features(infos[3], 3)[-1] == "time_lag" and merged.shape == (12, 6)
    current = _seen_from(_pose(0.3), 0)[:, :3]
    for k in range(3):
        np.testing.assert_allclose(merged[4 * k:4 * k + 4, :3], current, atol=2e-3)  # float32 poses
    np.testing.assert_allclose(merged[:, 5], np.repeat([0.0, 0.1, 0.2], 4), atol=1e-6)  # from timestamp_micros
    assert len(load_points(infos[0], tmp_path, sweeps=3)) == 4  # a segment's first frame has nothing before it
    ds = DetectionDataset(infos, tmp_path, ["Vehicle"], ["x", "y", "z", "intensity", "elongation", "time_lag"],
                          [-40, -40, -3, 40, 40, 4], training=False, sweeps=3)
    sample = ds[2]
    assert sample.points.shape == (12, 6) and sorted(set(np.round(sample.points[:, 5], 3))) == [0.0, 0.1, 0.2]
    assert len(sample.gt_boxes) == 1
    single = DetectionDataset(infos, tmp_path, ["Vehicle"], ["x", "y", "z", "intensity", "elongation", "time_lag"],
                              [-40, -40, -3, 40, 40, 4], training=False)
    assert single[2].points.shape == (4, 6) and not single[2].points[:, 5].any()


def test_a_multi_sweep_model_refuses_single_frame_datasets(tmp_path):
    kitti = FrameInfo("kitti", "000008", "training/velodyne/000008.bin", ("x", "y", "z", "intensity"),
                      ObjectAnnos.empty())
    with pytest.raises(ValueError, match="000008 \\(kitti\\) has no earlier sweeps.*KITTI object frames are single"):
        DetectionDataset([kitti], tmp_path, ["Car"], ["x", "y", "z", "intensity", "time_lag"],
                         [0, -40, -3, 70.4, 40, 1], sweeps=3)


def test_the_multi_sweep_zoo_model_trains_and_runs(tmp_path):
    """cp_pillar_v0.64_3sweeps_sim: a few training steps on a simulated drive, then detection on merged sweeps."""
    from sparsekd_core.cli.sim import main as sim_main
    from sparsekd_core.cli.train import main as train_main
    from sparsekd_core.inference import Detector

    assert sim_main(["--out", str(tmp_path / "sim"), "--sequence", "--preset", "waymo_top", "--format", "waymo",
                     "--frames", "5", "--val-fraction", "0.4", "--workers", "1", "--quiet"]) == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_main(["--model", "cp_pillar_v0.64_3sweeps_sim", "--data", str(tmp_path / "sim" / "waymo"),
                           "--out", str(tmp_path / "run"), "--max-steps", "2", "--batch-size", "1", "--workers", "0",
                           "--device", "cpu", "--no-eval", "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    ckpt = sorted((tmp_path / "run").glob("ckpt_*.pth"))[-1]
    det = Detector.from_checkpoint(ckpt, device="cpu")
    assert det.cfg.sweeps == 3 and det.point_features[-1] == "time_lag"
    infos = [frame_info_from_dict(d, "waymo") for d in wf.read_infos(wf.WaymoLayout(tmp_path / "sim" / "waymo"),
                                                                      "train")]
    last = max(infos, key=lambda i: i.sample_idx)
    points = load_points(last, tmp_path / "sim" / "waymo", sweeps=3)
    assert last.sample_idx >= 2 and len(set(np.round(points[:, -1], 2))) == 3  # three sweeps in the input
    d = det(points)
    assert d.boxes.shape[1] == 7 and np.isfinite(d.boxes).all()
    from sparsekd_core.cli.eval import main as eval_main  # evaluation merges the same sweeps

    assert eval_main(["--checkpoint", str(ckpt), "--dataset", str(tmp_path / "sim" / "waymo"), "--split", "train",
                      "--device", "cpu", "--json", str(tmp_path / "eval.json"), "--quiet"]) == 0
