"""head.heading axis_dir: the box axis (cos 2t, sin 2t) plus a front-end logit, through targets, loss, decoding,
TGI, KD and the ONNX / Autoware exports. The reference's (cos t, sin t) stays the default."""
from __future__ import annotations

import math

import pytest
import torch

from sparsekd_core.config import ConfigError, HeadConfig, load_model_config
from sparsekd_core.geometry.iou import iou_bev
from sparsekd_core.kd.logit import LogitKD
from sparsekd_core.kd.recipe import LogitKDConfig
from sparsekd_core.kd.tgi import apply_tgi
from sparsekd_core.models.center_head import CenterHead, HeadOutput
from sparsekd_core.models.decode import postprocess
from sparsekd_core.models.detector import build_detector
from sparsekd_core.models.heading import axis_codes, direction_targets, regression_targets, to_cos_sin
from sparsekd_core.models.targets import assign_targets

YAWS = torch.linspace(-math.pi, math.pi, 73)  # every 5 degrees, both ends and the axes included


def _logit_for(direction: torch.Tensor) -> torch.Tensor:
    return (direction * 2 - 1)[..., None] * 5.0  # a confident head: +5 for "other end", -5 for "first end"


def test_axis_code_and_direction_decode_back_to_every_heading():
    c, s = torch.cos(YAWS), torch.sin(YAWS)
    axis = torch.stack(axis_codes(c, s), dim=-1)
    cos_t, sin_t = to_cos_sin(axis, _logit_for(direction_targets(c, s)))
    err = torch.remainder(torch.atan2(sin_t, cos_t) - YAWS + math.pi, 2 * math.pi) - math.pi
    assert err.abs().max() < 1e-5
    assert torch.allclose(torch.hypot(cos_t, sin_t), torch.ones_like(cos_t), atol=1e-5)  # unit codes stay unit


def test_a_half_turn_changes_only_the_direction():
    c, s = torch.cos(YAWS), torch.sin(YAWS)
    turned = YAWS + math.pi
    for a, b in zip(axis_codes(c, s), axis_codes(torch.cos(turned), torch.sin(turned))):
        assert torch.allclose(a, b, atol=1e-5)
    flipped = direction_targets(torch.cos(turned), torch.sin(turned))
    # away from the axis ends (where rounding decides), the other end of the same axis has the other label
    inside = (YAWS.abs() - math.pi / 2).abs() > 1e-3
    assert torch.equal(flipped[inside], 1 - direction_targets(c, s)[inside])
    # the codes of a whole target row: only rot changes, and only for axis_dir
    boxes = torch.tensor([[[0.3, 0.7, -1.0, 1.4, 0.6, 0.5, c[10], s[10]]]])
    assert regression_targets(boxes, "sin_cos") is boxes
    axis_row = regression_targets(boxes, "axis_dir")
    assert torch.equal(axis_row[..., :6], boxes[..., :6])
    assert torch.allclose(axis_row[0, 0, 6:], torch.tensor([math.cos(2 * YAWS[10]), math.sin(2 * YAWS[10])]), atol=1e-6)


def _perfect_maps(t, heading: str, h: int, w: int) -> HeadOutput:
    """A head that regresses the targets exactly at the centres, in ``heading``'s encoding."""
    codes = regression_targets(t.boxes, heading)
    reg = torch.zeros(1, 8, h * w)
    direction = torch.zeros(1, 1, h * w)
    for k in range(int(t.mask.sum())):
        reg[0, :, t.indices[0, k]] = codes[0, k]
        direction[0, 0, t.indices[0, k]] = _logit_for(direction_targets(t.boxes[0, k, 6], t.boxes[0, k, 7]))
    reg, direction = reg.view(1, 8, h, w), direction.view(1, 1, h, w)
    logits = torch.logit(t.heatmap.clamp(1e-6, 1 - 1e-6))
    return HeadOutput(logits, reg[:, 0:2], reg[:, 2:3], reg[:, 3:6], reg[:, 6:8],
                      direction=direction if heading == "axis_dir" else None)


GT = torch.tensor([[[10.0, 3.0, -0.8, 4.2, 1.9, 1.6, 0.4], [30.0, -12.5, -1.0, 0.7, 0.6, 1.8, -2.0],
                    [45.3, 20.1, -0.9, 1.8, 0.6, 1.7, 3.0], [20.0, 10.0, -0.8, 4.0, 1.8, 1.5, -1.2]]])
LABELS = torch.tensor([[0, 1, 2, 0]])


def test_an_axis_dir_head_decodes_its_targets_to_the_boxes_and_its_loss_is_zero_there():
    cfg = load_model_config("cp_voxel_sim")
    vox, h, w = cfg.voxelization, 100, 88
    t = assign_targets(GT, LABELS, 3, (h, w), vox.voxel_size, vox.point_cloud_range, 8)
    out = _perfect_maps(t, "axis_dir", h, w)
    pred = postprocess([out], [[0, 1, 2]], cfg.head.post, vox.voxel_size, vox.point_cloud_range, 8,
                       score_threshold=0.99)[0]
    order = torch.argsort(pred.boxes[:, 0])
    assert torch.allclose(pred.boxes[order], GT[0][torch.argsort(GT[0, :, 0])], atol=1e-4)

    head = CenterHead(16, [[0, 1, 2]], HeadConfig(heading="axis_dir"))
    terms = head.loss([out], [t])
    assert set(terms) == {"hm", "loc", "dir", "total"}
    assert float(terms["loc"]) < 1e-5
    assert float(terms["dir"]) == pytest.approx(0.2 * math.log1p(math.exp(-5.0)), rel=1e-4)  # BCE at |logit| 5
    # the same maps with the reference's (cos t, sin t) codes are wrong for this head: its loc term sees them
    wrong = _perfect_maps(t, "sin_cos", h, w)
    wrong.direction = out.direction
    assert float(head.loss([wrong], [t])["loc"]) > 0.5
    # and a flipped direction is a dir error only: the boxes turn by exactly pi and keep their BEV IoU
    flipped = HeadOutput(out.heatmap, out.center, out.center_z, out.dim, out.rot, direction=-out.direction)
    assert float(head.loss([flipped], [t])["loc"]) < 1e-5 and float(head.loss([flipped], [t])["dir"]) > 0.9
    turned = postprocess([flipped], [[0, 1, 2]], cfg.head.post, vox.voxel_size, vox.point_cloud_range, 8,
                         score_threshold=0.99)[0]
    turned_boxes = turned.boxes[torch.argsort(turned.boxes[:, 0])]
    dyaw = torch.remainder(turned_boxes[:, 6] - pred.boxes[order][:, 6], 2 * math.pi)
    assert torch.allclose(dyaw, torch.full_like(dyaw, math.pi), atol=1e-4)
    assert torch.allclose(iou_bev(turned_boxes, pred.boxes[order]).diagonal(), torch.ones(4), atol=1e-4)


def test_a_sin_cos_head_has_no_direction_tower_and_no_dir_term():
    head = CenterHead(16, [[0, 1, 2]], HeadConfig())
    assert "direction" not in head.heads[0]
    out = head(torch.randn(1, 16, 20, 22))[0]
    assert out.direction is None
    axis_head = CenterHead(16, [[0, 1, 2]], HeadConfig(heading="axis_dir"))
    assert axis_head(torch.randn(1, 16, 20, 22))[0].direction.shape == (1, 1, 20, 22)


def test_config_checks_the_heading(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: cp_pillar_v0.64_sim\nhead: {heading: sincos}\n")
    with pytest.raises(ConfigError, match="head.heading must be one of sin_cos, axis_dir"):
        load_model_config(str(bad))
    anchor = tmp_path / "anchor.yaml"
    anchor.write_text("base: pointpillar_sim\nhead: {heading: axis_dir}\n")
    with pytest.raises(ConfigError, match="dir_classifier"):
        load_model_config(str(anchor))


def _small(name: str, heading: str = "sin_cos"):
    cfg = load_model_config(name)
    r = cfg.voxelization.point_cloud_range
    cfg.voxelization.point_cloud_range = [0.0, -5.12, r[2], 10.24, 5.12, r[5]]
    cfg.head.heading = heading
    return cfg


def test_tgi_from_a_sin_cos_teacher_leaves_the_students_direction_tower_as_initialised():
    torch.manual_seed(0)
    teacher = build_detector(_small("cp_pillar_sim")).eval()
    student = build_detector(_small("cp_pillar_v0.64_sim", "axis_dir")).eval()
    before = {k: v.clone() for k, v in student.state_dict().items() if ".direction." in k}
    result = apply_tgi(teacher, student)
    assert result.fresh == ["head.heads.0.direction"]
    after = student.state_dict()
    assert before and all(torch.equal(after[k], v) for k, v in before.items())
    # everything else came from the teacher (a narrower student keeps the teacher's first channels)
    t_rot = teacher.state_dict()["head.heads.0.rot.1.weight"]
    assert torch.equal(after["head.heads.0.rot.1.weight"], t_rot[:, :after["head.heads.0.rot.1.weight"].shape[1]])


def test_regression_kd_refuses_teacher_and_student_with_different_headings():
    maps = [torch.zeros(1, c, 8, 8) for c in (3, 2, 1, 3, 2)]
    plain = HeadOutput(*maps)
    axis = HeadOutput(*maps, direction=torch.zeros(1, 1, 8, 8))
    targets = assign_targets(torch.tensor([[[2.0, 0.5, -1.0, 3.0, 1.5, 1.5, 0.3]]]), torch.tensor([[0]]), 3, (8, 8),
                             [0.1, 0.1, 0.1], [0.0, -3.2, -3.0, 6.4, 3.2, 1.0], 8)
    kd = LogitKD(LogitKDConfig(), [1.0] * 8)
    assert float(kd(axis, axis, targets)["kd_reg"]) == 0.0
    with pytest.raises(ValueError, match="encode the heading differently"):
        kd(axis, plain, targets)


def test_onnxruntime_and_autoware_exports_carry_the_direction(tmp_path):
    """The ONNX graph has a direction output and onnxruntime's boxes are torch's; Autoware's single rot map is
    decoded inside the graph, so Autoware's decoding of it gives our yaw, front ends included."""
    from sparsekd_core.checkpoint import write_untrained_checkpoint
    from sparsekd_core.cli.export import main
    from sparsekd_core.export import autoware as aw
    from sparsekd_core.export.exporter import frame_points, load_source
    from sparsekd_core.export.verify import autoware_voxels, check_autoware_files
    from sparsekd_core.inference import Detector
    from sparsekd_core.models.decode import decode_maps

    cfg = tmp_path / "axis.yaml"
    cfg.write_text("base: cp_pillar_v0.64_sim\nvfe: {filters: [32, 32]}\nbev: {num_features: 32}\n"
                   "head: {heading: axis_dir}\n")
    ckpt = write_untrained_checkpoint(str(cfg), tmp_path / "axis.pth")
    det = Detector.from_checkpoint(ckpt, "cpu", backend="onnxruntime")
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(4000, 4, generator=g) * torch.tensor([30.0, 30.0, 3.0, 1.0])
           + torch.tensor([0.0, -15.0, -2.5, 0.0]))
    with torch.no_grad():
        vb = det.model.voxelize([pts])
        (want,) = det.model.forward_voxels(vb).heads
    (got,) = det.dense(vb)
    assert got.direction is not None and (got.direction - want.direction).abs().max() < 1e-4

    out = tmp_path / "aw"
    assert main([str(ckpt), "--format", "autoware", "--out", str(out)]) == 0
    model, _ = load_source(str(ckpt))
    layout = aw.check_autoware(model, allow_patch=True)
    points = frame_points(model)
    _, maps = check_autoware_files(model, out / aw.encoder_file("axis"), out / aw.head_file("axis"), layout, points)
    with torch.no_grad():
        head = model.forward_voxels(autoware_voxels(model, points)).head
    vox = model.cfg.voxelization
    h, w = head.heatmap.shape[-2:]
    boxes, _, _, _ = decode_maps(head, h * w, vox.voxel_size, vox.point_cloud_range, model.cfg.head.feature_stride)
    order = head.heatmap.sigmoid().reshape(1, -1).topk(h * w).indices[0] % (h * w)  # decode_maps' order
    other_end = head.direction[0, 0].reshape(-1)[order] > 0
    assert other_end.any() and (~other_end).any()
    # the 15 best cells pointing each way: both branches of the in-graph decoding are checked
    for k in torch.cat([torch.nonzero(other_end)[:15, 0], torch.nonzero(~other_end)[:15, 0]]).tolist():
        row, col = divmod(int(order[k]), w)
        theirs = aw.decode_cell(maps, row, col, layout)
        dyaw = (theirs["yaw"] - float(boxes[0, k, 6]) + math.pi) % (2 * math.pi) - math.pi
        assert abs(dyaw) < 1e-3
