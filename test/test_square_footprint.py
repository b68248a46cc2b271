"""Square footprints (square_footprint.py, Detector.square_footprint, head.post.square_footprint, --square-footprint):
the chosen classes' boxes come out with length = width = their mean; nothing else about any box changes."""
import numpy as np
import pytest
import torch

from conftest import real_sweep
from sparsekd_core.checkpoint import CheckpointError, read_checkpoint, record_post_settings
from sparsekd_core.cli.square_footprint_option import apply_square_footprint
from sparsekd_core.config import ConfigError, load_model_config
from sparsekd_core.inference import Detector, load_detector, resolve_checkpoint
from sparsekd_core.square_footprint import square_footprints


def test_only_the_chosen_labels_get_length_and_width_at_their_mean():
    boxes = torch.tensor([[1.0, 2.0, -1.0, 0.9, 0.5, 1.7, 0.3],
                          [5.0, 1.0, -0.8, 4.2, 1.8, 1.5, 1.2],
                          [7.0, -3.0, -1.1, 0.6, 0.8, 1.8, -2.0]])
    labels = torch.tensor([1, 0, 1])
    out = square_footprints(boxes, labels, [1])
    np.testing.assert_allclose(out[:, 3].numpy(), [0.7, 4.2, 0.7], atol=1e-6)
    np.testing.assert_allclose(out[:, 4].numpy(), [0.7, 1.8, 0.7], atol=1e-6)
    keep = [0, 1, 2, 5, 6]
    torch.testing.assert_close(out[:, keep], boxes[:, keep])  # centre, height, heading as they were
    assert boxes[0, 3] == pytest.approx(0.9)  # the input is not changed in place


def test_no_labels_and_no_boxes_pass_through():
    boxes = torch.tensor([[1.0, 2.0, -1.0, 0.9, 0.5, 1.7, 0.3]])
    assert square_footprints(boxes, torch.tensor([1]), []) is boxes
    empty = torch.zeros((0, 7))
    assert square_footprints(empty, torch.zeros(0, dtype=torch.long), [1]).shape == (0, 7)


@pytest.fixture(scope="module")
def detector():
    det = load_detector("cp_pillar_s", device="cpu")
    det.clear_overhead = ()  # its overhead check reads the published footprint, which squaring changes
    return det


@pytest.fixture(scope="module")
def street(shared_data):
    """A real KITTI sweep (x y z intensity) with eight labelled pedestrians and cars."""
    return real_sweep(shared_data, "avod_000076")


def run(detector, points, classes):
    before = detector.square_footprint
    detector.square_footprint = classes
    try:
        return detector(points)
    finally:
        detector.square_footprint = before


def test_the_detector_squares_pedestrians_and_leaves_every_other_value(detector, street):
    plain, square = run(detector, street, ()), run(detector, street, ("Pedestrian",))
    ped = np.array([n == "Pedestrian" for n in plain.names], bool)
    assert ped.sum() >= 3 and (~ped).sum() >= 3
    assert list(square.names) == list(plain.names)
    np.testing.assert_array_equal(square.scores, plain.scores)
    np.testing.assert_array_equal(square.boxes[~ped], plain.boxes[~ped])  # cars and cyclists untouched
    np.testing.assert_array_equal(square.boxes[ped][:, [0, 1, 2, 5, 6]], plain.boxes[ped][:, [0, 1, 2, 5, 6]])
    side = 0.5 * (plain.boxes[ped, 3] + plain.boxes[ped, 4])
    np.testing.assert_allclose(square.boxes[ped, 3], side, atol=1e-6)
    np.testing.assert_allclose(square.boxes[ped, 4], side, atol=1e-6)
    assert np.abs(plain.boxes[ped, 3] - plain.boxes[ped, 4]).max() > 0.05  # the network's own boxes are not square


def test_the_option_reads_names_none_and_refuses_a_class_the_model_lacks(detector):
    before = detector.square_footprint
    try:
        apply_square_footprint(detector, "Pedestrian, Cyclist")
        assert detector.square_footprint == ("Pedestrian", "Cyclist")
        apply_square_footprint(detector, None)  # not given: left as it is
        assert detector.square_footprint == ("Pedestrian", "Cyclist")
        apply_square_footprint(detector, "none")
        assert detector.square_footprint == ()
        with pytest.raises(ValueError, match=r"\['Truck'\].*'Car', 'Pedestrian', 'Cyclist'"):
            apply_square_footprint(detector, "Truck")
    finally:
        detector.square_footprint = before


@pytest.mark.parametrize("value, problem", [(["Truck"], "Truck"),
                                            (["Pedestrian", "Pedestrian"], "'Pedestrian', 'Pedestrian'")])
def test_a_config_naming_an_unknown_or_repeated_class_is_refused(tmp_path, value, problem):
    path = tmp_path / "m.yaml"
    path.write_text(f"base: cp_pillar_s\nhead: {{post: {{square_footprint: {value}}}}}\n")
    with pytest.raises(ConfigError, match=rf"square_footprint must list distinct names.*{problem}"):
        load_model_config(str(path))


def test_a_checkpoint_records_its_square_classes_and_its_detector_uses_them(tmp_path):
    src = resolve_checkpoint("cp_pillar_s")
    out = record_post_settings(src, tmp_path / "sq.pth", {"square_footprint": ["Pedestrian"]}, "square_footprint",
                               "a test")
    assert Detector.from_checkpoint(out, "cpu").square_footprint == ("Pedestrian",)
    assert read_checkpoint(out)["meta"]["square_footprint"] == "a test"
    size = out.stat().st_size
    with pytest.raises(CheckpointError, match="square_footprint must list distinct names"):
        record_post_settings(out, out, {"square_footprint": ["Truck"]}, "square_footprint", "bad")
    assert out.stat().st_size == size  # nothing written
