"""sparsekd-gap (eval/domain_gap.py): the figures of the real KITTI sweeps in ../shared/data/kitti_real, false
boxes judged on hand-made predictions, and the command line."""
import json
import shutil

import numpy as np
import pytest

from bundled_models import PILLAR_STUDENT_OPERATING_POINT
from sparsekd_core.cli.gap import main
from sparsekd_core.data.infos import load_split
from sparsekd_core.data.kitti_infos import create_kitti_infos
from sparsekd_core.data.kitti_format import boxes_to_image_bbox
from sparsekd_core.data.infos import FrameInfo, ObjectAnnos, load_points
from sparsekd_core.eval.domain_gap import (ERROR_FIELDS, SideStats, camera_image_path, camera_view, chest_across_ray,
                                        crossing_the_ray, false_boxes, format_report, heading_to_ray, in_company,
                                        matched_errors, measure, near_sensor, object_intensity, pair_errors,
                                        pedestrians_in_company, return_depth, returns_thickness, rider_on_bicycle,
                                        standing_beside, standing_returns, zero_intensity_counts)


@pytest.fixture(scope="module")
def kitti_real(shared_data, tmp_path_factory):
    """A writable copy of the nine real frames with val infos, as README tells users to make it."""
    root = tmp_path_factory.mktemp("gap") / "kitti_real"
    shutil.copytree(shared_data / "kitti_real", root)
    create_kitti_infos(root, ["val"], workers=1, db_split=None, progress=False)
    return root


def test_real_frames_give_their_known_figures(kitti_real):
    s = measure("real", load_split(kitti_real, "kitti", "val"), kitti_real, progress=False).summary()
    assert s["frames"] == 9
    # the README of kitti_real lists 115,384 .. 126,891 points per sweep
    assert 113_000 < s["points_per_frame"] < 127_000
    # KITTI's HDL-64E sits 1.73 m above the road
    assert -1.9 < s["ground_z"] < -1.6
    # ... on the roof of a car, which returns a few dozen points at the sensor's feet in a typical frame and hides
    # the road to about 4 m ahead and 5.5 m behind (the lowest beam alone would meet open road at 3.75 m)
    assert 20 <= s["returns_near_sensor"] <= 100
    ahead, behind = s["road_from_ahead_behind"]
    assert 3.8 < ahead < 4.5 and 5.0 < behind < 6.0
    # the labels of the nine frames (kitti_real/README.md): 14 cars, 10 pedestrians, 3 cyclists
    assert {c: v["count"] for c, v in s["sizes"].items()} == {"Car": 14, "Pedestrian": 10, "Cyclist": 3}
    car_l, car_w, car_h = s["sizes"]["Car"]["mean"]
    assert 3.0 < car_l < 4.5 and 1.4 < car_w < 1.9 and 1.3 < car_h < 1.8
    # KITTI intensity is reflectance on 0..1 with many exact zeros (dark and far surfaces)
    p = s["intensity_percentiles"]
    assert 0.0 <= p["10"] <= p["50"] <= p["90"] <= 1.0 and 0.15 < p["50"] < 0.45
    assert 0.02 < s["intensity_zero_share"] < 0.3
    # nearer objects get more points
    near = s["points_per_visible_object"]["Car"]
    assert near["10-20"]["median"] > near["20-30"]["median"] > near["40-60"]["median"] > 0
    # a real car's returns lie about 1.4 m in front of its labelled centre (8 cars 5-40 m away); on the simulated
    # version-4 streets about 1.5 m (docs/results.md)
    assert -1.6 < s["return_depth"]["Car"] < -1.15
    # real people read bright to the HDL-64E (clothes and skin in the near infrared), real cars dark (paint and glass
    # send most pulses back weakly: over half their returns read 0)
    assert 0.3 < s["object_intensity"]["Pedestrian"] < 0.42
    assert s["object_intensity"]["Car"] < 0.1
    # 54% of the 8 measured cars' returns read 0, 83% of those above the beltline (windows, roof, bonnet: a car's
    # clear coat sends a pulse back only where it faces the sensor, sim/materials.clear_coat)
    assert 0.45 < s["zero_intensity_share"]["Car"]["all"] < 0.65
    assert s["zero_intensity_share"]["Car"]["upper_body"] > 0.75
    # at chest height the 2 real people crossing the ray read 0.34 m across it, the 6 walking along it 0.52 (a side
    # view against shoulders); simulated crossers read 0.31 (docs/results.md, session 49)
    chest = s["pedestrian_chest_across_ray"]
    assert (chest["crossing"]["count"], chest["along"]["count"]) == (2, 6)
    assert 0.28 < chest["crossing"]["median"] < 0.40 < 0.45 < chest["along"]["median"] < 0.6
    assert "boxes_per_frame" not in s  # no detector given


def test_false_boxes_are_the_ones_near_no_label_in_the_camera_view(kitti_real):
    info = next(i for i in load_split(kitti_real, "kitti", "val") if i.frame_id.endswith("000008"))
    cars = info.annos.boxes_lidar[np.asarray(info.annos.names) == "Car"]
    assert len(cars) == 6
    on_a_car = cars[0].copy()
    beside_a_car = cars[0].copy()
    beside_a_car[1] += cars[0][4] / 2 + 0.5  # half a metre off its side: still within reach
    nowhere = np.array([45.0, 0.0, -1.0, 4.0, 1.7, 1.5, 0.0])  # ahead, in view, far from every label
    behind = np.array([-20.0, 0.0, -1.0, 4.0, 1.7, 1.5, 0.0])  # the camera does not see it: not judged
    if np.hypot(cars[:, 0] - 45.0, cars[:, 1]).min() < 5:
        nowhere[1] = 10.0
    flags = false_boxes(info, np.stack([on_a_car, beside_a_car, nowhere, behind]))
    assert flags.tolist() == [False, False, True, False]
    assert false_boxes(info, np.zeros((0, 7))).shape == (0,)


def test_camera_view_draws_a_false_box_thick_and_a_box_on_a_label_thin(kitti_real, tmp_path):
    from PIL import Image

    from sparsekd_core.viz.colors import class_color

    info = next(i for i in load_split(kitti_real, "kitti", "val") if i.frame_id.endswith("000008"))
    cars = info.annos.boxes_lidar[np.asarray(info.annos.names) == "Car"]
    inside = boxes_to_image_bbox(cars, info.calib)[0]
    car = cars[np.flatnonzero((inside[:, 0] > 10) & (inside[:, 2] < 1230))[0]]  # a car wholly in the picture
    nowhere = np.array([45.0, 10.0, -1.0, 4.0, 1.7, 1.5, 0.0])
    boxes = np.stack([car, nowhere])
    assert false_boxes(info, boxes).tolist() == [False, True]
    blank = tmp_path / "blank.png"
    Image.new("RGB", (1242, 375), (40, 40, 40)).save(blank)
    out = camera_view(info, blank, tmp_path / "drawn.png", load_points(info, kitti_real), boxes, ["Car", "Car"],
                      np.array([0.9, 0.4]))
    pixels = np.asarray(Image.open(out))
    orange = tuple(int(round(255 * c)) for c in class_color("Car"))
    bbox, _ = boxes_to_image_bbox(boxes, info.calib)
    for (left, top, right, bottom), width in zip(np.round(bbox).astype(int), (1, 3)):
        row = pixels[(top + bottom) // 2, left - 2: left + 6]
        assert int((row == orange).all(axis=1).sum()) == width  # the edge's thickness: 1 on a label, 3 when false


def test_a_false_box_across_a_label_leaves_its_outline_whole_and_a_box_on_it_shows(tmp_path):
    """draw_camera_boxes' layers: false boxes under the labels, boxes on labelled objects over them."""
    from PIL import Image

    from sparsekd_core.viz.camera import LABEL_RGB, draw_camera_boxes
    from sparsekd_core.viz.colors import class_color

    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (40, 40, 40)).save(blank)
    label = np.array([[100.0, 100.0, 200.0, 200.0]])
    boxes = np.array([[150.0, 120.0, 260.0, 180.0],   # false, crossing the label's right edge
                      [103.0, 103.0, 197.0, 197.0]])  # on the label, just inside it
    out = draw_camera_boxes(blank, tmp_path / "drawn.png", ["Car"], label, ["Pedestrian", "Car"], boxes,
                            np.array([True, False]), ["", ""])
    pixels = np.asarray(Image.open(out))
    right_edge = pixels[100:201, 199:201]  # pillow draws a 2-pixel outline inwards from x = 200
    assert (right_edge == LABEL_RGB).all()  # whole where the false box's top and bottom edges cross it
    pedestrian, car = (tuple(int(round(255 * c)) for c in class_color(n)) for n in ("Pedestrian", "Car"))
    assert (pixels[150, 150:153] == pedestrian).all() and (pixels[150, 205:255] == (40, 40, 40)).all()  # 3 wide
    assert (pixels[150, 103] == car).all() and (pixels[150, 101] == LABEL_RGB).all()  # the box on the label, 1 wide


def test_false_boxes_are_counted_by_distance_and_scores_told_apart_from_the_matched_ones(kitti_real):
    """Two frames of one side: where the false boxes lie (per class and distance band, per frame) and the median
    score of false boxes against that of boxes on labelled objects."""
    info = next(i for i in load_split(kitti_real, "kitti", "val") if i.frame_id.endswith("000008"))
    cars = info.annos.boxes_lidar[np.asarray(info.annos.names) == "Car"]
    ahead = np.array([45.0, 0.0, -1.0, 4.0, 1.7, 1.5, 0.0])
    if np.hypot(cars[:, 0] - 45.0, cars[:, 1]).min() < 5:
        ahead[1] = 10.0
    person = np.array([15.0, 5.0, -0.9, 0.8, 0.7, 1.7, 0.0])
    assert false_boxes(info, np.stack([ahead, person])).tolist() == [True, True]
    side = SideStats("real")
    r = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0)
    side.add_detections(info, np.stack([cars[0], cars[1], ahead]), ["Car", "Car", "Car"], r,
                        np.array([0.9, 0.8, 0.4]))
    side.add_detections(info, np.stack([cars[0], person]), ["Car", "Pedestrian"], r, np.array([0.7, 0.35]))
    s = side.summary()
    distance = np.hypot(*ahead[:2])
    band = next(f"{lo:g}-{hi:g}" for lo, hi in ((0, 10), (10, 20), (20, 30), (30, 40), (40, 60)) if lo <= distance < hi)
    assert s["false_boxes_per_frame_by_range"]["Car"][band] == 0.5  # one false car in two frames
    assert sum(s["false_boxes_per_frame_by_range"]["Car"].values()) == 0.5
    assert s["false_boxes_per_frame_by_range"]["Pedestrian"] == {"0-10": 0.0, "10-20": 0.5, "20-30": 0.0,
                                                                 "30-40": 0.0, "40-60": 0.0}
    assert s["median_score"]["Car"] == {"false": pytest.approx(0.4), "matched": pytest.approx(0.8)}  # 0.9, 0.8, 0.7
    assert s["median_score"]["Pedestrian"]["false"] == pytest.approx(0.35)
    assert np.isnan(s["median_score"]["Cyclist"]["false"])


def test_false_people_with_returns_over_the_head_are_told_apart(kitti_real):
    """Two false pedestrians in open air and one under three returns 0.9 m over its top (a sign plate): a third of
    the false pedestrians; no false cyclist, no share; the labelled people of the frame are counted too."""
    info = next(i for i in load_split(kitti_real, "kitti", "val") if i.frame_id.endswith("000008"))
    points = load_points(info, kitti_real)
    people = np.array([[x, y, -0.9, 0.8, 0.7, 1.7, 0.0] for x, y in ((12.0, 6.0), (12.0, 8.0), (15.0, 8.0))])
    assert false_boxes(info, people).all()
    plate = np.array([[15.0 + dx, 8.0, -0.05 + 0.9] for dx in (-0.2, 0.0, 0.2)])
    cloud = np.vstack([points[:, :3], plate])
    side = SideStats("real")
    side.add_frame(info, points, np.random.default_rng(0))
    side.add_detections(info, people, ["Pedestrian"] * 3, (0.0, -40.0, -3.0, 70.4, 40.0, 1.0), None, cloud)
    s = side.summary()["overhead_share"]
    assert s["Pedestrian"]["false"] == pytest.approx(1 / 3)
    assert s["Cyclist"]["false"] is None or np.isnan(s["Cyclist"]["false"])
    labelled = np.isin(info.annos.names, ["Pedestrian", "Cyclist"]).sum()
    assert np.isfinite(s["Pedestrian"]["labelled"]) == bool((np.asarray(info.annos.names) == "Pedestrian").any())
    assert labelled == len(side.labelled_overhead["Pedestrian"]) + len(side.labelled_overhead["Cyclist"])
    assert "Pedestrian with 3+ returns over the head, false boxes / labelled" in format_report([side.summary()])


def test_command_line_puts_sides_next_to_each_other_and_writes_json(kitti_real, tmp_path, capsys):
    out = tmp_path / "gap.json"
    side = f"{kitti_real}:val"
    assert main(["--side", f"a={side}", "--side", f"b={side}", "--max-frames", "2", "--quiet", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0]
    assert header.split() == ["a", "b"]
    report = json.loads(out.read_text())
    assert [s["name"] for s in report["sides"]] == ["a", "b"] and report["sides"][0]["frames"] == 2
    assert report["sides"][0] == {**report["sides"][1], "name": "a"}  # the same frames give the same figures


def test_command_line_names_a_bad_side(capsys):
    assert main(["--side", "no_equals_sign"]) == 2
    assert "NAME=ROOT[:SPLIT]" in capsys.readouterr().err
    assert main(["--side", "real=/nonexistent/kitti:val"]) == 2
    assert "sparsekd-gap: error" in capsys.readouterr().err


def test_checkpoint_counts_boxes_at_the_threshold_asked(kitti_real, tmp_path, capsys):
    """The bundled pillar student on two real frames: by default at the node's thresholds (its recorded operating
    point per class), 'none' at --score-threshold alone; higher bars never give more boxes, and false boxes are a
    subset of the boxes."""
    counts = {}
    operating = ", ".join(f"{name} {value:g}" for name, value in sorted(PILLAR_STUDENT_OPERATING_POINT.items()))
    for threshold, classes, said in ((0.3, "", f"0.3 ({operating})"), (0.3, "none", "0.3"), (0.9, "none", "0.9")):
        out = tmp_path / f"gap_{threshold}_{classes}.json"
        assert main(["--side", f"real={kitti_real}:val", "--checkpoint", "cp_pillar_v0.64", "--score-threshold",
                     str(threshold), "--class-score-thresholds", classes, "--max-frames", "2", "--quiet",
                     "--json", str(out)]) == 0
        # the bundled student records the sim360 configs' min_points 5, its operating point, its square pedestrians
        # and its overhead check, which the tool applies and says, as it says the node's default own vehicle (a car
        # roof), whose boxes it drops, and that it runs the network once a cloud (no test-time flip recorded)
        assert (f"(score threshold {said}, min points 5, square footprint Pedestrian, clear overhead "
                "Pedestrian,Cyclist, test-time flip off, own vehicle -2.4 2 -1.2 1.2)") in capsys.readouterr().out
        side = json.loads(out.read_text())["sides"][0]
        assert 0 <= side["false_boxes_per_frame"] <= side["boxes_per_frame"]
        # every box of the KITTI students is a Car, Pedestrian or Cyclist: the classes' false boxes add up
        assert sum(side["false_boxes_per_frame_by_class"].values()) == pytest.approx(side["false_boxes_per_frame"])
        counts[threshold, classes] = side["boxes_per_frame"]
    assert counts[0.9, "none"] <= counts[0.3, ""] < counts[0.3, "none"]


def test_matched_errors_measure_how_boxes_on_labelled_objects_are_wrong():
    truth = np.array([[10.0, 0.0, -1.0, 3.9, 1.6, 1.5, 0.0],
                      [20.0, 5.0, -1.0, 3.9, 1.6, 1.5, 0.5],
                      [30.0, -5.0, -1.0, 3.9, 1.6, 1.5, 0.0]])  # nothing predicted near it
    predicted = np.array([[10.3, 0.4, -1.2, 4.5, 1.7, 1.4, np.pi + 0.1],  # 0.5 m off, a half turn + 0.1 rad
                          [20.0, 5.0, -1.0, 3.9, 1.6, 1.5, 0.5 - np.pi / 2],  # exact but for a quarter turn
                          [30.0, -3.0, -1.0, 3.9, 1.6, 1.5, 0.0]])  # 2 m off: beyond MATCH_REACH
    rows = matched_errors(truth, predicted)
    assert rows.shape == (2, len(ERROR_FIELDS))
    # the first box is 0.3 m farther along the ray from the sensor (+x) and 0.4 m to its side
    np.testing.assert_allclose(rows[0, :7], [0.5, 0.3, -0.2, 0.6, 0.1, -0.1, np.degrees(0.1)], atol=1e-9)
    np.testing.assert_allclose(rows[1, :7], [0, 0, 0, 0, 0, 0, 90.0], atol=1e-9)
    # BEV IoU: the quarter turn overlaps in a 1.6 m square, 2.56 of 3.9 * 1.6 * 2 - 2.56 m2; the first,
    # 0.5 m off, 0.6 m longer and turned 0.1 rad, lies between half and KITTI's 0.7
    assert rows[1, 7] == pytest.approx(2.56 / (2 * 3.9 * 1.6 - 2.56), abs=1e-4)
    assert 0.5 < rows[0, 7] < 0.7
    assert matched_errors(truth, predicted[:0]).shape == (0, len(ERROR_FIELDS))
    # the summary: 2 of the 3 cars paired, one of the two turned by under YAW_WITHIN_DEG (5.7 degrees), one by 90
    side = SideStats("sim", boxes_per_frame=[3], false_per_frame=[0], in_range={"Car": 3}, errors={"Car": [rows]})
    car = side.summary()["matched"]["Car"]
    assert (car["in_range"], car["count"], car["yaw_within"]) == (3, 2, 0.5)
    assert car["median_error"]["yaw_deg"] == pytest.approx((np.degrees(0.1) + 90) / 2)
    assert car["bev_iou_passing"] == 0.0  # neither reaches KITTI's 0.7 for cars
    # with the label's yaw the quarter-turned box is exact, the other still 0.5 m off and too long; with the
    # label's size neither passes (one turned a quarter, the other 0.5 m off and turned)
    np.testing.assert_allclose(rows[1, 8:], [1.0, 2.56 / (2 * 3.9 * 1.6 - 2.56)], atol=1e-4)
    assert rows[0, 8] < 0.7 and rows[0, 9] < 0.7
    assert (car["bev_iou_passing_label_yaw"], car["bev_iou_passing_label_size"]) == (0.5, 0.0)


def test_the_bev_iou_of_a_pair_says_whether_kitti_counts_the_object_found():
    """A pedestrian (0.84 x 0.66 m) boxed 0.12 m too narrow and 0.07 m too short, centred, covers 0.75 of its
    area: IoU 0.75 (found at KITTI's 0.5); shifted 0.25 m along x besides, 0.45 (missed)."""
    truth = np.array([[12.0, 3.0, -1.0, 0.84, 0.66, 1.76, 0.0]] * 2)
    predicted = np.array([[12.0, 3.0, -1.0, 0.77, 0.54, 1.76, 0.0], [12.25, 3.0, -1.0, 0.77, 0.54, 1.76, 0.0]])
    rows = pair_errors(truth, predicted)
    inter_shifted = (0.84 / 2 - (0.25 - 0.77 / 2)) * 0.54  # x overlap 0.42 + 0.135 = 0.555 m, all of the width
    np.testing.assert_allclose(rows[:, 7], [0.77 * 0.54 / (0.84 * 0.66),
                                            inter_shifted / (0.84 * 0.66 + 0.77 * 0.54 - inter_shifted)], atol=1e-4)
    side = SideStats("real", boxes_per_frame=[2], false_per_frame=[0], in_range={"Pedestrian": 2},
                     errors={"Pedestrian": [rows]})
    ped = side.summary()["matched"]["Pedestrian"]
    assert ped["bev_iou_passing"] == 0.5 and ped["median_error"]["bev_iou"] == pytest.approx(rows[:, 7].mean())
    assert "Pedestrian BEV IoU, median / share >= 0.5" in format_report([side.summary()])


def test_the_gap_says_whether_yaw_or_size_keeps_a_found_pedestrian_under_the_threshold():
    """A walker's label is long (1.0 x 0.55 m); one box is the right size turned 60 degrees (IoU under 0.5 until it
    gets the label's yaw), the other is at the right yaw but 1.4 x 0.8 m (under 0.5 until it gets the label's
    size): the report shows which error costs the pedestrian."""
    truth = np.array([[15.0, 4.0, -0.9, 1.0, 0.55, 1.75, 0.3]] * 2)
    predicted = np.array([[15.0, 4.0, -0.9, 1.0, 0.55, 1.75, 0.3 + np.pi / 3],
                          [15.0, 4.0, -0.9, 1.4, 0.8, 1.75, 0.3]])
    rows = pair_errors(truth, predicted)
    iou, label_yaw, label_size = (rows[:, ERROR_FIELDS.index(f)] for f in
                                  ("bev_iou", "bev_iou_label_yaw", "bev_iou_label_size"))
    assert (iou < 0.5).all()
    np.testing.assert_allclose(label_yaw, [1.0, 0.55 / 1.12], atol=1e-4)  # the oversized box holds the label
    assert label_size[0] == pytest.approx(iou[0], abs=1e-6) and label_size[1] == pytest.approx(1.0, abs=1e-6)
    side = SideStats("real", boxes_per_frame=[2], false_per_frame=[0], in_range={"Pedestrian": 2},
                     errors={"Pedestrian": [rows]})
    ped = side.summary()["matched"]["Pedestrian"]
    assert (ped["bev_iou_passing"], ped["bev_iou_passing_label_yaw"], ped["bev_iou_passing_label_size"]) == \
        (0.0, 0.5, 0.5)  # each fix rescues its own pedestrian
    report = format_report([side.summary()])
    assert "  the share had the box the label's yaw / size" in report and "50% / 50%" in report


def test_pedestrians_in_company_are_reported_on_their_own():
    """Two people 0.8 m apart, boxed by one wide box between them and a second box on one of them, and a person
    alone boxed exactly: the pair's figures show the box 0.8 m too wide, which KITTI's 0.5 does not count (a fourth
    pedestrian of the frame lies outside the detector's range, in company with no one)."""
    pair = np.array([[15.0, 2.0, -0.9, 0.84, 0.6, 1.76, 0.0], [15.0, 2.8, -0.9, 0.84, 0.6, 1.76, 0.0]])
    alone = np.array([20.0, -6.0, -0.9, 0.84, 0.6, 1.76, 0.0])
    behind = np.array([-10.0, 0.0, -0.9, 0.84, 0.6, 1.76, 0.0])  # outside the range below
    truth = np.vstack([pair, alone, behind])
    assert in_company(truth).tolist() == [True, True, False, False]
    assert pedestrians_in_company(truth) == (4, 2) and not in_company(truth[:1]).any()
    info = FrameInfo("kitti", "000000", "velodyne/000000.bin", ("x", "y", "z", "intensity"),
                     ObjectAnnos(["Pedestrian"] * 4, truth, [50] * 4, [0] * 4))
    wide = np.array([15.0, 2.4, -0.9, 0.84, 1.4, 1.76, 0.0])  # holds both: 0.8 m too wide, 0.4 m off each
    side = SideStats("real")
    side.add_detections(info, np.stack([wide, alone]), ["Pedestrian", "Pedestrian"],
                        (0.0, -40.0, -3.0, 70.4, 40.0, 1.0))
    ped = side.summary()["matched"]["Pedestrian"]
    assert (ped["in_range"], ped["count"]) == (3, 3)
    company = ped["in_company"]
    assert (company["in_range"], company["count"]) == (2, 2)  # both paired with the one wide box
    assert company["median_error"]["dw"] == pytest.approx(0.8)
    assert company["median_error"]["centre"] == pytest.approx(0.4)
    # IoU of a 0.84 x 0.6 box with the 0.84 x 1.4 box holding it: 0.6 / 1.4, under KITTI's 0.5 for both
    assert company["median_error"]["bev_iou"] == pytest.approx(0.6 / 1.4, abs=1e-4)
    assert company["bev_iou_passing"] == 0.0
    assert ped["bev_iou_passing"] == pytest.approx(1 / 3)  # the one alone, boxed exactly
    report = format_report([side.summary()])
    assert "Pedestrian in company with a box within 1.5 m" in report
    line = next(l for l in report.splitlines() if l.startswith("Pedestrian in company median size error"))
    assert line.split()[-1] == "+0.00/+0.80/+0.00"
    # a side without detections reports none
    assert "Pedestrian in company" not in format_report([SideStats("sim").summary()])


def test_heading_to_the_ray_folds_a_box_turn_to_0_90_degrees():
    """0: the box's long axis lies along the ray from the sensor (walking towards or away), 90: across it."""
    boxes = np.array([[10.0, 0.0, 0, 0.8, 0.6, 1.7, 0.0],  # ahead, facing away
                      [10.0, 0.0, 0, 0.8, 0.6, 1.7, np.pi],  # ahead, facing the sensor: the same box
                      [10.0, 0.0, 0, 0.8, 0.6, 1.7, np.pi / 2],  # ahead, crossing
                      [0.0, -8.0, 0, 0.8, 0.6, 1.7, np.pi / 2],  # to the right, walking along its ray
                      [5.0, 5.0, 0, 0.8, 0.6, 1.7, 0.0],  # 45 degrees off its ray
                      [-6.0, 0.0, 0, 0.8, 0.6, 1.7, np.radians(-70.0)]])  # behind, 70 degrees off
    assert heading_to_ray(boxes) == pytest.approx([0.0, 0.0, 90.0, 0.0, 45.0, 70.0], abs=1e-6)
    assert crossing_the_ray(boxes).tolist() == [False, False, True, False, False, True]


def test_chest_across_the_ray_measures_a_persons_silhouette_at_chest_height():
    """Returns 0.9-1.5 m above the box floor, 5-95% across the ray: a side view's 0.3 m, not the legs' or the head's
    width, and None where too few returns reach the chest."""
    rng = np.random.default_rng(0)
    box = np.array([12.0, 0.0, -0.88, 0.84, 0.66, 1.76, np.pi / 2])  # floor at -1.76; the ray is +x, across is y
    n = 400
    chest = np.column_stack([12.0 + rng.uniform(-0.1, 0.1, n), rng.uniform(-0.15, 0.15, n),
                             -1.76 + rng.uniform(0.95, 1.45, n)])
    legs = np.column_stack([12.0 + rng.uniform(-0.1, 0.1, n), rng.uniform(-0.3, 0.3, n),
                            -1.76 + rng.uniform(0, 0.8, n)])
    points = np.vstack([chest, legs])
    inside = np.ones(len(points), bool)
    assert chest_across_ray(points, box, inside) == pytest.approx(0.27, abs=0.02)  # 90% of 0.3 m
    assert chest_across_ray(points, box, np.arange(len(points)) >= n) is None  # the legs alone: no chest
    turned = box.copy()
    turned[:2] = (0.0, 12.0)  # the same returns seen from the right of the sensor: across its ray is x there
    moved = points[:, [1, 0, 2]] * np.array([-1.0, 1.0, 1.0])
    assert chest_across_ray(moved, turned, inside) == pytest.approx(chest_across_ray(points, box, inside), abs=1e-9)


def test_returns_thickness_tells_a_flat_board_from_a_round_body():
    """The spread across the direction the returns spread least, from 0.3 m above the box floor: a board's returns
    lie on its plane (range noise only), a body's front curves back; the ground under either does not count."""
    rng = np.random.default_rng(0)
    box = np.array([15.0, 0.0, -0.88, 0.8, 0.7, 1.76, 0.0])  # floor at -1.76; the sensor looks along +x
    n = 300
    z = -1.76 + rng.uniform(0.3, 1.7, n)
    board = np.column_stack([14.8 + rng.normal(0, 0.01, n), rng.uniform(-0.3, 0.3, n), z])
    angle = rng.uniform(-np.pi / 2, np.pi / 2, n)  # the near half of a 0.2 m radius torso, facing the sensor
    body = np.column_stack([15.0 - 0.2 * np.cos(angle), 0.2 * np.sin(angle), z])
    ground = np.column_stack([rng.uniform(14.6, 15.4, 200), rng.uniform(-0.35, 0.35, 200), np.full(200, -1.74)])
    for cloud, low, high in ((board, 0.0, 0.02), (body, 0.05, 0.075)):  # the body: 0.2 m x 0.31 (its cosine's std)
        points = np.vstack([cloud, ground])
        assert low < returns_thickness(points, box, np.ones(len(points), bool)) < high
    few = np.vstack([body[:9], ground])  # 9 returns above the floor: too few to say
    assert returns_thickness(few, box, np.ones(len(few), bool)) is None


def test_rider_on_bicycle_says_where_along_the_bicycle_the_rider_sits():
    """A cyclist crossing the ray 15 m ahead (heading +y): a rider 0.2 m behind the centre over 60 returns below
    0.9 m of wheels and frame; seen end-on, or with too few returns up top, nothing is said."""
    rng = np.random.default_rng(0)
    box = np.array([15.0, 0.0, -0.86, 1.76, 0.6, 1.72, np.pi / 2])  # floor at -1.72
    wheels = np.column_stack([15.0 + rng.normal(0, 0.05, 60), rng.uniform(-0.85, 0.85, 60),
                              -1.72 + rng.uniform(0.0, 0.9, 60)])
    rider = np.column_stack([15.0 + rng.normal(0, 0.05, 40), -0.2 + rng.normal(0, 0.05, 40),
                             -1.72 + rng.uniform(0.9, 1.7, 40)])
    points = np.vstack([wheels, rider])
    inside = np.ones(len(points), bool)
    along, low = rider_on_bicycle(points, box, inside)
    assert along == pytest.approx(-0.2, abs=0.03)  # behind: the heading is +y, the rider at y -0.2
    assert low == pytest.approx(60 / 100)
    flipped = box.copy()
    flipped[6] = -np.pi / 2  # riding the other way, the rider is ahead of the centre
    assert rider_on_bicycle(points, flipped, inside)[0] == pytest.approx(0.2, abs=0.03)
    end_on = box.copy()
    end_on[6] = 0.2  # within SIDE_VIEW_DEG of the ray
    assert rider_on_bicycle(points, end_on, inside) is None
    assert rider_on_bicycle(np.vstack([wheels, rider[:4]]), box, np.ones(64, bool)) is None


def test_standing_beside_counts_what_stands_near_a_person_but_road_users_and_the_ground():
    """A cyclist 15 m ahead: 30 returns of a wall 2 m to its side count; a labelled car beside it, the cyclist's own
    returns spilling 0.2 m past its tight box, the ground, a kerb and a wall 4 m away do not."""
    rng = np.random.default_rng(0)
    cyclist = np.array([15.0, 0.0, -0.86, 1.76, 0.6, 1.72, 0.0])  # floor at -1.72
    car = np.array([15.0, -2.2, -0.98, 3.9, 1.6, 1.5, 0.0])
    wall = np.column_stack([rng.uniform(14, 16, 30), np.full(30, 2.0), rng.uniform(-1.3, 0.5, 30)])
    on_car = np.column_stack([rng.uniform(14, 16, 50), rng.uniform(-2.6, -1.5, 50), rng.uniform(-1.3, -0.3, 50)])
    spill = np.column_stack([rng.uniform(14, 16, 20), np.full(20, 0.5), rng.uniform(-1.3, 0.0, 20)])
    ground = np.column_stack([rng.uniform(12, 18, 200), rng.uniform(-3, 3, 200), rng.uniform(-1.75, -1.5, 200)])
    far = np.column_stack([rng.uniform(14, 16, 30), np.full(30, 4.0), rng.uniform(-1.3, 0.5, 30)])
    points = np.vstack([wall, on_car, spill, ground, far])
    labelled = np.stack([cyclist, car])
    assert standing_beside(points, cyclist[None], labelled).tolist() == [30]
    assert standing_beside(points, cyclist[None], cyclist[None]).tolist() == [80]  # the car unlabelled: it counts
    raised = cyclist.copy()
    raised[2] += 1.0  # standing on a 1 m step, the wall's lower returns are below its feet
    assert standing_beside(points, raised[None], labelled)[0] < 30


def test_real_people_read_round_and_a_false_box_on_a_board_reads_flat(kitti_real):
    """The labelled pedestrians and cyclists of the nine real sweeps are none of them flat (session 54: real people
    read 0.066 m and more); a false pedestrian put on a synthetic board is counted among the flat false boxes."""
    side = measure("real", load_split(kitti_real, "kitti", "val"), kitti_real, progress=False)
    s = side.summary()["thickness"]
    ped = s["Pedestrian"]["labelled"]
    # all 10 labelled pedestrians (each 5-40 m away with 10+ returns 0.3 m over its floor) and 2 of the 3 cyclists
    assert ped["count"] == 10 and ped["flat_share"] == 0.0 and 0.08 < ped["median"] < 0.11  # measured: 0.096
    assert s["Cyclist"]["labelled"]["count"] == 2 and s["Cyclist"]["labelled"]["flat_share"] == 0.0
    assert s["Pedestrian"]["false"] is None  # no detector: no false boxes
    info = next(i for i in load_split(kitti_real, "kitti", "val") if i.frame_id.endswith("000008"))
    points = load_points(info, kitti_real)
    rng = np.random.default_rng(0)
    board = np.column_stack([np.full(60, 15.0) + rng.normal(0, 0.01, 60), 8.0 + rng.uniform(-0.12, 0.12, 60),
                             rng.uniform(-1.2, -0.2, 60)])
    people = np.array([[15.0, 8.0, -0.9, 0.8, 0.7, 1.7, 0.0], [50.0, 8.0, -0.9, 0.8, 0.7, 1.7, 0.0]])
    assert false_boxes(info, people).all()
    side.add_detections(info, people, ["Pedestrian"] * 2, (0.0, -40.0, -3.0, 70.4, 40.0, 1.0), None,
                        np.vstack([points[:, :3], board]))
    false = side.summary()["thickness"]["Pedestrian"]["false"]
    assert false["count"] == 1 and false["flat_share"] == 1.0  # the one 50 m away is beyond the measured range
    assert "Pedestrian returns' thickness (m, median) / share under 0.05 m, false boxes" in format_report(
        [side.summary()])


def test_pedestrians_crossing_the_ray_and_boxed_along_it_are_reported_on_their_own():
    """A person crossing the sensor's view boxed along the ray (yaw 90 degrees off: the failure of students trained
    on simulated walkers on real ones) and a person walking along the ray boxed exactly: the crossing figures hold
    the first alone, with its 90 degrees and a BEV IoU under KITTI's 0.5; the frame's chest widths are kept apart."""
    crossing = np.array([15.0, 0.0, -0.88, 0.95, 0.55, 1.76, np.pi / 2])
    along = np.array([20.0, -6.0, -0.88, 0.95, 0.55, 1.76, np.arctan2(-6.0, 20.0)])
    truth = np.stack([crossing, along])
    info = FrameInfo("kitti", "000000", "velodyne/000000.bin", ("x", "y", "z", "intensity"),
                     ObjectAnnos(["Pedestrian"] * 2, truth, [60] * 2, [0] * 2))
    boxed_along = crossing.copy()
    boxed_along[6] = 0.0
    side = SideStats("real")
    side.add_detections(info, np.stack([boxed_along, along]), ["Pedestrian"] * 2, (0.0, -40.0, -3.0, 70.4, 40.0, 1.0))
    rng = np.random.default_rng(1)
    n = 200
    people = []
    for box, half_width in ((crossing, 0.22), (along, 0.25)):  # returns' chest half-width across each one's ray
        ray = box[:2] / np.hypot(box[0], box[1])
        across = np.array([-ray[1], ray[0]])
        xy = box[:2] + np.outer(rng.uniform(-half_width, half_width, n), across)
        people.append(np.column_stack([xy, -1.76 + rng.uniform(0.95, 1.45, n), np.full(n, 0.3)]))
    side.add_frame(info, np.vstack(people), rng)
    summary = side.summary()
    ped = summary["matched"]["Pedestrian"]
    assert (ped["crossing"]["in_range"], ped["crossing"]["count"]) == (1, 1)
    assert ped["crossing"]["median_error"]["yaw_deg"] == pytest.approx(90.0)
    assert ped["crossing"]["median_error"]["bev_iou"] < 0.5 and ped["crossing"]["bev_iou_passing"] == 0.0
    assert ped["crossing"]["bev_iou_passing_label_yaw"] == 1.0
    assert ped["count"] == 2 and ped["bev_iou_passing"] == 0.5
    chest = summary["pedestrian_chest_across_ray"]
    assert chest["crossing"]["count"] == 1 and chest["along"]["count"] == 1
    assert chest["crossing"]["median"] == pytest.approx(0.9 * 0.44, abs=0.03)  # 5-95% of a uniform 0.44 m
    assert chest["along"]["median"] == pytest.approx(0.9 * 0.5, abs=0.03)
    report = format_report([summary])
    line = next(l for l in report.splitlines() if l.startswith("Pedestrian crossing the ray median yaw error"))
    assert line.split()[-1] == "90.0"
    line = next(l for l in report.splitlines() if l.startswith("Pedestrian chest (0.9-1.5 m) across the ray"))
    assert line.split()[-3:] == [f"{chest['crossing']['median']:.2f}", "/", f"{chest['along']['median']:.2f}"]


def test_the_centre_error_along_the_ray_says_which_way_a_box_is_off():
    """A box placed nearer the sensor than the object (as when a model sees only an object's near face) has a
    negative error along the ray, one behind it a positive one, wherever the object lies around the sensor."""
    for angle in np.radians([0, 60, 135, 200, 300]):
        ray = np.array([np.cos(angle), np.sin(angle)])
        truth = np.array([[*(15 * ray), -1.0, 3.9, 1.6, 1.5, 0.0]])
        for shift in (-0.4, 0.4):
            predicted = truth.copy()
            predicted[0, :2] += shift * ray
            rows = matched_errors(truth, predicted)
            np.testing.assert_allclose(rows[0, :2], [0.4, shift], atol=1e-9)
        sideways = truth.copy()
        sideways[0, :2] += 0.4 * np.array([-ray[1], ray[0]])
        np.testing.assert_allclose(matched_errors(truth, sideways)[0, :2], [0.4, 0.0], atol=1e-9)


def test_checkpoint_reports_matched_box_errors_on_real_frames(kitti_real, tmp_path, capsys):
    """The bundled pillar student's boxes on the real cars in its range: counted and their errors reported."""
    out = tmp_path / "gap.json"
    assert main(["--side", f"real={kitti_real}:val", "--checkpoint", "cp_pillar_v0.64", "--score-threshold", "0.0",
                 "--quiet", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Car with a box within 1.5 m" in text and "Car median size error l/w/h (m)" in text
    assert "Car yaw within 10 deg" in text
    cars = json.loads(out.read_text())["sides"][0]["matched"]["Car"]
    # the pillar student sees 30.72 m ahead, +-15.36 m: some of the 14 labelled cars are in that range
    assert 0 < cars["in_range"] < 14 and 0 < cars["count"] <= cars["in_range"]
    err = cars["median_error"]
    assert 0 <= err["centre"] < 1.5 and 0 <= err["yaw_deg"] <= 90 and 0 <= cars["yaw_within"] <= 1
    assert "Car BEV IoU, median / share >= 0.7" in text and 0 < err["bev_iou"] <= 1  # paired within 1.5 m: overlap
    assert 0 <= cars["bev_iou_passing"] <= 1


def test_a_detector_reading_a_column_the_frames_lack_is_refused(kitti_real):
    class ReadsElongation:  # a Waymo model's features; KITTI sweeps have no elongation
        point_features = ("x", "y", "z", "intensity", "elongation")

        def __call__(self, points):
            raise AssertionError("never run on made-up columns")

    with pytest.raises(ValueError, match="no elongation column"):
        measure("real", load_split(kitti_real, "kitti", "val"), kitti_real, ReadsElongation(), progress=False)


def test_near_sensor_counts_the_own_vehicles_returns_and_where_the_road_first_shows():
    xs, ys = np.meshgrid(np.arange(-30.0, 30.0, 0.1), np.arange(-30.0, 30.0, 0.1))
    road = np.c_[xs.ravel(), ys.ravel(), np.full(xs.size, -1.73)]
    road = road[(road[:, 0] > 4.1) | (road[:, 0] < -5.5) | (np.abs(road[:, 1]) > 3.0)]  # a car's shadow
    roof = np.c_[np.linspace(-1.5, 2.0, 40), np.full(40, 0.7), np.full(40, -0.6)]  # 40 returns off the car
    beyond = np.array([[2.0, 2.5, 0.0], [20.0, 0.0, 0.5]])  # 3.2 and 20 m from the sensor: not its own vehicle
    beside = np.c_[np.linspace(-2.0, 2.0, 25), np.full(25, -1.8), np.full(25, -1.0)]  # a car parked 1.8 m beside
    count, ahead, behind = near_sensor(np.r_[road, roof, beyond, beside], ground_height=-1.73)
    assert count == 40
    assert ahead == pytest.approx(4.1, abs=0.11) and behind == pytest.approx(5.5, abs=0.11)
    # a car parked right behind: no road behind within 20 degrees of straight back -> NaN, which medians skip
    _, _, none_behind = near_sensor(road[road[:, 0] > -5.5], ground_height=-1.73)
    assert np.isnan(none_behind)
    stats = SideStats("s")
    stats.near_sensor = [(40, 4.1, 5.5), (38, 4.0, float("nan")), (42, 4.2, 5.7)]
    assert stats.summary()["returns_near_sensor"] == 40
    assert stats.summary()["road_from_ahead_behind"] == pytest.approx([4.1, 5.6])


def test_standing_returns_count_what_stands_around_the_road_by_distance():
    xs, ys = np.meshgrid(np.arange(-50.0, 50.0, 0.5), np.arange(-50.0, 50.0, 0.5))
    road = np.c_[xs.ravel(), ys.ravel(), np.full(xs.size, -1.73)]
    wall = np.c_[np.full(30, 6.0), np.linspace(-3, 3, 30), np.linspace(-1.3, 0.5, 30)]  # 0.43-2.23 m up, 6 m away
    tree = np.c_[np.full(12, 25.0), np.zeros(12), np.linspace(-1.0, 1.2, 12)]  # 25 m away
    roof = np.c_[np.full(5, 1.0), np.zeros(5), np.full(5, -0.6)]  # the own vehicle: within NEAR_SENSOR
    sky = np.array([[15.0, 0.0, 3.0], [15.0, 1.0, -1.6]])  # 4.7 m up (a bridge) and 0.13 m up (a kerb)
    assert standing_returns(np.r_[road, wall, tree, roof, sky], ground_height=-1.73) == [30, 0, 12, 0]
    stats = SideStats("s")
    stats.standing = [[30, 0, 12, 0], [10, 4, 2, 1], [20, 2, 4, 9]]
    assert stats.summary()["standing_returns_by_range"] == {"3-10": 20, "10-20": 2, "20-40": 4, "40-80": 1}


def test_real_sweeps_have_much_standing_around_the_road_near_the_sensor(kitti_real):
    """KITTI drives narrow streets lined with parked cars, walls and trees: thousands of standing returns within
    10 m of the sensor in a typical sweep, fewer farther out, where the beams spread."""
    s = measure("real", load_split(kitti_real, "kitti", "val"), kitti_real, progress=False).summary()
    near, mid, far = (s["standing_returns_by_range"][b] for b in ("3-10", "10-20", "40-80"))
    assert near > 5_000 and near > mid > far > 0


def test_return_depth_says_how_far_in_front_of_the_centre_the_returns_lie():
    rng = np.random.default_rng(0)
    ahead = np.array([20.0, 0.0, -0.9, 4.0, 1.8, 1.5, 0.0])  # seen from behind: its rear face at x = 18
    rear = np.c_[np.full(50, 18.02), rng.uniform(-0.8, 0.8, 50), rng.uniform(-1.5, -0.3, 50)]
    assert return_depth(rear, ahead) == pytest.approx(-1.98, abs=0.01)
    beside = np.array([0.0, 20.0, -0.9, 4.0, 1.8, 1.5, 0.0])  # seen side-on: its near side at y = 19.1
    side = np.c_[rng.uniform(-1.9, 1.9, 60), np.full(60, 19.12), rng.uniform(-1.5, -0.3, 60)]
    assert return_depth(side, beside) == pytest.approx(-0.88, abs=0.01)
    assert return_depth(rear[:39], ahead) is None  # too few returns to say
    stats = SideStats("s")
    stats.depth = {"Car": [-1.9, -1.3, -1.4]}
    assert stats.summary()["return_depth"] == {"Car": pytest.approx(-1.4)}


def test_object_intensity_is_the_median_of_an_objects_returns():
    points = np.zeros((30, 4), np.float32)
    points[:, 3] = np.linspace(0.0, 0.58, 30)
    inside = np.arange(30) < 25
    assert object_intensity(points, inside) == pytest.approx(np.median(points[:25, 3]))
    assert object_intensity(points, np.arange(30) < 19) is None  # too few returns to say
    assert object_intensity(points[:, :3], inside) is None  # no intensity channel
    stats = SideStats("s")
    stats.object_intensity = {"Pedestrian": [0.3, 0.36, 0.4]}
    assert stats.summary()["object_intensity"] == {"Pedestrian": pytest.approx(0.36)}


def test_cars_returns_reading_0_are_counted_all_and_above_the_beltline():
    """Through SideStats.add_frame: a car 10 m away with 40 returns, 30 low and 10 above its beltline (0.55 of its
    height), every other one reading 0 and the high ones mostly; a car 45 m away (beyond DEPTH_RANGE) and one with
    10 returns (too few to say) are left out."""
    box = np.array([10.0, 0.0, -0.93, 4.0, 1.8, 1.6, 0.0])  # floor at -1.73 m, beltline at -0.85 m
    far = np.array([45.0, 5.0, -0.93, 4.0, 1.8, 1.6, 0.0])
    few = np.array([15.0, -6.0, -0.93, 4.0, 1.8, 1.6, 0.0])
    points = np.zeros((40, 4), np.float32)
    points[:, :2] = box[:2] + np.random.default_rng(0).uniform(-0.5, 0.5, (40, 2))
    points[:, 2] = np.where(np.arange(40) < 30, -1.4, -0.5)
    points[:, 3] = np.where(np.arange(40) % 2 == 0, 0.0, 0.3)
    points[35:, 3] = 0.0
    np.testing.assert_array_equal(zero_intensity_counts(points, box, np.ones(40, bool)), [40, 23, 10, 8])
    beyond = np.tile(np.r_[far[:2], -1.0, 0.0], (40, 1)).astype(np.float32)
    sparse = np.tile(np.r_[few[:2], -1.0, 0.0], (10, 1)).astype(np.float32)
    info = FrameInfo("kitti", "000000", "velodyne/000000.bin", ("x", "y", "z", "intensity"),
                     ObjectAnnos(["Car"] * 3, np.stack([box, far, few]), [40, 40, 10], [0] * 3))
    stats = SideStats("s")
    stats.add_frame(info, np.vstack([points, beyond, sparse]), np.random.default_rng(0))
    assert stats.summary()["zero_intensity_share"] == {"Car": {"all": pytest.approx(23 / 40),
                                                               "upper_body": pytest.approx(0.8)}}
    assert "Car returns reading 0, all / above 0.55 of the height" in format_report([stats.summary()])


def test_images_show_labels_and_false_boxes_on_the_camera_picture(kitti_real, tmp_path, capsys):
    """A grey picture beside the first frame's points: the labels come out green at their 2D boxes, the false
    boxes of the bundled student (0.3 for every class) thick in their class's colour; a frame without a
    picture is skipped and said."""
    from PIL import Image

    from sparsekd_core.viz.colors import class_color

    first = load_split(kitti_real, "kitti", "val")[0]
    image = camera_image_path(first, kitti_real)
    assert image == kitti_real / "training" / "image_2" / f"{first.frame_id}.png"
    image.parent.mkdir(exist_ok=True)
    Image.new("RGB", (1242, 375), (40, 40, 40)).save(image)
    try:
        out = tmp_path / "pictures"
        assert main(["--side", f"real={kitti_real}:val", "--checkpoint", "cp_pillar_v0.64", "--score-threshold",
                     "0.3", "--class-score-thresholds", "none", "--max-frames", "2", "--quiet",
                     "--images", str(out), "--json", str(tmp_path / "gap.json")]) == 0
        assert f"real: 1 camera images drawn into {out / 'real'}" in capsys.readouterr().out
        drawn = sorted((out / "real").iterdir())
        assert [p.name for p in drawn] == [f"{first.frame_id}.png"]  # the second frame has no picture
        pixels = np.asarray(Image.open(drawn[0]))
        assert pixels.shape == (375, 1242, 3)
        labelled = first.annos.bbox[first.annos.names != "DontCare"]
        left, top, right, bottom = np.floor(labelled[0]).astype(int)  # pillow draws on the pixels the box starts in
        colours = {tuple(int(round(255 * c)) for c in class_color(n)) for n in ("Car", "Pedestrian", "Cyclist")}
        # the label's 2-pixel left and right edges stay green: false boxes (3 pixels) are drawn under the labels, and
        # a box on the label (1 pixel, drawn over it) covers at most one of the two columns (a caption may cross a few)
        for columns in ((left, left + 1), (right - 1, right)):
            green = (pixels[top + 2: bottom - 2, list(columns)] == (0, 255, 0)).all(axis=2).any(axis=1)
            assert green.mean() > 0.9
        false_count = json.loads((tmp_path / "gap.json").read_text())["sides"][0]["false_boxes_per_frame"]
        painted = sum(int((pixels == c).all(axis=2).sum()) for c in colours)
        assert false_count > 0 and painted > 100  # the frames' false boxes, drawn thick in class colours
        assert main(["--side", f"real={kitti_real}:val", "--images", str(out)]) == 2
        assert "give --checkpoint too" in capsys.readouterr().err
    finally:
        image.unlink()


def test_pedestrians_side_by_side_are_counted_in_company():
    """Two people 0.8 m apart are each in company, one 1.5 m from the nearer of them is not; a frame's lone
    pedestrian or none count as they are, and the summary pools the frames."""
    ped = [0.84, 0.66, 1.76, 0.0]
    frame = np.array([[10.0, 0.0, -1.0, *ped], [10.0, 0.8, -1.0, *ped], [11.5, 0.8, -1.0, *ped]])
    assert pedestrians_in_company(frame) == (3, 2)
    assert pedestrians_in_company(frame[:1]) == (1, 0) and pedestrians_in_company(frame[:0]) == (0, 0)
    side = SideStats("real", pedestrians=[(3, 2), (1, 0), (0, 0)])
    assert side.summary()["pedestrians_in_company"] == 0.5
    row = [line for line in format_report([side.summary()]).splitlines() if line.startswith("pedestrians with another")]
    assert row[0].split() == ["pedestrians", "with", "another", "within", "1.1", "m", "50%"]
    assert np.isnan(SideStats("empty", pedestrians=[(0, 0)]).summary()["pedestrians_in_company"])
