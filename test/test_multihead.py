"""Multi-head CenterHead (class groups, one task head each) with velocity, the reference's head init, the plain
VoxelBackBone8x, and the upgrade of single-head checkpoints written before multi-head support.

Models are sim zoo entries on a 12.8 m square range (small BEV maps): same layers and widths, fast on a CPU.
"""
import math

import pytest
import torch

from sparsekd_core.checkpoint import load_model, save_checkpoint
from sparsekd_core.config import ConfigError, load_model_config, model_config_from_dict
from sparsekd_core.kd.distiller import Distiller, DistillerError
from sparsekd_core.kd.recipe import load_kd_recipe
from sparsekd_core.kd.tgi import TGIError, apply_tgi
from sparsekd_core.models.center_head import HeadOutput, upgrade_single_head_state_dict
from sparsekd_core.models.decode import postprocess
from sparsekd_core.models.detector import build_detector
from sparsekd_core.models.targets import labels_of_group

from conftest import trained_looking

GROUPS = [["Car"], ["Pedestrian", "Cyclist"]]


def small(name="cp_voxel_sim", groups=GROUPS, velocity=True, **overrides):
    d = load_model_config(name).to_dict()
    d["voxelization"]["point_cloud_range"] = [0.0, -6.4, -3.0, 12.8, 6.4, 1.0]
    d["head"]["class_groups"] = groups
    d["head"]["velocity"] = velocity
    d["head"]["loss"]["code_weights"] = [1.0] * (10 if velocity else 8)
    for k, v in overrides.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) else v
    return model_config_from_dict(d)


def cloud(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, 4, generator=g) * torch.tensor([12.0, 12.0, 2.5, 1.0]) + torch.tensor([0.4, -6.0, -2.8, 0.0])
    return p


# ----------------------------------------------------------------------------- config
def test_class_groups_must_partition_the_classes():
    with pytest.raises(ConfigError, match="class_groups"):
        small(groups=[["Car"], ["Pedestrian"]])  # Cyclist in no group
    with pytest.raises(ConfigError, match="class_groups"):
        small(groups=[["Car", "Pedestrian"], ["Pedestrian", "Cyclist"]])  # Pedestrian twice
    d = small().to_dict()
    d["head"]["loss"]["code_weights"] = [1.0] * 8
    with pytest.raises(ConfigError, match="10 values.*vel 2"):
        model_config_from_dict(d)
    assert small().class_groups() == [[0], [1, 2]]
    assert load_model_config("cp_voxel").class_groups() == [[0, 1, 2]]


# ----------------------------------------------------------------------------- head
def test_regression_towers_start_as_the_reference_initialises_them():
    """OpenPCDet's SeparateHead: kaiming_normal_ at its defaults (fan_in, gain sqrt(2)) on every regression conv,
    zero bias; the heatmap's last bias at -2.19. With fan_in = 64 * 3 * 3 the weight std is sqrt(2 / 576) = 0.059;
    fan_out (2 * 3 * 3 for 'center') would give 0.33."""
    torch.manual_seed(0)
    model = build_detector(load_model_config("cp_voxel"))
    task = model.head.heads[0]
    for name in ("center", "center_z", "dim", "rot"):
        last = task[name][-1]
        assert last.weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.1), name
        assert torch.count_nonzero(last.bias) == 0
        inner = task[name][0][0]
        assert inner.weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.05), name
    assert torch.all(task["heatmap"][-1].bias == -2.19)


def test_each_group_gets_its_own_head_with_velocity():
    torch.manual_seed(0)
    model = build_detector(small()).eval()
    out = model([cloud()])
    assert len(out.heads) == 2
    assert [h.heatmap.shape[1] for h in out.heads] == [1, 2]
    assert all(h.vel is not None and h.vel.shape[1] == 2 for h in out.heads)
    assert out.heads[1].regression().shape[1] == 10
    with pytest.raises(ValueError, match="2 task heads"):
        out.head  # noqa: B018  (the single-head accessor refuses)
    names = set(model.state_dict())
    assert "head.heads.1.vel.1.weight" in names and "head.heads.0.heatmap.1.bias" in names


def test_targets_are_assigned_per_group_with_velocity():
    cfg = small()
    model = build_detector(cfg)
    gt = torch.tensor([[[3.0, 1.0, -1.0, 4.0, 1.8, 1.5, 0.3, 2.0, -1.0],
                        [6.0, -2.0, -1.0, 0.6, 0.6, 1.7, 0.0, 0.5, 0.25],
                        [9.0, 3.0, -1.0, 1.7, 0.6, 1.6, 1.0, -3.0, 4.0]]])
    labels = torch.tensor([[0, 1, 2]])
    h, w = 16, 16
    targets = model.assign_targets(gt, labels, (h, w))
    assert len(targets) == 2
    car, small_things = targets
    assert car.heatmap.shape == (1, 1, h, w) and small_things.heatmap.shape == (1, 2, h, w)
    assert int(car.mask.sum()) == 1 and int(small_things.mask.sum()) == 2
    assert car.boxes.shape[-1] == 10
    assert car.boxes[0, 0, 8:].tolist() == [2.0, -1.0]
    # the second head numbers its classes in group order: Pedestrian 0, Cyclist 1
    assert labels_of_group(labels, [1, 2]).tolist() == [[-1, 0, 1]]
    assert small_things.boxes[0, :2, 8:].tolist() == [[0.5, 0.25], [-3.0, 4.0]]
    assert small_things.heatmap[0, 1].max() == 1.0  # the Cyclist peak is in channel 1 of its head
    with pytest.raises(ValueError, match="regresses velocity.*vx, vy"):
        model.assign_targets(gt[..., :7], labels, (h, w))
    loss = model.loss(model([cloud()]), gt, labels)
    assert set(loss) == {"hm", "loc", "total"} and torch.isfinite(loss["total"])


def test_decoding_perfect_maps_gives_boxes_velocities_and_global_labels_back():
    """Maps built from the targets (a perfect head) decode to the input boxes, their velocities and their model
    class indices; each head is suppressed on its own, so overlapping boxes of two heads both survive."""
    cfg = small()
    cfg.head.post.score_threshold = 0.99
    model = build_detector(cfg)
    gt = torch.tensor([[[3.2, 1.1, -1.0, 4.0, 1.8, 1.5, 0.3, 2.0, -1.0],
                        [3.2, 1.1, -1.1, 0.6, 0.6, 1.7, 0.0, 0.5, 0.25],   # inside the car: another head
                        [9.1, 3.3, -1.0, 1.7, 0.6, 1.6, 1.0, -3.0, 4.0]]])
    labels = torch.tensor([[0, 1, 2]])
    h, w = 16, 16
    outs = []
    for tg in model.assign_targets(gt, labels, (h, w)):
        reg = torch.zeros(1, 10, h * w)
        for k in range(int(tg.mask.sum())):
            reg[0, :, tg.indices[0, k]] = tg.boxes[0, k]
        reg = reg.view(1, 10, h, w)
        logits = torch.logit(tg.heatmap.clamp(1e-6, 1 - 1e-6))
        outs.append(HeadOutput(logits, reg[:, 0:2], reg[:, 2:3], reg[:, 3:6], reg[:, 6:8], reg[:, 8:10]))
    vox = cfg.voxelization
    pred = postprocess(outs, cfg.class_groups(), cfg.head.post, vox.voxel_size, vox.point_cloud_range,
                       cfg.head.feature_stride)[0]
    order = torch.argsort(pred.labels)
    assert pred.labels[order].tolist() == [0, 1, 2]
    torch.testing.assert_close(pred.boxes[order], gt[0, :, :7], atol=1e-4, rtol=0)
    torch.testing.assert_close(pred.velocities[order], gt[0, :, 7:], atol=1e-6, rtol=0)
    # one head with both classes suppresses the smaller box under class-agnostic NMS
    joint = small(groups=[["Car", "Pedestrian", "Cyclist"]])
    joint.head.post.score_threshold = 0.99
    model1 = build_detector(joint)
    (tg,) = model1.assign_targets(gt, labels, (h, w))
    reg = torch.zeros(1, 10, h * w)
    for k in range(int(tg.mask.sum())):
        reg[0, :, tg.indices[0, k]] = tg.boxes[0, k]
    reg = reg.view(1, 10, h, w)
    out = HeadOutput(torch.logit(tg.heatmap.clamp(1e-6, 1 - 1e-6)), reg[:, 0:2], reg[:, 2:3], reg[:, 3:6],
                     reg[:, 6:8], reg[:, 8:10])
    pred1 = postprocess([out], joint.class_groups(), joint.head.post, vox.voxel_size, vox.point_cloud_range, 8)[0]
    assert len(pred1.boxes) == 2


def test_detector_returns_velocities_in_detections(tmp_path):
    torch.manual_seed(0)
    model = build_detector(small()).eval()
    path = save_checkpoint(tmp_path / "m.pth", model)
    from sparsekd_core.inference import Detector

    det = Detector.from_checkpoint(path, device="cpu")
    det.score_threshold = 0.0
    d = det(cloud().numpy())
    assert len(d) > 0 and d.velocities.shape == (len(d), 2)
    assert "velocities" in d.to_dict()
    assert det(cloud().numpy()[:0]).velocities.shape == (0, 2)


# ----------------------------------------------------------------------------- checkpoints written before
def test_single_head_state_dicts_of_format_1_are_upgraded(tmp_path):
    torch.manual_seed(0)
    model = build_detector(load_model_config("cp_voxel_sim")).eval()
    sd = model.state_dict()
    old = {k.replace("head.heads.0.", "head.heads."): v for k, v in sd.items()}
    assert "head.heads.heatmap.1.bias" in old
    new = upgrade_single_head_state_dict(old)
    assert list(new) == list(sd)  # same names, same order (optimiser states keep lining up)
    # a format-1 file on disk loads and computes the same maps
    from sparsekd_core.checkpoint import make_payload, atomic_torch_save

    payload = make_payload(model.cfg, old)
    payload["format_version"] = 1
    atomic_torch_save(payload, tmp_path / "v1.pth")
    loaded, _ = load_model(tmp_path / "v1.pth")
    pts = [cloud()]
    with torch.no_grad():
        torch.testing.assert_close(loaded(pts).head.heatmap, model(pts).head.heatmap, rtol=0, atol=0)


# ----------------------------------------------------------------------------- TGI, KD, plain backbone
@pytest.mark.parametrize("backbone", ["voxel_res8x", "voxel8x"])
def test_tgi_narrows_a_multi_head_teacher_and_reproduces_it_at_full_width(backbone):
    plain = {"type": "voxel8x", "filters": [16, 16, 32, 64, 64, 128], "layers": [1, 1, 3, 3, 3, 1]}
    b3 = plain if backbone == "voxel8x" else {}
    torch.manual_seed(0)
    teacher = trained_looking(build_detector(small(backbone3d=b3))).eval()
    twin = build_detector(small(backbone3d=b3)).eval()
    apply_tgi(teacher, twin, "bn_scale")
    pts = [cloud()]
    with torch.no_grad():
        for a, b in zip(twin(pts).heads, teacher(pts).heads):
            torch.testing.assert_close(a.heatmap, b.heatmap, atol=1e-5, rtol=0)
            torch.testing.assert_close(a.regression(), b.regression(), atol=1e-4, rtol=1e-5)
    narrow = build_detector(small(backbone3d=b3, backbone2d={"width": 0.5}, head={**small().to_dict()["head"],
                                                                                 "shared_channels": 32}))
    result = apply_tgi(teacher, narrow, "first")
    assert result.layers["head.heads.1.vel.1"].outputs.total == 2
    regrouped = build_detector(small(backbone3d=b3, groups=[["Car", "Pedestrian"], ["Cyclist"]]))
    with pytest.raises(TGIError, match="class groups"):
        apply_tgi(teacher, regrouped, "first")


def test_distiller_runs_logit_kd_head_by_head_and_averages():
    torch.manual_seed(0)
    teacher = build_detector(small()).eval()
    student = build_detector(small(backbone2d={"width": 0.5})).train()
    d = Distiller(student, teacher, load_kd_recipe("sparsekd"))
    d.init_student_from_teacher()
    gt = torch.tensor([[[3.0, 1.0, -1.0, 4.0, 1.8, 1.5, 0.3, 2.0, -1.0],
                        [9.0, 3.0, -1.0, 1.7, 0.6, 1.6, 1.0, -3.0, 4.0]]])
    losses = d([cloud()], gt, torch.tensor([[0, 2]]))
    assert {"hm", "loc", "kd_hm", "kd_reg", "total"} <= set(losses)
    assert torch.isfinite(losses["total"])
    losses["total"].backward()
    # the average over heads: with one head's terms doubled the mean moves by half the change
    s_out, t_out = student([cloud()]), d.teacher_forward([cloud()])
    targets = student.assign_targets(gt, torch.tensor([[0, 2]]), tuple(s_out.heads[0].heatmap.shape[-2:]))
    per_head = [d.logit_kd(s, t, tg) for s, t, tg in zip(s_out.heads, t_out.heads, targets)]
    mean = d.logit_kd.over_heads(s_out.heads, t_out.heads, targets)
    for k in ("kd_hm", "kd_reg"):
        torch.testing.assert_close(mean[k], (per_head[0][k] + per_head[1][k]) / 2)
    with pytest.raises(DistillerError, match="class_groups"):
        Distiller(build_detector(small(groups=[])), teacher, load_kd_recipe("sparsekd"))


def test_axis_aligned_nms_ignores_the_heading():
    """Two 4 m x 1 m boxes crossing at right angles, centres 0.08 m apart: their rotated BEV IoU is 1 / 7 = 0.14, so
    rotated NMS at 0.5 keeps both; with the heading dropped (OpenPCDet's nms_normal) they are the same box."""
    cfg = small(velocity=False, groups=[])
    cfg.head.post.nms_iou_threshold = 0.5
    cfg.head.post.score_threshold = 0.5
    h = w = 16
    heat = torch.full((1, 3, h, w), -10.0)
    heat[0, 0, 5, 5], heat[0, 0, 5, 6] = 3.0, 2.0
    center = torch.zeros(1, 2, h, w)
    center[0, 0, 5, 5], center[0, 0, 5, 6] = 0.9, 0.0  # x: (5 + 0.9) * 0.8 and 6 * 0.8 m, 0.08 m apart
    dim = torch.zeros(1, 3, h, w)
    dim[0, 0], dim[0, 1] = math.log(4.0), math.log(1.0)
    rot = torch.zeros(1, 2, h, w)
    rot[0, 0, 5, 5] = 1.0            # yaw 0
    rot[0, 1, 5, 6] = 1.0            # yaw 90 degrees
    out = HeadOutput(heat, center, torch.zeros(1, 1, h, w), dim, rot)
    vox = cfg.voxelization
    keep = postprocess([out], cfg.class_groups(), cfg.head.post, vox.voxel_size, vox.point_cloud_range, 8)[0]
    assert len(keep.boxes) == 2
    cfg.head.post.nms_type = "axis_aligned"
    keep = postprocess([out], cfg.class_groups(), cfg.head.post, vox.voxel_size, vox.point_cloud_range, 8)[0]
    assert len(keep.boxes) == 1 and keep.boxes[0, 6].item() == pytest.approx(0.0)  # the better one, its heading kept
