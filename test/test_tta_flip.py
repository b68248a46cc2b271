"""Test-time flip (models/tta_flip.py, Detector.tta_flip, head.post.tta_flip, --tta-flip): the mirror view's maps
are turned back so that they decode to the objects where they are, and the averaged result treats a cloud and its
mirror image alike."""
import numpy as np
import pytest
import torch

from conftest import real_sweep
from sparsekd_core.checkpoint import CheckpointError, read_checkpoint, record_post_settings
from sparsekd_core.cli.tta_flip_option import apply_tta_flip
from sparsekd_core.config import ConfigError, load_model_config
from sparsekd_core.inference import Detector, load_detector, resolve_checkpoint
from sparsekd_core.models.center_head import HeadOutput
from sparsekd_core.models.decode import decode_maps
from sparsekd_core.models.tta_flip import merge_flipped, mirror_points, unmirror

# An 8 x 8 grid of 1 m cells from -4 to 4 m, stride 1.
VOXEL, RANGE, H = (1.0, 1.0, 1.0), (-4.0, -4.0, -3.0, 4.0, 4.0, 1.0), 8


def one_object_maps(x: float, y: float, yaw: float, heading: str) -> HeadOutput:
    """Maps that say: one object, centre (x, y), 1.2 m up, 4 x 2 x 1.5 m, heading yaw, moving at (3, -1) m/s."""
    col, row = int(np.floor(x - RANGE[0])), int(np.floor(y - RANGE[1]))
    z = lambda c: torch.zeros(1, c, H, H)  # noqa: E731
    maps = HeadOutput(heatmap=torch.full((1, 1, H, H), -8.0), center=z(2), center_z=z(1), dim=z(3), rot=z(2),
                      vel=z(2), direction=z(1) if heading == "axis_dir" else None)
    maps.heatmap[0, 0, row, col] = 3.0
    maps.center[0, :, row, col] = torch.tensor([x - RANGE[0] - col, y - RANGE[1] - row])
    maps.center_z[0, 0, row, col] = 1.2
    maps.dim[0, :, row, col] = torch.log(torch.tensor([4.0, 2.0, 1.5]))
    if heading == "sin_cos":
        maps.rot[0, :, row, col] = torch.tensor([np.cos(yaw), np.sin(yaw)])
    else:  # the axis and which end of it is the front (models/heading.py)
        maps.rot[0, :, row, col] = torch.tensor([np.cos(2 * yaw), np.sin(2 * yaw)])
        maps.direction[0, 0, row, col] = 4.0 if np.cos(yaw) < 0 else -4.0
    maps.vel[0, :, row, col] = torch.tensor([3.0, -1.0])
    return maps


@pytest.mark.parametrize("heading", ["sin_cos", "axis_dir"])
@pytest.mark.parametrize("x, y, yaw", [(1.3, -2.2, 0.4), (-3.6, 0.45, 2.5), (0.2, 3.9, -1.1)])
def test_the_mirror_views_maps_turned_back_decode_to_the_object_where_it_is(heading, x, y, yaw):
    # what the network should see in the mirror image: the object at (x, -y), heading -yaw, velocity (3, 1)
    mirrored = one_object_maps(x, -y, -yaw, heading)
    mirrored.vel[0, 1] = -mirrored.vel[0, 1]
    boxes, scores, _, vel = decode_maps(unmirror(mirrored), 1, VOXEL, RANGE, 1)
    expect, _, _, expect_vel = decode_maps(one_object_maps(x, y, yaw, heading), 1, VOXEL, RANGE, 1)
    torch.testing.assert_close(boxes, expect, atol=1e-5, rtol=0)
    np.testing.assert_allclose(boxes[0, 0].numpy(), [x, y, 1.2, 4.0, 2.0, 1.5, yaw], atol=1e-5)
    torch.testing.assert_close(vel, expect_vel)
    np.testing.assert_allclose(vel[0, 0].numpy(), [3.0, -1.0], atol=1e-6)
    assert scores[0, 0] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())


def test_merging_averages_probabilities_and_maps_of_the_two_views():
    a, b = one_object_maps(1.3, -2.2, 0.4, "axis_dir"), one_object_maps(1.3, 2.2, -0.4, "axis_dir")
    both = HeadOutput(**{k: torch.cat([getattr(a, k), getattr(b, k)]) for k in a.__dataclass_fields__})
    merged = merge_flipped([both])[0]
    assert merged.heatmap.shape == (1, 1, H, H)
    # the object's cell: both views agree, so the average is the object again
    torch.testing.assert_close(decode_maps(merged, 1, VOXEL, RANGE, 1)[0], decode_maps(a, 1, VOXEL, RANGE, 1)[0],
                               atol=1e-5, rtol=0)
    # a cell only the first view fires on: mean probability, stored as its logit
    a.heatmap[0, 0, 0, 0] = 2.0
    both = HeadOutput(**{k: torch.cat([getattr(a, k), getattr(b, k)]) for k in a.__dataclass_fields__})
    p = torch.sigmoid(merge_flipped([both])[0].heatmap[0, 0, 0, 0])
    expect = (torch.sigmoid(torch.tensor(2.0)) + torch.sigmoid(torch.tensor(-8.0))) / 2
    assert p.item() == pytest.approx(expect.item(), abs=1e-6)
    with pytest.raises(ValueError, match="batch of 1 maps"):
        merge_flipped([a])


def test_mirror_points_negates_y_only_and_copies():
    pts = torch.tensor([[1.0, 2.0, -1.0, 0.3], [4.0, -5.0, 0.5, 0.9]])
    out = mirror_points(pts)
    torch.testing.assert_close(out, torch.tensor([[1.0, -2.0, -1.0, 0.3], [4.0, 5.0, 0.5, 0.9]]))
    assert pts[0, 1] == 2.0


@pytest.fixture(scope="module")
def detector():
    return load_detector("cp_pillar_s", device="cpu")


def mirrored(points: np.ndarray) -> np.ndarray:
    out = points.copy()
    out[:, 1] = -out[:, 1]
    return out


def test_with_the_flip_a_cloud_and_its_mirror_image_give_mirrored_boxes(detector, shared_data):
    """Averaging a view with its mirror is symmetric, so the mirror image's boxes are the cloud's, mirrored: a
    wrong turn-back of any map would break it. Without the flip the network alone is not symmetric."""
    street = real_sweep(shared_data, "avod_000076")
    before = detector.tta_flip
    try:
        detector.tta_flip = True
        a, b = detector(street), detector(mirrored(street))
        batch = detector.detect_batch([street, mirrored(street)])  # [P, M(P), then their mirrors] split right
        detector.tta_flip = False
        plain, plain_mirror = detector(street), detector(mirrored(street))
    finally:
        detector.tta_flip = before
    for one, in_batch in zip((a, b), batch):
        np.testing.assert_allclose(in_batch.scores, one.scores, atol=1e-5)
        np.testing.assert_allclose(in_batch.boxes, one.boxes, atol=1e-4)
    sure = a.scores > 0.2
    assert sure.sum() >= 5
    b_sure = b.scores > 0.2
    assert list(np.asarray(b.names)[b_sure]) == list(np.asarray(a.names)[sure])
    np.testing.assert_allclose(b.scores[b_sure], a.scores[sure], atol=1e-4)
    back = b.boxes[b_sure].copy()
    back[:, 1], back[:, 6] = -back[:, 1], -back[:, 6]
    np.testing.assert_allclose(back[:, :6], a.boxes[sure, :6], atol=1e-3)
    turn = (back[:, 6] - a.boxes[sure, 6] + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(turn, 0.0, atol=1e-3)
    # the flip changes what comes out: the two views do not agree exactly
    assert len(plain.scores) != len(a.scores) or np.abs(plain.scores - a.scores).max() > 1e-3
    assert len(plain_mirror.scores) != len(plain.scores) or np.abs(plain_mirror.scores - plain.scores).max() > 1e-3


def test_the_option_and_the_setter(detector):
    before = detector.tta_flip
    try:
        apply_tta_flip(detector, "on")
        assert detector.tta_flip is True
        apply_tta_flip(detector, None)  # not given: left as it is
        assert detector.tta_flip is True
        apply_tta_flip(detector, "off")
        assert detector.tta_flip is False
        with pytest.raises(ValueError, match="True or False"):
            detector.tta_flip = "yes"
    finally:
        detector.tta_flip = before


def test_a_model_that_cannot_flip_is_refused(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("base: cp_pillar_s\nvoxelization: {point_cloud_range: [0, -40.96, -3, 40.96, 30.72, 1]}\n"
                    "head: {post: {tta_flip: true}}\n")
    with pytest.raises(ConfigError, match=r"symmetric in y.*-40.96 \.\. 30.72"):
        load_model_config(str(path))
    path.write_text("base: pointpillar_s_sim\nhead: {post: {tta_flip: true}}\n")
    with pytest.raises(ConfigError, match="not an anchor head"):
        load_model_config(str(path))
    path.write_text("base: cp_pillar_s\nhead: {post: {tta_flip: 1}}\n")
    with pytest.raises(ConfigError, match="tta_flip' must be true or false"):
        load_model_config(str(path))


def test_a_checkpoint_records_the_flip_and_its_detector_uses_it(tmp_path):
    out = record_post_settings(resolve_checkpoint("cp_pillar_s"), tmp_path / "f.pth", {"tta_flip": True},
                               "tta_flip", "a test")
    assert Detector.from_checkpoint(out, "cpu").tta_flip is True
    assert read_checkpoint(out)["meta"]["tta_flip"] == "a test"
    with pytest.raises(CheckpointError, match="tta_flip' must be true or false"):
        record_post_settings(out, tmp_path / "g.pth", {"tta_flip": "yes"}, "tta_flip", "bad")
    assert not (tmp_path / "g.pth").exists()
