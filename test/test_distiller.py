"""Distiller and KD recipes: loading and composing recipes, wiring checks, end-to-end training steps.

Models are sim zoo entries on a small square range (small_models.py).
"""
import pytest
import torch

from sparsekd_core.config import ConfigError
from sparsekd_core.kd.distiller import Distiller, DistillerError, decodable
from sparsekd_core.kd.recipe import KDRecipe, list_kd_recipes, load_kd_recipe
from sparsekd_core.models.detector import build_detector
from sparsekd_core.models.losses import clamped_sigmoid

from small_models import small


def scene(seed: int = 0, n: int = 300):
    """Two samples: points around a car and a pedestrian, and their boxes (the second sample has one box)."""
    g = torch.Generator().manual_seed(seed)
    car, ped = torch.tensor([4.0, 1.5, -1.0]), torch.tensor([7.5, -2.0, -1.0])
    def pts(centres):
        c = torch.stack(centres)[torch.randint(0, len(centres), (n,), generator=g)]
        xyz = c + torch.randn(n, 3, generator=g) * torch.tensor([0.7, 0.4, 0.3])
        return torch.cat([xyz, torch.rand(n, 1, generator=g)], dim=1)
    boxes = torch.tensor([[[4.0, 1.5, -1.0, 3.9, 1.6, 1.5, 0.2], [7.5, -2.0, -1.0, 0.8, 0.7, 1.7, 0.0]],
                          [[4.0, 1.5, -1.0, 3.9, 1.6, 1.5, 0.2], [0.0] * 7]])
    labels = torch.tensor([[0, 1], [0, -1]])
    return [pts([car, ped]), pts([car])], boxes, labels


# ----------------------------------------------------------------------------- recipes
def test_shipped_recipes_and_reference_weights():
    assert set(list_kd_recipes()) >= {"none", "logit", "pivotal", "feature", "mimic", "label", "tgi", "sparsekd",
                                      "as_reference"}
    assert load_kd_recipe("none").enabled_methods() == []
    sk = load_kd_recipe("sparsekd")
    assert sk.enabled_methods() == ["logit", "label", "tgi"]
    # the paper's recipe: teacher in train mode, label KD without NMS, ground truth first, outside centres dropped
    assert (sk.teacher_mode, sk.label.nms, sk.label.teacher_first) == ("train", False, False)
    assert sk.centres_outside_map == "drop"
    ref = load_kd_recipe("sparsekd,as_reference")  # the reference's two behaviours we do not default to
    assert (ref.teacher_mode, ref.label.teacher_first, ref.centres_outside_map) == ("train", True, "clamp")
    assert ref.enabled_methods() == ["logit", "label", "tgi"]
    voxel, pillar = sk.for_family("voxel"), sk.for_family("pillar")
    assert (voxel.logit.hm_weight, voxel.logit.reg_weight, voxel.label.score_thresholds) == (10.0, 0.2, [0.6])
    assert (pillar.logit.hm_weight, pillar.logit.reg_weight,
            pillar.label.score_thresholds) == (7.0, 0.0, [0.6, 0.5, 0.5])
    assert voxel.logit.mask.foreground and voxel.logit.mask.soft and voxel.logit.mask.rank == -1
    assert voxel.tgi.mode == "first"
    full = load_kd_recipe("logit").for_family("voxel").logit.mask
    assert not (full.foreground or full.soft)
    assert load_kd_recipe("feature").fitnet.weight == 0.1
    assert load_kd_recipe("mimic").mimic.grid == 7 and load_kd_recipe("mimic").mimic.roi_source == "gt"


def test_recipes_compose_left_to_right_and_resolve_per_student():
    r = load_kd_recipe("logit,label,tgi")
    assert r.name == "logit+label+tgi" and r.enabled_methods() == ["logit", "label", "tgi"]
    assert r.for_student(small("cp_pillar_v0.64_sim")).logit.hm_weight == 7.0
    assert r.for_student(small("cp_voxel_s_sim")).logit.hm_weight == 10.0
    assert load_kd_recipe("pivotal,logit").for_family("voxel").logit.mask.foreground is False  # later wins


def test_recipe_files_are_strict_and_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("logit: {enabled: true, hm_wieght: 3.0}\n")
    with pytest.raises(ConfigError, match="hm_wieght"):
        load_kd_recipe(str(bad))
    good = tmp_path / "mine.yaml"
    good.write_text("include: [pivotal]\nteacher_mode: train\nlogit: {hm_weight: 5.0}\n"
                    "tgi: {enabled: true, mode: l1}\n")
    r = load_kd_recipe(str(good))
    assert (r.name, r.teacher_mode, r.logit.enabled, r.logit.hm_weight,
            r.tgi.mode) == ("mine", "train", True, 5.0, "l1")
    with pytest.raises(ConfigError, match="unknown KD recipe"):
        load_kd_recipe("sparskd")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("tgi: {enabled: true, mode: random}\n")
    with pytest.raises(ConfigError, match="tgi.mode"):
        load_kd_recipe(str(wrong))


# ----------------------------------------------------------------------------- wiring
def test_teacher_required_and_models_must_match():
    student = build_detector(small("cp_pillar_v0.64_sim"))
    with pytest.raises(DistillerError, match="needs a teacher"):
        Distiller(student, None, load_kd_recipe("pivotal"))
    Distiller(student, None, KDRecipe())  # plain training needs none
    other = small("cp_pillar_sim")
    other.class_names = ["Vehicle", "Pedestrian", "Cyclist"]
    with pytest.raises(DistillerError, match="classes"):
        Distiller(student, build_detector(other), load_kd_recipe("logit"))


def test_teacher_is_frozen_hidden_and_moves_with_the_distiller():
    student, teacher = build_detector(small("cp_pillar_v0.64_sim")), build_detector(small("cp_pillar_sim"))
    d = Distiller(student, teacher, load_kd_recipe("feature,logit"))
    own = {id(p) for p in d.parameters()}
    assert all(id(p) not in own for p in teacher.parameters())
    assert all(not p.requires_grad for p in teacher.parameters())
    assert {k.split(".")[0] for k in d.state_dict()} == {"student"}  # 384 = 384 channels: no adapter needed
    d.double()
    assert next(teacher.parameters()).dtype == torch.float64


# ----------------------------------------------------------------------------- training steps
def _check_step(d: Distiller, expected_keys: set, seed: int = 0):
    points, boxes, labels = scene(seed)
    teacher_before = {k: v.clone() for k, v in d.teacher.state_dict().items()}
    d.train()
    losses = d(points, boxes, labels)
    assert set(losses) == expected_keys
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    parts = sum(v for k, v in losses.items() if k != "total")
    assert losses["total"].item() == pytest.approx(parts.item(), rel=1e-6)
    losses["total"].backward()
    grads = [p.grad for p in d.student.parameters()]
    assert sum(g.abs().sum().item() for g in grads if g is not None) > 0
    assert all(p.grad is None for p in d.teacher.parameters())
    for k, v in d.teacher.state_dict().items():  # weights and BN statistics untouched
        assert torch.equal(v, teacher_before[k]), k
    return losses


def test_voxel_sparsekd_step_with_tgi():
    torch.manual_seed(0)
    teacher = build_detector(small("cp_voxel_sim"))
    student = build_detector(small("cp_voxel_xxs_sim"))
    d = Distiller(student, teacher, load_kd_recipe("sparsekd"))
    result = d.init_student_from_teacher()
    assert result is not None
    assert torch.equal(student.state_dict()["backbone3d.conv_input.0.weight"],
                       teacher.state_dict()["backbone3d.conv_input.0.weight"][:8, ..., :4])
    losses = _check_step(d, {"hm", "loc", "kd_hm", "kd_reg", "total"})
    assert losses["kd_reg"].item() > 0
    assert "teacher_boxes" in d.last_stats


def test_kd_heatmap_term_is_the_masked_mse_of_the_two_models():
    """Recompute the full-map logit term from the two models' own outputs, on the teacher's grid."""
    torch.manual_seed(1)
    teacher = build_detector(small("cp_pillar_sim"))
    student = build_detector(small("cp_pillar_v0.64_sim"))
    d = Distiller(student, teacher, load_kd_recipe("logit"))
    points, boxes, labels = scene(1)
    d.train()
    losses = d(points, boxes, labels)
    with torch.no_grad():
        t = clamped_sigmoid(d.teacher_forward(points).head.heatmap)  # 32 x 32
        s = clamped_sigmoid(student(points).head.heatmap)  # 16 x 16, resized up as the reference does
        s = torch.nn.functional.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False)
        expected = 7.0 * ((s - t) ** 2).sum() / (t.shape[0] * t.shape[2] * t.shape[3])  # pillar weight 7
    assert teacher.training is False  # the logit recipe keeps the eval-mode teacher
    assert losses["kd_hm"].item() == pytest.approx(expected.item(), rel=1e-4)
    assert losses["kd_reg"].item() == 0.0  # reference pillar recipe: no regression KD across grids


def test_label_kd_boxes_feed_the_detection_loss_and_the_kd_mask_keeps_to_the_ground_truth():
    """sparsekd: the teacher's boxes join the student's detection targets; the KD mask and the regression-KD centres
    come from the teacher's targets of the ground truth alone (the reference's target_dicts_tea)."""
    torch.manual_seed(4)
    teacher = build_detector(small("cp_voxel_sim"))  # 16 x 16 map here, as the student's
    student = build_detector(small("cp_voxel_s_sim"))
    with torch.no_grad():  # a teacher sure of everything: every one of its top-500 cells is a label-KD box
        teacher.head.heads[0]["heatmap"][-1].bias.fill_(8.0)
    d = Distiller(student, teacher, load_kd_recipe("sparsekd"))
    points, boxes, labels = scene(4)
    d.train()
    losses = d(points, boxes, labels)
    assert teacher.training is True  # the paper's recipe: the teacher's BN on batch statistics
    # No NMS: hundreds of overlapping boxes per sample (NMS would leave a few), for the detection loss only.
    assert d.last_stats["teacher_boxes"] > 400
    with torch.no_grad():
        s_head = student(points).head
        t_head = d.teacher_forward(points).head
        hw = tuple(t_head.heatmap.shape[-2:])
        gt_only = teacher.assign_targets(boxes, labels, hw)[0]  # one task head
        assert int(gt_only.mask.sum()) == 3  # the scene's three boxes
        t_prob, s_prob = clamped_sigmoid(t_head.heatmap), clamped_sigmoid(s_head.heatmap)
        mask = t_prob.max(dim=1).values * gt_only.heatmap.max(dim=1).values  # confidence x gaussian
        expected_hm = 10.0 * (((s_prob - t_prob) ** 2) * mask.unsqueeze(1)).sum() / (mask.sum() + 1e-6)
        s_reg, t_reg = s_head.regression(), t_head.regression()
        expected_reg = 0.0
        for b, k in gt_only.mask.nonzero().tolist():  # L1 over the 8 codes at each gt centre, mean over 3 objects
            cell = gt_only.indices[b, k]
            expected_reg += (s_reg[b].flatten(1)[:, cell] - t_reg[b].flatten(1)[:, cell]).abs().sum() / 3
        # the detection targets: ground truth + label-KD boxes, far more cells and centres than the ground truth's
        preds = d.label_kd.teacher_boxes(teacher, decodable(d.teacher_forward(points)))
        merged = student.assign_targets(*d.label_kd(preds, boxes, labels)[:2], hw)[0]
    assert losses["kd_hm"].item() == pytest.approx(expected_hm.item(), rel=1e-4)
    assert losses["kd_reg"].item() == pytest.approx(0.2 * expected_reg.item(), rel=1e-4)
    assert int(merged.mask.sum()) > 100
    assert int((merged.heatmap.max(dim=1).values > 0).sum()) > 2 * int((mask > 0).sum())


@pytest.mark.parametrize("recipe,keys", [
    ("sparsekd", {"hm", "loc", "kd_hm", "kd_reg", "total"}),
    ("feature,mimic", {"hm", "loc", "kd_feat", "kd_mimic", "total"}),
])
def test_pillar_pair_steps_across_voxel_sizes(recipe, keys):
    torch.manual_seed(2)
    teacher = build_detector(small("cp_pillar_sim"))  # 0.32 m pillars: 32 x 32 map here
    student = build_detector(small("cp_pillar_v0.64_sim"))  # 0.64 m pillars: 16 x 16
    d = Distiller(student, teacher, load_kd_recipe(recipe))
    d.init_student_from_teacher()
    _check_step(d, keys, seed=2)
    if "mimic" in recipe:
        assert d.last_stats["mimic_rois"] == 3.0  # the three ground-truth boxes of the scene


def test_train_mode_teacher_keeps_its_statistics_and_adapters_train():
    torch.manual_seed(3)
    teacher = build_detector(small("cp_voxel_sim"))
    student = build_detector(small("cp_voxel_s_sim"))  # 256 BEV channels vs the teacher's 512: an adapter
    recipe = load_kd_recipe("feature")
    recipe.teacher_mode = "train"
    d = Distiller(student, teacher, recipe)
    assert any(k.startswith("fitnet.adapter") for k in d.state_dict())
    _check_step(d, {"hm", "loc", "kd_feat", "total"}, seed=3)
    assert teacher.training is True
    assert d.fitnet.adapter.conv.weight.grad.abs().sum() > 0
