"""Test-time mirror averaging (head.post.mirror_average, models/mirror_average.py): each frame's heatmap averaged
with the heatmap of the cloud mirrored left to right, mirrored back onto the map."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scripted_detector import ScriptedHead, scripted_detector, some_points
from sparsekd_core.config import load_model_config
from sparsekd_core.models.center_head import HeadOutput
from sparsekd_core.models.mirror_average import average_mirrored, mirror_points, mirror_problem


class MirrorAwareHead(ScriptedHead):
    """Scripted peaks for the unmirrored half of the batch, and for the mirrored half the same peaks at the mirrored
    row (H-1-row) with probability ``mirrored_score``: a network that answers a mirrored street with the mirrored
    box, more or less sure of it."""

    def __init__(self, num_classes, peaks, mirrored_score: float):
        super().__init__(num_classes, peaks)
        self.mirrored_score = mirrored_score

    def forward(self, bev):
        out = super().forward(bev)[0]
        b, _, h, _ = out.heatmap.shape
        half = b // 2
        for label, (row, col, _) in self.peaks.items():
            out.heatmap[half:, label, row, col] = -30.0
            out.heatmap[half:, label, h - 1 - row, col] = math.log(self.mirrored_score / (1 - self.mirrored_score))
        return [out]


def test_a_peak_the_mirrored_pass_confirms_keeps_the_mean_score_at_its_place(tmp_path):
    det = scripted_detector(tmp_path, {"Car": 0.8})
    det.score_threshold = 0.3
    plain = det(some_points())
    det.model.head = MirrorAwareHead(len(det.class_names), det.model.head.peaks, mirrored_score=0.6)
    det.mirror_average = True
    averaged = det(some_points())
    assert averaged.names == ["Car"]
    np.testing.assert_allclose(averaged.scores, [0.7], atol=1e-5)  # (0.8 + 0.6) / 2
    np.testing.assert_allclose(averaged.boxes, plain.boxes, atol=1e-5)  # placed by the unmirrored pass


def test_a_peak_the_mirrored_pass_does_not_confirm_is_halved_and_its_mirror_image_appears(tmp_path):
    """A head that ignores its input puts the same peak in the mirrored cloud, which is the mirror image of a box on
    the other side of the street: both places get half the score, on the rows (y), not the columns (x)."""
    det = scripted_detector(tmp_path, {"Car": 0.8})  # peak at row 8, column 10 of 48 x 48
    det.score_threshold = 0.3
    plain = det(some_points())
    det.mirror_average = True
    averaged = det(some_points())
    np.testing.assert_allclose(sorted(averaged.scores), [0.4, 0.4], atol=1e-5)
    xs, ys = sorted(averaged.boxes[:, 0]), sorted(averaged.boxes[:, 1])
    np.testing.assert_allclose(xs, [plain.boxes[0, 0]] * 2, atol=1e-5)  # same column
    cell = det.cfg.voxelization.voxel_size[1] * det.cfg.head.feature_stride
    # row 8's corner and row 39's corner (a box sits on its cell's corner when the offset map is zero)
    np.testing.assert_allclose(ys, [plain.boxes[0, 1], plain.boxes[0, 1] + (47 - 2 * 8) * cell], atol=1e-4)


def test_mirrored_points_keep_every_feature_but_y():
    points = torch.tensor([[1.0, 2.0, -1.0, 0.5], [3.0, -4.0, 0.2, 0.1]])
    mirrored = mirror_points(points)
    assert torch.equal(mirrored, torch.tensor([[1.0, -2.0, -1.0, 0.5], [3.0, 4.0, 0.2, 0.1]]))
    assert points[0, 1] == 2.0  # the input is left as it was


def test_averaging_keeps_the_unmirrored_regression_and_needs_both_halves():
    h, w = 4, 3
    maps = {name: torch.randn(4, c, h, w) for name, c in (("heatmap", 2), ("center", 2), ("center_z", 1),
                                                           ("dim", 3), ("rot", 2))}
    out = average_mirrored([HeadOutput(**maps)], 2)[0]
    assert out.heatmap.shape == (2, 2, h, w)
    expected = (torch.sigmoid(maps["heatmap"][:2]) + torch.sigmoid(maps["heatmap"][2:]).flip(-2)) / 2
    torch.testing.assert_close(torch.sigmoid(out.heatmap), expected, atol=1e-5, rtol=0)
    for name in ("center", "center_z", "dim", "rot"):
        assert torch.equal(getattr(out, name), maps[name][:2])
    with pytest.raises(ValueError, match="expected maps of 6 samples"):
        average_mirrored([HeadOutput(**maps)], 3)


def test_models_whose_maps_cannot_be_mirrored_are_refused_naming_why(tmp_path):
    assert mirror_problem(load_model_config("cp_pillar_s_sim360")) is None
    assert mirror_problem(load_model_config("kitti_cp_pillar")) is None  # x 0..69 m ahead, y symmetric
    assert "anchor head" in mirror_problem(load_model_config("pointpillar_sim"))
    lopsided = tmp_path / "lopsided.yaml"
    lopsided.write_text("base: cp_pillar_v0.64_sim\nvoxelization:\n  point_cloud_range: [0.0, -10.24, -3.0, 30.72, "
                        "20.48, 1.0]\n")
    assert "not symmetric in y" in mirror_problem(load_model_config(lopsided))
    det = scripted_detector(tmp_path, {"Car": 0.8})
    det.cfg = load_model_config(lopsided)
    with pytest.raises(ValueError, match="not symmetric in y"):
        det.mirror_average = True
    assert det.mirror_average is False
