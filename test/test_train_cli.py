"""sparsekd-train end to end on a toy KITTI-layout dataset: infos built on the fly, training, evaluation with
the KITTI metric, a loadable final model; distillation with TGI; recipes; clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sparsekd_core.checkpoint import load_model, read_checkpoint, save_checkpoint, write_untrained_checkpoint
from sparsekd_core.cli.train import build_parser, main, options_from_args
from sparsekd_core.config import load_model_config
from sparsekd_core.data.infos import dbinfos_relpath, infos_path
from sparsekd_core.data.kitti_format import read_label
from sparsekd_core.train.precision import cpu_has_native_bf16
from sparsekd_core.train.recipe import list_recipes, load_recipe
from sparsekd_core.train.synthetic import GROUND_Z, write_toy_kitti

RANGE = "point_cloud_range: [0.0, -6.4, -3.0, 12.8, 6.4, 1.0]"
TINY_STUDENT = f"base: cp_voxel_xxs_sim\nvoxelization:\n  voxel_size: [0.2, 0.2, 0.1]\n  {RANGE}\n"
TINY_TEACHER = f"base: cp_voxel_sim\nvoxelization:\n  voxel_size: [0.2, 0.2, 0.1]\n  {RANGE}\n"
# the pillar pair on two grids, as the reference's pillar students: 0.64 m student, 0.32 m teacher
PILLAR_STUDENT = f"base: cp_pillar_v0.64_sim\nvoxelization:\n  voxel_size: [0.64, 0.64, 4.0]\n  {RANGE}\n"
PILLAR_TEACHER = f"base: cp_pillar_sim\nvoxelization:\n  voxel_size: [0.32, 0.32, 4.0]\n  {RANGE}\n"
# an anchor-head pair (PointPillars, half-width student) on the same small range
ANCHOR_STUDENT = f"base: pointpillar_s_sim\nvoxelization:\n  {RANGE}\n"
ANCHOR_TEACHER = f"base: pointpillar_sim\nvoxelization:\n  {RANGE}\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    (root / "student.yaml").write_text(TINY_STUDENT)
    (root / "teacher.yaml").write_text(TINY_TEACHER)
    (root / "pillar_student.yaml").write_text(PILLAR_STUDENT)
    (root / "pillar_teacher.yaml").write_text(PILLAR_TEACHER)
    (root / "anchor_student.yaml").write_text(ANCHOR_STUDENT)
    (root / "anchor_teacher.yaml").write_text(ANCHOR_TEACHER)
    cfg = load_model_config(root / "student.yaml")
    write_toy_kitti(root / "kitti", cfg.voxelization.point_cloud_range, cfg.class_names, n_train=4, n_val=2)
    return root


def _common(toy, out):
    return ["--data", str(toy / "kitti"), "--out", str(out), "--batch-size", "2", "--workers", "0",
            "--device", "cpu", "--quiet"]


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for needle in ("examples:", "--kd", "sparsekd", "torchrun", "--resume", "--teacher", "summary.json"):
        assert needle in text


def test_train_evaluate_and_load_the_model(toy, tmp_path):
    out = tmp_path / "run"
    rc = main(["--model", str(toy / "student.yaml"), "--epochs", "2", "--keep-last", "1", *_common(toy, out)])
    assert rc == 0
    data = toy / "kitti"
    assert infos_path(data, "kitti", "train").is_file() and infos_path(data, "kitti", "val").is_file()
    assert (data / dbinfos_relpath("kitti")).is_file()  # gt database built for gt-sampling
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert (summary["train_frames"], summary["val_frames"], summary["steps"],
            summary["epochs_completed"]) == (4, 2, 4, 2)
    assert set(summary["final_losses"]) == {"hm", "loc", "total"}
    assert summary["step_time_s"]["median"] > 0
    # mixed precision by default: bf16 where this CPU multiplies it natively, else fp32 (train/precision.py)
    assert summary["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert summary["amp"] is (summary["precision"] != "fp32")
    # evaluated with the KITTI metric and recall on every val ground truth
    val_labels = [o.type for fid in ("000004", "000005") for o in read_label(data / "training/label_2" / f"{fid}.txt")]
    recall = summary["final_metrics"]["recall"]
    assert sum(recall["num_gt"].values()) == len(val_labels)
    assert {"Car/3d/moderate", "mean/3d/moderate", "mean/bev/moderate"} <= set(summary["metrics"])
    assert summary["final_metrics"]["result"]["benchmark"] == "kitti"
    # one training checkpoint kept, TensorBoard and jsonl logs written
    assert [p.name for p in out.glob("ckpt_*.pth")] == ["ckpt_e002_s0000004.pth"]
    assert list((out / "tensorboard").iterdir())
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [4]
    # the final model runs through the inference API
    from sparsekd_core.inference import load_detector

    det = load_detector(out / "final.pth", device="cpu")
    assert det.class_names == ("Car", "Pedestrian", "Cyclist")
    # the training data's ground height is recorded for the node's mounting check (toy scenes: flat at GROUND_Z)
    assert det.meta["ground_z"] == pytest.approx(GROUND_Z, abs=0.02)
    assert det.expected_ground() == (det.meta["ground_z"], "recorded in the checkpoint (meta 'ground_z')")
    points = np.fromfile(data / "training/velodyne/000004.bin", dtype=np.float32).reshape(-1, 4)
    dets = det(points)
    assert dets.boxes.shape[1] == 7 and len(dets.scores) == len(dets.boxes)


def test_distillation_with_tgi(toy, tmp_path):
    # seed 5, not the run's 0: same-seed random inits would share their first channels and hide TGI
    teacher = write_untrained_checkpoint(str(toy / "teacher.yaml"), tmp_path / "teacher.pth", seed=5)
    out = tmp_path / "kd"
    rc = main(["--model", str(toy / "student.yaml"), "--teacher", str(teacher), "--kd", "sparsekd",
               "--epochs", "2", "--max-steps", "2", "--no-eval", "--no-amp", *_common(toy, out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped_at_max_steps" and summary["steps"] == 2
    assert summary["precision"] == "fp32" and summary["amp"] is False  # --no-amp
    assert summary["kd_recipe"]["name"] == "sparsekd" and summary["kd_recipe"]["tgi"]["enabled"]
    assert {"kd_hm", "kd_reg"} <= set(summary["final_losses"])
    # TGI: the student started from the teacher's first channels; two small steps later it is still close to
    # them (a random initialisation is not: its weights are of the same order as the teacher's)
    t = read_checkpoint(teacher)["state_dict"]["backbone3d.conv_input.0.weight"]
    s = read_checkpoint(sorted(out.glob("ckpt_*.pth"))[-1])["state_dict"]["backbone3d.conv_input.0.weight"]
    narrowed = t[: s.shape[0], ..., : s.shape[-1]]
    assert (s - narrowed).abs().max() < 0.2 * narrowed.abs().max()


def test_pretrained_weights_replace_tgi_and_mismatches_are_refused(toy, tmp_path, capsys):
    # an earlier student, stored in fp16 as the bundled ones are
    earlier, _ = load_model(write_untrained_checkpoint(str(toy / "student.yaml"), tmp_path / "s.pth", seed=11))
    pretrained = save_checkpoint(tmp_path / "s16.pth", earlier, fp16=True)
    teacher = write_untrained_checkpoint(str(toy / "teacher.yaml"), tmp_path / "teacher.pth", seed=5)
    out = tmp_path / "more"
    # sparsekd's recipe asks for TGI; --pretrained replaces it. A tiny lr keeps the one step from moving the weights
    rc = main(["--model", str(toy / "student.yaml"), "--teacher", str(teacher), "--kd", "sparsekd",
               "--pretrained", str(pretrained), "--lr", "1e-12", "--epochs", "2", "--max-steps", "1", "--no-eval",
               *_common(toy, out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pretrained"] == str(pretrained) and summary["config"]["pretrained"] == str(pretrained)
    assert summary["kd_recipe"]["tgi"]["enabled"] and summary["steps"] == 1
    key = "backbone3d.conv_input.0.weight"
    started = read_checkpoint(sorted(out.glob("ckpt_*.pth"))[-1])["state_dict"][key]
    stored = read_checkpoint(pretrained)["state_dict"][key]
    assert stored.dtype == torch.float16 and started.dtype == torch.float32
    assert (started - stored.float()).abs().max() < 1e-6
    narrowed = read_checkpoint(teacher)["state_dict"][key][: started.shape[0], ..., : started.shape[-1]]
    assert (started - narrowed).abs().max() > 0.1 * narrowed.abs().max()  # not the teacher's channels (TGI)

    # weights of another architecture, or of other classes, are refused with the reason
    rc = main(["--model", str(toy / "student.yaml"), "--pretrained", str(teacher), "--max-steps", "1",
               *_common(toy, tmp_path / "wrong")])
    err = capsys.readouterr().err
    assert rc == 1 and "--pretrained" in err and "with another shape" in err
    (tmp_path / "reordered.yaml").write_text(TINY_STUDENT + "class_names: [Pedestrian, Car, Cyclist]\n")
    other = write_untrained_checkpoint(str(tmp_path / "reordered.yaml"), tmp_path / "reordered.pth")
    rc = main(["--model", str(toy / "student.yaml"), "--pretrained", str(other), "--max-steps", "1",
               *_common(toy, tmp_path / "classes")])
    err = capsys.readouterr().err
    assert rc == 1 and "same classes in the same order" in err and "['Pedestrian', 'Car', 'Cyclist']" in err


def test_pretrained_parts_warm_start_one_part_from_another_width(toy, tmp_path, capsys):
    """--pretrained-parts backbone3d: a teacher's sparse backbone starts from a half-width student's (same 3D
    layers, narrower 2D backbone and head, and here other classes: they need not match when the head is not
    loaded); the 2D backbone does not fit and is not loaded."""
    (tmp_path / "s.yaml").write_text(TINY_TEACHER.replace("cp_voxel_sim", "cp_voxel_s_sim")
                                     + "class_names: [Pedestrian, Car, Cyclist]\n")
    student = write_untrained_checkpoint(str(tmp_path / "s.yaml"), tmp_path / "s.pth", seed=11)
    out = tmp_path / "warm"
    rc = main(["--model", str(toy / "teacher.yaml"), "--pretrained", str(student), "--pretrained-parts", "backbone3d",
               "--lr", "1e-12", "--epochs", "2", "--max-steps", "1", "--no-eval", *_common(toy, out)])
    assert rc == 0
    assert json.loads((out / "summary.json").read_text())["pretrained_parts"] == ["backbone3d"]
    started = read_checkpoint(sorted(out.glob("ckpt_*.pth"))[-1])["state_dict"]
    stored = read_checkpoint(student)["state_dict"]
    # learnt tensors (a training step moves BN running statistics, and the lr of 1e-12 nothing else)
    sparse = [k for k in started if k.startswith("backbone3d.") and k.endswith(("weight", "bias"))]
    assert sparse and all((started[k] - stored[k]).abs().max() < 1e-6 for k in sparse)
    dense = "backbone2d.blocks.0.1.weight"
    assert started[dense].shape != stored[dense].shape  # the part it could not take stays the teacher's own

    rc = main(["--model", str(toy / "teacher.yaml"), "--pretrained", str(student), "--pretrained-parts", "neck",
               "--max-steps", "1", *_common(toy, tmp_path / "unknown")])
    err = capsys.readouterr().err
    assert rc == 1 and "--pretrained-parts neck: not a part of" in err and "backbone3d" in err
    rc = main(["--model", str(toy / "teacher.yaml"), "--pretrained", str(student), "--pretrained-parts",
               "backbone3d,head", "--max-steps", "1", *_common(toy, tmp_path / "head")])
    assert rc == 1 and "same classes in the same order" in capsys.readouterr().err
    rc = main(["--model", str(toy / "teacher.yaml"), "--pretrained-parts", "backbone3d", "--max-steps", "1",
               *_common(toy, tmp_path / "alone")])
    assert rc != 0 and "give --pretrained CKPT too" in capsys.readouterr().err


def test_widen_grows_a_teacher_that_starts_as_its_student(toy, tmp_path, capsys):
    """--pretrained S --widen: the teacher's run starts from the half-width student written into its first channels,
    the weights from its other channels into them zero; the summary says so. Wrong uses fail with the fix."""
    (tmp_path / "s.yaml").write_text(TINY_TEACHER.replace("cp_voxel_sim", "cp_voxel_s_sim"))
    student = write_untrained_checkpoint(str(tmp_path / "s.yaml"), tmp_path / "s.pth", seed=11)
    out = tmp_path / "grown"
    rc = main(["--model", str(toy / "teacher.yaml"), "--pretrained", str(student), "--widen",
               "--lr", "1e-12", "--epochs", "2", "--max-steps", "1", "--no-eval", *_common(toy, out)])
    assert rc == 0
    assert json.loads((out / "summary.json").read_text())["config"]["widen_pretrained"] is True
    started = read_checkpoint(sorted(out.glob("ckpt_*.pth"))[-1])["state_dict"]
    stored = read_checkpoint(student)["state_dict"]
    key = "backbone2d.blocks.0.4.weight"  # 128 -> 128 in the teacher, 64 -> 64 in the student
    assert (started[key][:64, :64] - stored[key]).abs().max() < 1e-6
    assert started[key][:64, 64:].abs().max() < 1e-6 < started[key][64:].abs().max()
    assert torch.equal(started["backbone3d.conv_input.0.weight"].float(),
                       stored["backbone3d.conv_input.0.weight"].float())

    rc = main(["--model", str(toy / "teacher.yaml"), "--widen", "--max-steps", "1", *_common(toy, tmp_path / "a")])
    assert rc != 0 and "give --pretrained CKPT too" in capsys.readouterr().err
    rc = main(["--model", str(toy / "student.yaml"), "--pretrained", str(student), "--widen", "--max-steps", "1",
               *_common(toy, tmp_path / "narrower")])  # the xxs student is narrower than the S one given
    err = capsys.readouterr().err
    assert rc == 1 and "--widen needs a narrower model" in err
    rc = main(["--model", str(toy / "teacher.yaml"), "--pretrained", str(student), "--widen", "--pretrained-parts",
               "backbone3d", "--max-steps", "1", *_common(toy, tmp_path / "parts")])
    assert rc == 1 and "drop --pretrained-parts" in capsys.readouterr().err


def test_pillar_student_distils_from_a_finer_grid_and_evaluates(toy, tmp_path):
    teacher = write_untrained_checkpoint(str(toy / "pillar_teacher.yaml"), tmp_path / "teacher.pth", seed=5)
    out = tmp_path / "pillar"
    rc = main(["--model", str(toy / "pillar_student.yaml"), "--teacher", str(teacher), "--kd", "sparsekd",
               "--epochs", "1", *_common(toy, out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2
    # the pillar family's reference weights were resolved for this student
    assert summary["kd_recipe"]["logit"]["hm_weight"] == 7.0 and summary["kd_recipe"]["logit"]["reg_weight"] == 0.0
    assert summary["kd_recipe"]["label"]["score_thresholds"] == [0.6, 0.5, 0.5]
    assert summary["final_losses"]["kd_hm"] > 0
    # evaluation decoded the pillar head's (channels-last) maps
    assert summary["final_metrics"]["recall"]["num_gt"] and "mean/bev/moderate" in summary["metrics"]


def test_anchor_head_student_distils_with_sparsekd_and_evaluates(toy, tmp_path):
    """sparsekd-train --model <PointPillars student> --teacher T.pth --kd sparsekd: the authors' anchor recipe,
    every loss term, TGI, and an evaluation that decodes the anchor head."""
    teacher = write_untrained_checkpoint(str(toy / "anchor_teacher.yaml"), tmp_path / "teacher.pth", seed=5)
    out = tmp_path / "anchor"
    rc = main(["--model", str(toy / "anchor_student.yaml"), "--teacher", str(teacher), "--kd", "sparsekd",
               "--epochs", "1", *_common(toy, out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert summary["kd_recipe"]["logit"]["hm_weight"] == 15.0 and summary["kd_recipe"]["logit"]["reg_weight"] == 0.2
    assert summary["kd_recipe"]["tgi"]["enabled"]
    assert {"cls", "loc", "dir", "kd_hm", "kd_reg"} <= set(summary["final_losses"])
    assert summary["final_metrics"]["recall"]["num_gt"] and "mean/bev/moderate" in summary["metrics"]


def test_kd_errors_say_what_to_do(toy, tmp_path, capsys):
    rc = main(["--model", str(toy / "student.yaml"), "--kd", "sparsekd", "--max-steps", "1", *_common(toy, tmp_path)])
    assert rc == 1 and "teacher" in capsys.readouterr().err
    teacher = write_untrained_checkpoint(str(toy / "teacher.yaml"), tmp_path / "t.pth")
    rc = main(["--model", str(toy / "student.yaml"), "--teacher", str(teacher), "--max-steps", "1",
               *_common(toy, tmp_path)])
    assert rc == 1 and "--kd is none" in capsys.readouterr().err
    rc = main(["--model", str(toy / "student.yaml"), "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert rc == 1 and "no such directory" in capsys.readouterr().err
    rc = main(["--model", "cp_voxel_s", "--max-steps", "1", *_common(toy, tmp_path)])  # Waymo model on KITTI
    assert rc == 1 and "point_features ['elongation']" in capsys.readouterr().err
    (tmp_path / "vehicle.yaml").write_text(TINY_STUDENT + "class_names: [Vehicle]\n")
    rc = main(["--model", str(tmp_path / "vehicle.yaml"), "--max-steps", "1", *_common(toy, tmp_path)])
    assert rc == 1 and "none of the model's classes ['Vehicle']" in capsys.readouterr().err


def test_recipes_load_and_flags_override_them():
    names = list_recipes()
    assert "waymo_cp_voxel_s_sparsekd" in names and "kitti_cp_voxel" in names
    for name in names:  # every bundled recipe points at real models and KD recipes
        r = load_recipe(name)
        load_model_config(r.model)
        if r.teacher_model:
            load_model_config(r.teacher_model)
            assert r.kd != "none"
    r = load_recipe("waymo_cp_voxel_xxs_sparsekd")
    assert (r.epochs, r.batch_size, r.waymo_interval, r.paper["with_sparsekd"]) == (30, 4, 5, 59.28)
    from sparsekd_core.kd.recipe import load_kd_recipe

    kd = load_kd_recipe(r.kd).for_student(load_model_config(r.model))
    assert kd.logit.hm_weight == 15.0 and kd.teacher_mode == "train" and kd.tgi.enabled
    pillar = load_recipe("waymo_cp_pillar_v0.64_sparsekd")
    kd = load_kd_recipe(pillar.kd).for_student(load_model_config(pillar.model))
    assert kd.logit.hm_weight == 7.0 and kd.label.score_thresholds == [0.6, 0.5, 0.5] and pillar.batch_size == 2

    args = build_parser().parse_args(["--recipe", "waymo_cp_voxel_s_sparsekd", "--epochs", "2", "--teacher", "t.pth"])
    options, recipe = options_from_args(args)
    assert (options.model, options.epochs, options.batch_size, options.teacher) == ("cp_voxel_s", 2, 4, "t.pth")
    assert options.kd.endswith("sparsekd_voxel_s.yaml") and options.waymo_interval == 5
    assert options.extra_meta["paper"]["with_sparsekd"] == 64.25
