"""The anchor head (SECOND, PointPillars): anchors, assignment, box coder, direction bins, loss and decoding.

Hand-made cases with the values worked out in the comments: a 5 x 3 anchor grid over x 0..8, y -2..2 (anchors
every 2 m, OpenPCDet's edge-to-edge spacing) with Car, Pedestrian and Cyclist anchors at 0 and pi/2.
"""
import math

import pytest
import torch

from sparsekd_core.config import AnchorClassConfig, ConfigError, list_models, load_model_config
from sparsekd_core.geometry.axis_aligned import nearest_bev_iou
from sparsekd_core.models import box_coder
from sparsekd_core.models.anchor_head import AnchorMaps
from sparsekd_core.models.anchor_targets import assign_anchor_targets
from sparsekd_core.models.anchors import anchor_layout, generate_anchors
from sparsekd_core.models.detector import build_detector

from conftest import synthetic_cloud

RANGE = [0.0, -2.0, -3.0, 8.0, 2.0, 1.0]
HW = (3, 5)  # y rows, x columns
HALF_PI = math.pi / 2
CLASSES = [
    AnchorClassConfig("Car", [[4.0, 2.0, 1.5]], -1.8, 0.6, 0.45, [0.0, HALF_PI]),
    AnchorClassConfig("Pedestrian", [[0.8, 0.6, 1.7]], -0.6, 0.5, 0.35, [0.0, HALF_PI]),
    AnchorClassConfig("Cyclist", [[1.8, 0.6, 1.7]], -0.6, 0.5, 0.35, [0.0, HALF_PI]),
]


def anchor_at(anchors, x, y, slot):
    """The anchor of slot ``slot`` in the cell at (x, y) m (grid every 2 m from (0, -2))."""
    return anchors[int(round((y + 2) / 2)), int(round(x / 2)), slot]


# ----------------------------------------------------------------------------- anchors
def test_anchors_cover_the_range_edge_to_edge_class_by_class():
    anchors = generate_anchors(CLASSES, HW, RANGE)
    assert anchors.shape == (3, 5, 6, 7)
    assert anchors[0, :, 0, 0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]  # x from the first edge to the last
    assert anchors[:, 0, 0, 1].tolist() == [-2.0, 0.0, 2.0]
    # slots: Car 0 / pi/2, Pedestrian 0 / pi/2, Cyclist 0 / pi/2
    assert anchors[1, 2, :, 6].tolist() == pytest.approx([0, HALF_PI] * 3)
    assert anchors[1, 2, :, 3].tolist() == pytest.approx([4.0, 4.0, 0.8, 0.8, 1.8, 1.8])
    # z is the gravity centre: bottom height + dz / 2
    assert anchors[1, 2, 0, 2].item() == pytest.approx(-1.8 + 0.75)
    assert anchors[1, 2, 2, 2].item() == pytest.approx(-0.6 + 0.85)
    assert anchor_layout(CLASSES).slice_of(1) == slice(2, 4)


def test_align_center_puts_anchors_at_cell_centres():
    centred = [AnchorClassConfig("Car", [[4.0, 2.0, 1.5]], -1.8, 0.6, 0.45, [0.0], align_center=True)]
    anchors = generate_anchors(centred, (2, 4), RANGE)
    assert anchors[0, :, 0, 0].tolist() == [1.0, 3.0, 5.0, 7.0] and anchors[:, 0, 0, 1].tolist() == [-1.0, 1.0]


def test_nearest_bev_iou_snaps_headings_to_the_nearest_axis():
    box = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]])
    turned = box.clone()
    turned[0, 6] = HALF_PI - 0.3  # nearer the y axis: footprint 2 x 4
    assert nearest_bev_iou(box, box).item() == pytest.approx(1.0)
    assert nearest_bev_iou(box, turned).item() == pytest.approx(4.0 / 12.0)  # 2 x 2 overlap, union 8 + 8 - 4
    flipped = box.clone()
    flipped[0, 6] = math.pi + 0.2  # nearer the x axis again
    assert nearest_bev_iou(box, flipped).item() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- assignment
def _assign(boxes, labels):
    anchors = generate_anchors(CLASSES, HW, RANGE)
    t = assign_anchor_targets(anchors, torch.tensor([boxes]), torch.tensor([labels]), CLASSES)
    return anchors, t.labels.view(*HW, 6), t.residuals.view(*HW, 6, 7)


def test_assignment_positive_negative_ignored_and_forced():
    car = [4.5, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0]  # spans x 2.5..6.5, y -1..1
    ped = [2.3, 0.1, -0.1, 0.8, 0.6, 1.7, 0.0]  # spans x 1.9..2.7, y -0.2..0.4
    anchors, labels, residuals = _assign([car, ped], [0, 1])
    row = 1  # y = 0
    # Car anchors at 0 rad along y = 0: x 2 -> overlap 1.5 x 2 = 3, IoU 3 / 13 = 0.23 (< 0.45: negative);
    # x 4 -> 7 / 9 = 0.78 (>= 0.6: positive); x 6 -> 5 / 11 = 0.4545 (between 0.45 and 0.6: ignored).
    assert labels[row, 1, 0].item() == 0 and labels[row, 2, 0].item() == 1 and labels[row, 3, 0].item() == -1
    # the pi/2 Car anchor at x 4 is 2 x 4: overlap 2 x 2 = 4, IoU 4 / 12 = 0.33: negative
    assert labels[row, 2, 1].item() == 0
    # The pedestrian's best anchor (x 2, y 0, 0 rad) overlaps 0.5 x 0.5: IoU 0.25 / 0.71 = 0.352, under
    # the matched 0.5, but it is the box's best anchor, so it is forced positive; the pi/2 one (0.333) is negative.
    assert labels[row, 1, 2].item() == 2 and labels[row, 1, 3].item() == 0
    assert int((labels[..., 2:4] == 2).sum()) == 1
    # no cyclist: every cyclist anchor is negative; exactly one car anchor is positive
    assert bool((labels[..., 4:] == 0).all()) and int((labels[..., :2] == 1).sum()) == 1
    # residuals: the positive car anchor at (4, 0, z -1.05, 4 x 2 x 1.5): dx 0.5 over the diagonal sqrt(20)
    expected = [0.5 / math.sqrt(20.0), 0.0, (-1.0 + 1.05) / 1.5, 0.0, 0.0, 0.0, 0.0]
    assert residuals[row, 2, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert bool((residuals[labels <= 0] == 0).all())


def test_a_box_no_anchor_touches_gets_no_anchor_and_padding_is_ignored():
    far = [30.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0]  # outside the anchors' reach: its best overlap is 0
    _, labels, _ = _assign([far, [0.0] * 7], [0, -1])
    assert bool((labels == 0).all())


# ----------------------------------------------------------------------------- box coder and directions
def test_box_coder_round_trip():
    g = torch.Generator().manual_seed(0)
    anchors = torch.cat([torch.randn(50, 3, generator=g) * 10, torch.rand(50, 3, generator=g) * 3 + 0.5,
                         torch.rand(50, 1, generator=g) * math.pi], dim=1)
    boxes = torch.cat([anchors[:, :3] + torch.randn(50, 3, generator=g),
                       anchors[:, 3:6] * (0.5 + torch.rand(50, 3, generator=g)),
                       torch.randn(50, 1, generator=g) * 2], dim=1)
    codes = box_coder.encode(boxes, anchors)
    torch.testing.assert_close(box_coder.decode(codes, anchors), boxes, atol=1e-5, rtol=1e-5)
    # a box equal to its anchor encodes to zeros
    assert box_coder.encode(anchors, anchors).abs().max().item() < 1e-6


def test_direction_bins_and_their_decoding():
    offset = 0.78539
    yaws = torch.tensor([0.0, HALF_PI, math.pi, -HALF_PI, 1.0])
    # bin 0 covers headings from pi/4 to 5 pi/4, bin 1 the other half-turn
    assert box_coder.direction_bins(yaws, 2, offset).tolist() == [1, 0, 0, 1, 0]
    # The residual compares headings through a sine, so it may come out a half-turn away (0.1 for 0.1 + pi):
    # the bin puts it back. 0.1 lies in bin 1 and 0.1 + pi in bin 0.
    decoded = torch.tensor([0.1, 0.1])
    fixed = box_coder.apply_direction(decoded, torch.tensor([1, 0]), 2, offset, 0.0)
    assert torch.cos(fixed - torch.tensor([0.1, 0.1 + math.pi])).tolist() == pytest.approx([1.0, 1.0])
    a, b = box_coder.sin_difference(torch.tensor([[0, 0, 0, 0, 0, 0, 0.3]]),
                                    torch.tensor([[0, 0, 0, 0, 0, 0, 0.3 + math.pi]]))
    assert (a - b)[0, 6].item() == pytest.approx(0.0, abs=1e-6)  # a half-turn costs the residual loss nothing


# ----------------------------------------------------------------------------- the head in a detector
def as_map(rows, h, w):
    """(H * W * A, n) rows -> a (1, A * n, H, W) map: the inverse of anchor_head.per_anchor."""
    return rows.reshape(h, w, -1).permute(2, 0, 1).unsqueeze(0)


def _tiny(name="pointpillar_sim"):
    cfg = load_model_config(name)
    cfg.voxelization.point_cloud_range = [0.0, -5.12, -3.0, 10.24, 5.12, 1.0]
    return cfg


def test_decoded_boxes_match_the_targets_they_were_built_from():
    """Maps set to exactly the targets (high logits on positive anchors, their residuals, their direction bins)
    decode to the boxes the targets came from: the maps' channel layout and the targets' anchor order agree."""
    model = build_detector(_tiny()).eval()
    head = model.head
    boxes = torch.tensor([[[3.0, 1.0, -0.9, 3.9, 1.6, 1.5, 0.3], [6.0, -2.0, -0.6, 0.7, 0.6, 1.7, 2.5],
                           [8.0, 3.0, -0.7, 1.7, 0.6, 1.7, -1.2]]])
    labels = torch.tensor([[0, 1, 2]])
    (tg,) = head.assign_targets(boxes, labels)
    h, w = head.map_hw
    a, c = head.num_anchors, head.num_classes
    pos = tg.positives[0]
    cls = torch.full((h * w * a, c), -10.0)
    cls[pos, tg.labels[0][pos] - 1] = 10.0
    yaw = tg.residuals[0, :, 6] + head.flat_anchors()[:, 6]
    dir_logits = torch.nn.functional.one_hot(box_coder.direction_bins(yaw, 2, 0.78539), 2).float() * 10
    maps = AnchorMaps(as_map(cls, h, w), as_map(tg.residuals[0], h, w), as_map(dir_logits, h, w))
    (pred,) = model.decode([maps], score_threshold=0.5)
    assert sorted(pred.labels.tolist()) == [0, 1, 2]  # NMS leaves one box per object
    for box, label in zip(boxes[0], labels[0]):
        got = pred.boxes[pred.labels == label][0]
        torch.testing.assert_close(got[:6], box[:6], atol=1e-4, rtol=1e-5)
        assert math.cos(float(got[6] - box[6])) == pytest.approx(1.0, abs=1e-6)  # same heading, not flipped


def test_loss_terms_and_their_weights():
    """A head that predicts its targets exactly has zero box and direction loss; the class loss of the initial
    head (every anchor at p = 0.01) follows the focal loss formula."""
    torch.manual_seed(0)
    model = build_detector(_tiny()).train()
    head = model.head
    boxes = torch.tensor([[[3.0, 1.0, -0.9, 3.9, 1.6, 1.5, 0.3]]])
    (tg,) = head.assign_targets(boxes, torch.tensor([[0]]))
    h, w = head.map_hw
    a = head.num_anchors
    maps = AnchorMaps(torch.full((1, a * 3, h, w), -math.log(99.0)), torch.zeros(1, a * 7, h, w),
                      torch.zeros(1, a * 2, h, w))
    loss = head.loss([maps], [tg])
    npos = int(tg.positives.sum())
    ncared = int((tg.labels >= 0).sum())
    p = 0.01  # negatives: 0.75 * p^2 * -log(1 - p); positives add 0.25 * (1 - p)^2 * -log(p) for their class
    neg = 0.75 * p ** 2 * -math.log(1 - p)
    expected = (ncared * 3 * neg + npos * (0.25 * (1 - p) ** 2 * -math.log(p) - neg)) / npos
    assert loss["cls"].item() == pytest.approx(expected, rel=1e-4)
    assert loss["total"].item() == pytest.approx(loss["cls"].item() + loss["loc"].item() + loss["dir"].item())
    # residual maps equal to the targets: no box loss (sin(0) on the heading too)
    exact = AnchorMaps(maps.cls, as_map(tg.residuals[0], h, w), maps.dir)
    assert head.loss([exact], [tg])["loc"].item() == pytest.approx(0.0, abs=1e-7)


ANCHOR_ZOO = [m for m in list_models() if load_model_config(m).is_anchor]


def test_anchor_zoo_holds_both_families_and_their_students():
    assert {"second", "second_s", "pointpillar", "pointpillar_v0.64", "kitti_second", "kitti_second_s",
            "kitti_pointpillar", "kitti_pointpillar_v0.32", "pointpillar_sim", "pointpillar_s_sim"} <= set(ANCHOR_ZOO)


@pytest.mark.parametrize("name", ANCHOR_ZOO)
def test_training_step_runs_on_cpu(name):
    """Forward + backward of every anchor zoo model on CPU (on a 12.8 m square of its range, 20.48 m for 0.64 m
    pillars: the same layers and anchors, a small map): finite loss terms, gradients from the first layer to the
    head, maps on the anchors."""
    torch.manual_seed(0)
    cfg = load_model_config(name)
    r = cfg.voxelization.point_cloud_range
    side = max(12.8, 32 * cfg.voxelization.voxel_size[0])  # whole cells that the BEV backbone halves three times
    cfg.voxelization.point_cloud_range = [0.0, -side / 2, r[2], side, side / 2, r[5]]
    model = build_detector(cfg).train()
    pts = torch.from_numpy(synthetic_cloud(400, len(cfg.point_features), seed=0, xy=side / 2))
    pts[:, 0] = pts[:, 0].abs() + 0.5
    out = model([pts])
    maps = out.head
    gx, gy, _ = cfg.voxelization.grid_size()
    s = cfg.head.feature_stride
    a = model.head.num_anchors
    assert (maps.cls.shape == (1, a * 3, gy // s, gx // s) and model.head.map_hw == (gy // s, gx // s)
            and maps.box.shape[1] == a * 7 and maps.dir.shape[1] == a * 2)
    boxes = torch.tensor([[[4.0, 2.0, 0.0, 4.2, 1.8, 1.6, 0.4], [7.0, -3.0, 0.0, 0.7, 0.7, 1.8, 0.0],
                           [10.0, 4.0, 0.0, 1.8, 0.6, 1.7, 1.2]]])
    loss = model.loss(out, boxes, torch.tensor([[0, 1, 2]]))
    assert set(loss) == {"cls", "loc", "dir", "total"} and all(torch.isfinite(v) for v in loss.values())
    assert loss["loc"] > 0 and loss["dir"] > 0
    loss["total"].backward()
    first = model.vfe.pfn_layers[0].linear.weight if cfg.is_pillar else model.backbone3d.conv_input[0].weight
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert model.head.conv_box.weight.grad.abs().sum() > 0 and model.head.conv_dir_cls.weight.grad.abs().sum() > 0


def test_config_errors_name_the_fix():
    cfg = load_model_config("pointpillar_sim").to_dict()
    cfg["head"]["anchor"]["anchors"] = cfg["head"]["anchor"]["anchors"][:2]
    from sparsekd_core.config import model_config_from_dict
    with pytest.raises(ConfigError, match="class_names"):
        model_config_from_dict(cfg)
    cfg = load_model_config("pointpillar_sim").to_dict()
    cfg["head"]["loss"]["code_weights"] = [1.0] * 8
    with pytest.raises(ConfigError, match="7 values"):
        model_config_from_dict(cfg)


def _share_of_boxes_with_a_matched_anchor(name: str, class_name: str, size: tuple[float, float, float]) -> float:
    """The share of boxes of ``size``, at random positions and headings inside the model's range, that some anchor
    of their class overlaps at the class's matched IoU (the rest get only their single forced best anchor)."""
    cfg = load_model_config(name)
    head = build_detector(cfg).head
    k = [c.class_name for c in cfg.head.anchor.anchors].index(class_name)
    cls = cfg.head.anchor.anchors[k]
    anchors = head.anchors[:, :, head.layout.slice_of(k)].reshape(-1, 7)
    r = cfg.voxelization.point_cloud_range
    g = torch.Generator().manual_seed(0)
    n = 300
    boxes = torch.zeros(n, 7)
    boxes[:, 0] = r[0] + 2 + (r[3] - r[0] - 4) * torch.rand(n, generator=g)
    boxes[:, 1] = r[1] + 2 + (r[4] - r[1] - 4) * torch.rand(n, generator=g)
    boxes[:, 3:6] = torch.tensor(size)
    boxes[:, 6] = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    best = nearest_bev_iou(anchors, boxes).max(dim=0).values
    return float((best >= cls.matched_threshold).float().mean())


def test_sim_pointpillars_anchors_are_dense_enough_for_pedestrians():
    """pointpillar_sim keeps its head at stride 1 on 0.32 m pillars, so anchors lie 0.32 m apart as KITTI's do (0.16 m
    pillars at stride 2). At 0.64 m (stride 2) most pedestrian-sized boxes (0.62 m, the sim's mean) found no anchor
    at the matched IoU 0.5 and the trained teacher detected no pedestrians (docs/results.md, "Anchor pair")."""
    kitti = _share_of_boxes_with_a_matched_anchor("kitti_pointpillar", "Pedestrian", (0.62, 0.62, 1.74))
    sim = _share_of_boxes_with_a_matched_anchor("pointpillar_sim", "Pedestrian", (0.62, 0.62, 1.74))
    assert kitti > 0.75 and sim > 0.75 and abs(sim - kitti) < 0.1, (sim, kitti)
    # the student with 0.64 m pillars has 0.64 m spacing: the coarse student of the pair, not the teacher
    coarse = _share_of_boxes_with_a_matched_anchor("pointpillar_v0.64_sim", "Pedestrian", (0.62, 0.62, 1.74))
    assert coarse < 0.5, coarse
