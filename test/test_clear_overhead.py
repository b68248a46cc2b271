"""Clear overhead (clear_overhead.py, Detector.clear_overhead, head.post.clear_overhead, --clear-overhead): a box of a
checked class is dropped when 3 or more returns lie over its footprint (widened 0.1 m) 0.5-1.3 m above its top."""
import numpy as np
import pytest

from conftest import real_sweep
from scripted_detector import BOX_SIZE, BOX_Z, cell_centre, scripted_detector
from sparsekd_core.checkpoint import CheckpointError, read_checkpoint, record_post_settings
from sparsekd_core.cli.clear_overhead_option import apply_clear_overhead
from sparsekd_core.clear_overhead import clear_overhead, overhead_returns
from sparsekd_core.config import ConfigError, load_model_config
from sparsekd_core.data.kitti_format import objects_to_lidar_boxes, read_calib, read_label
from sparsekd_core.geometry.iou import iou_bev
from sparsekd_core.inference import Detector, load_detector, resolve_checkpoint

#: a person 1.7 m tall, 20 m ahead, turned 30 degrees: footprint 0.7 x 0.6 m, top at z = -0.05
PERSON = np.array([20.0, 0.0, -0.9, 0.7, 0.6, 1.7, np.deg2rad(30.0)])


def over(box, along: float, across: float, above_top: float) -> np.ndarray:
    """A return at (along, across) metres in the box's own frame and ``above_top`` metres over its top."""
    c, s = np.cos(box[6]), np.sin(box[6])
    return np.array([box[0] + along * c - across * s, box[1] + along * s + across * c,
                     box[2] + box[5] / 2 + above_top])


def test_the_window_spans_half_a_metre_to_1_3_m_over_the_top_and_the_footprint_widened_by_0_1_m():
    counted = [over(PERSON, 0.0, 0.0, 0.55), over(PERSON, 0.0, 0.0, 1.25),  # in the window, over the centre
               over(PERSON, 0.44, 0.0, 0.9), over(PERSON, 0.0, -0.39, 0.9)]  # 0.09 m beyond the ends and sides
    missed = [over(PERSON, 0.0, 0.0, 0.3),  # a head the box cut short, a raised hand
              over(PERSON, 0.0, 0.0, 1.5),  # a canopy higher up
              over(PERSON, 0.47, 0.0, 0.9), over(PERSON, 0.0, 0.42, 0.9),  # 0.12 m beyond the end and the side
              over(PERSON, 0.0, 0.0, -0.5)]  # the person's own chest
    for point in counted:
        assert overhead_returns(point[None], PERSON[None]).tolist() == [1], point
    for point in missed:
        assert overhead_returns(point[None], PERSON[None]).tolist() == [0], point


def test_three_returns_drop_a_checked_box_and_no_other():
    post = np.stack([over(PERSON, 0.1 * k, 0.0, 0.6 + 0.2 * k) for k in range(3)])  # a post going on up
    other = PERSON.copy()
    other[1] = 5.0
    boxes, labels = np.stack([PERSON, other, PERSON]), np.array([1, 1, 0])  # label 0: an unchecked class
    assert clear_overhead(post, boxes, labels, [1]).tolist() == [False, True, True]
    assert clear_overhead(post[:2], boxes, labels, [1]).tolist() == [True, True, True]  # two: a wire, a bird
    assert clear_overhead(post, boxes, labels, []).tolist() == [True, True, True]
    assert clear_overhead(post, boxes[:0], labels[:0], [1]).shape == (0,)


def test_the_detector_drops_only_the_checked_class_under_returns(tmp_path):
    """The real Detector with scripted Car and Pedestrian boxes (4 x 2 x 1.5 m): three returns over each box; the
    checked class's box goes, the other stays, and with no class checked both stay."""
    det = scripted_detector(tmp_path, {"Car": 0.6, "Pedestrian": 0.7})
    det.score_threshold = 0.3
    top = BOX_Z + BOX_SIZE[2] / 2
    cloud = [np.array([[29.0, 14.0, -1.5, 0.1]], np.float32)]
    for row, col in ((8, 10), (16, 18)):  # the two scripted boxes' cells
        x, y = cell_centre(det, row, col)
        cloud.append(np.array([[x + dx, y, top + 0.9, 0.2] for dx in (-0.5, 0.0, 0.5)], np.float32))
    cloud = np.concatenate(cloud)
    assert det.clear_overhead == ()  # the checkpoint's own: none
    assert sorted(det(cloud).names) == ["Car", "Pedestrian"]
    det.clear_overhead = ["Pedestrian"]
    assert list(det(cloud).names) == ["Car"]
    det.clear_overhead = ["Car", "Pedestrian"]
    assert list(det(cloud).names) == []
    with pytest.raises(ValueError, match=r"clear_overhead names \['Truck'\]"):
        det.clear_overhead = ["Truck"]
    assert det.clear_overhead == ("Car", "Pedestrian")  # a refused value changes nothing


def test_returns_above_the_models_range_count(tmp_path):
    """The window reaches above the top of the model's range (z 1 m here), which the network never sees: the
    check reads the whole cloud, so a sign plate there still drops the box under it."""
    det = scripted_detector(tmp_path, {"Pedestrian": 0.7})
    det.score_threshold = 0.3
    top = BOX_Z + BOX_SIZE[2] / 2
    z_max = float(det.point_cloud_range[5])
    assert top + 0.5 < z_max < top + 1.28
    x, y = cell_centre(det, 8, 10)
    plate = np.array([[x + dx, y, top + 1.28, 0.2] for dx in (-0.5, 0.0, 0.5)], np.float32)  # above z_max
    cloud = np.concatenate([np.array([[29.0, 14.0, -1.5, 0.1]], np.float32), plate])
    det.clear_overhead = ["Pedestrian"]
    assert len(det(cloud)) == 0
    det.clear_overhead = []
    assert list(det(cloud).names) == ["Pedestrian"]


def test_on_a_real_street_the_labelled_people_keep_their_boxes(shared_data):
    """Real sweep avod_000076 and its labels: with Pedestrian and Cyclist checked, every box that matches a labelled
    pedestrian (BEV IoU >= 0.3) is still published, and the boxes that go are pedestrians or cyclists."""
    det = load_detector("cp_pillar_s", device="cpu")
    points = real_sweep(shared_data, "avod_000076")
    det.clear_overhead = ()
    plain = det(points)
    det.clear_overhead = ("Pedestrian", "Cyclist")
    checked = det(points)
    training = shared_data / "kitti_real" / "training"
    objects = [o for o in read_label(training / "label_2" / "avod_000076.txt") if o.type == "Pedestrian"]
    people = objects_to_lidar_boxes(objects, read_calib(training / "calib" / "avod_000076.txt"))
    found = [j for j in range(len(plain)) if plain.names[j] == "Pedestrian"
             and iou_bev(plain.boxes[j][None], people).max() >= 0.3]
    assert len(found) >= 3
    kept = {tuple(np.round(b, 4)) for b in checked.boxes}
    assert all(tuple(np.round(plain.boxes[j], 4)) in kept for j in found)
    gone = [n for b, n in zip(plain.boxes, plain.names) if tuple(np.round(b, 4)) not in kept]
    assert set(gone) <= {"Pedestrian", "Cyclist"}
    assert len(checked) == len(plain) - len(gone)
    people = np.isin(checked.names, ["Pedestrian", "Cyclist"])  # what is published has open air over it
    assert (overhead_returns(points, checked.boxes[people]) < 3).all()


def test_the_option_reads_names_none_and_refuses_a_class_the_model_lacks(tmp_path):
    det = scripted_detector(tmp_path, {"Car": 0.6})
    apply_clear_overhead(det, "Pedestrian, Cyclist")
    assert det.clear_overhead == ("Pedestrian", "Cyclist")
    apply_clear_overhead(det, None)  # not given: left as it is
    assert det.clear_overhead == ("Pedestrian", "Cyclist")
    apply_clear_overhead(det, "None")
    assert det.clear_overhead == ()
    with pytest.raises(ValueError, match=r"\['Truck'\].*'Car', 'Pedestrian', 'Cyclist'"):
        apply_clear_overhead(det, "Truck")


@pytest.mark.parametrize("value, problem", [(["Truck"], "Truck"),
                                            (["Cyclist", "Cyclist"], "'Cyclist', 'Cyclist'")])
def test_a_config_naming_an_unknown_or_repeated_class_is_refused(tmp_path, value, problem):
    path = tmp_path / "m.yaml"
    path.write_text(f"base: cp_pillar_s\nhead: {{post: {{clear_overhead: {value}}}}}\n")
    with pytest.raises(ConfigError, match=rf"clear_overhead must list distinct names.*{problem}"):
        load_model_config(str(path))


def test_a_checkpoint_records_its_checked_classes_and_its_detector_uses_them(tmp_path):
    out = record_post_settings(resolve_checkpoint("cp_pillar_s"), tmp_path / "co.pth",
                               {"clear_overhead": ["Pedestrian", "Cyclist"]}, "clear_overhead", "a test")
    assert Detector.from_checkpoint(out, "cpu").clear_overhead == ("Pedestrian", "Cyclist")
    assert read_checkpoint(out)["meta"]["clear_overhead"] == "a test"
    with pytest.raises(CheckpointError, match="clear_overhead must list distinct names"):
        record_post_settings(out, out, {"clear_overhead": ["Truck"]}, "clear_overhead", "bad")
