"""sparsekd-export: ONNX files that onnx's checker accepts and onnxruntime runs to torch's maps,
in Autoware's layout."""
from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
import torch
import yaml

from sparsekd_core.cli.export import main
from sparsekd_core.export import autoware as aw
from sparsekd_core.export.autoware_params import node_params
from sparsekd_core.export.exporter import frame_points, load_source
from sparsekd_core.export.verify import autoware_voxels, check_autoware_files, map_difference
from sparsekd_core.models.decode import decode_maps
from sparsekd_core.ops.voxelize import VoxelBatch

TOL = 1e-4  # onnxruntime vs torch, fp32, per map


def _onnx_signature(path):
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    def dtype(v):
        return onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)

    return ([(i.name, dims(i), dtype(i)) for i in proto.graph.input],
            [(o.name, dims(o), dtype(o)) for o in proto.graph.output])


@pytest.mark.parametrize("model, inputs", [
    ("cp_pillar_v0.64", [("voxels", ["num_voxels", 64, 4], np.float32), ("num_points", ["num_voxels"], np.int32),
                         ("coords", ["num_voxels", 4], np.int32)]),
    ("cp_voxel_s", [("bev_features", ["batch", 256, 102, 102], np.float32)]),
])
def test_onnx_export_runs_to_the_torch_maps(model, inputs, tmp_path, capsys):
    assert main([model, "--format", "onnx", "--out", str(tmp_path)]) == 0
    ins, outs = _onnx_signature(tmp_path / f"{model}.onnx")
    assert ins == inputs
    # the 360-degree students, heading axis_dir: pillar BEV 128 x 128 (batch 1: the pillar scatter's), voxel 102 x 102
    pillar = model.startswith("cp_pillar")
    batch, hw = (1, [128, 128]) if pillar else ("batch", [102, 102])
    maps = (("heatmap", 3), ("center", 2), ("center_z", 1), ("dim", 3), ("rot", 2), ("direction", 1))
    assert outs == [(n, [batch, c] + hw, np.float32) for n, c in maps]
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert set(report["max_diff"]) == {n for n, _ in maps}
    assert all(0 <= d < TOL for d in report["max_diff"].values()), report["max_diff"]
    assert "heatmap:" in capsys.readouterr().out


def _stock_width_config(tmp_path):
    path = tmp_path / "pillar_w32.yaml"
    path.write_text("base: cp_pillar_v0.64_sim\nvfe: {filters: [32, 32]}\nbev: {num_features: 32}\n")
    return path


def test_autoware_export_has_autoware_names_shapes_and_params(tmp_path):
    out = tmp_path / "aw"
    assert main([str(_stock_width_config(tmp_path)), "--untrained", "--format", "autoware", "--out", str(out),
                 "--name", "student"]) == 0
    enc_in, enc_out = _onnx_signature(out / "pts_voxel_encoder_student.onnx")
    assert enc_in == [("input_features", ["num_voxels", "num_max_points", 9], np.float32)]
    assert enc_out == [("pillar_features", ["num_voxels", 1, 32], np.float32)]
    head_in, head_out = _onnx_signature(out / "pts_backbone_neck_head_student.onnx")
    assert head_in == [("spatial_features", ["batch_size", 32, "H", "W"], np.float32)]
    assert [(n, d[1]) for n, d, _ in head_out] == [("heatmap", 3), ("reg", 2), ("height", 1), ("dim", 3), ("rot", 2),
                                                   ("vel", 2)]
    ml = yaml.safe_load((out / "student_ml_package.param.yaml").read_text())["/**"]["ros__parameters"]["model_params"]
    assert ml == {"class_names": ["CAR", "PEDESTRIAN", "BICYCLE"], "point_feature_size": 4, "max_voxel_size": 20000,
                  "point_cloud_range": [0.0, -15.36, -3.0, 30.72, 15.36, 1.0], "voxel_size": [0.64, 0.64, 4.0],
                  "downsample_factor": 1, "encoder_in_feature_size": 9, "has_variance": False, "has_twist": False}
    node = yaml.safe_load((out / "student.param.yaml").read_text())["/**"]["ros__parameters"]
    assert node["encoder_onnx_path"] == "$(var model_path)/pts_voxel_encoder_$(var model_name).onnx"
    assert node["head_onnx_path"] == "$(var model_path)/pts_backbone_neck_head_$(var model_name).onnx"
    assert node["post_process_params"]["yaw_norm_thresholds"] == [0.3, 0.0, 0.3]
    assert node["densification_params"]["num_past_frames"] == 0  # one sweep: the current one only
    remap = yaml.safe_load((out / "detection_class_remapper.param.yaml").read_text())["/**"]["ros__parameters"]
    assert {len(v) for v in remap.values()} == {64} and not any(any(v) for v in remap.values())
    report = json.loads((out / "export_report.json").read_text())
    assert set(report["max_diff"]) == {"pillar_features", *aw.HEAD_OUTPUTS}
    assert all(d < TOL for d in report["max_diff"].values()), report["max_diff"]
    assert report["max_diff"]["vel"] == 0.0
    assert not any("encoder_out_feature_size_" in n for n in report["notes"])  # 32 channels: stock Autoware


@pytest.fixture(scope="module")
def bundled_pillar():
    model, _ = load_source("cp_pillar_v0.64")
    return model


@pytest.fixture(scope="module")
def patched_export(tmp_path_factory):
    """The bundled cp_pillar_v0.64 (64 pillar channels) exported for a patched Autoware, as the README's command."""
    out = tmp_path_factory.mktemp("aw_patched")
    assert main(["cp_pillar_v0.64", "--format", "autoware", "--out", str(out)]) == 0
    return out


def test_zoo_pillar_width_exports_with_a_warning_or_is_refused_for_stock(patched_export, tmp_path, capsys):
    assert main(["cp_pillar_v0.64", "--format", "autoware", "--out", str(tmp_path), "--stock-autoware"]) == 2
    err = capsys.readouterr().err
    assert "64 output channels" in err and "encoder_out_feature_size_" in err and "--stock-autoware" in err
    assert not list(tmp_path.glob("*.onnx"))
    report = json.loads((patched_export / "export_report.json").read_text())
    assert all(d < TOL for d in report["max_diff"].values()), report["max_diff"]
    assert any("set it to 64" in n for n in report["notes"])
    assert any("intensity to 0" in n for n in report["notes"])


def test_voxel_models_are_refused_for_autoware_naming_the_pillar_family(tmp_path, capsys):
    assert main(["cp_voxel_s", "--format", "autoware", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "voxel model" in err and "pillar family" in err and "--format onnx" in err


def test_unknown_class_names_need_explicit_autoware_names(tmp_path, capsys):
    path = tmp_path / "odd.yaml"
    path.write_text(f"base: {_stock_width_config(tmp_path)}\nclass_names: [Vehicle, Dog, Cyclist]\n")
    assert main([str(path), "--untrained", "--format", "autoware", "--out", str(tmp_path / "x")]) == 2
    assert "Dog" in capsys.readouterr().err


def test_encoder_input_is_autoware_feature_layout():
    # one pillar at column 2, row 1 of a 0.5 m grid from (-1, -1, -2); two real points, one padded slot
    pts = torch.tensor([[[0.1, -0.3, 0.5, 7.0], [0.3, -0.1, 1.5, 9.0], [0, 0, 0, 0]]])
    vb = VoxelBatch(pts, torch.tensor([2], dtype=torch.int32), torch.tensor([[0, 0, 1, 2]], dtype=torch.int32), 1)
    feats = aw.encoder_input(vb, [0.5, 0.5, 6.0], [-1.0, -1.0, -2.0, 1.0, 1.0, 4.0])
    centre_x, centre_y = -1.0 + 2 * 0.5 + 0.25, -1.0 + 1 * 0.5 + 0.25
    want = [[0.1, -0.3, 0.5, 0.0, -0.1, -0.1, -0.5, 0.1 - centre_x, -0.3 - centre_y],
            [0.3, -0.1, 1.5, 0.0, 0.1, 0.1, 0.5, 0.3 - centre_x, -0.1 - centre_y],
            [0.0] * 9]
    assert torch.allclose(feats[0], torch.tensor(want), atol=1e-6)


def test_autoware_decoding_of_exported_maps_gives_our_boxes(bundled_pillar, patched_export):
    """Autoware's decoding (reg, height, dim, rot conventions, mmdet yaw) of the exported head's maps gives the
    boxes our decoder reads from torch's maps: the conventions are converted, not just copied."""
    model = bundled_pillar
    layout = aw.check_autoware(model, allow_patch=True)
    points = frame_points(model)
    _, got = check_autoware_files(model, patched_export / aw.encoder_file("cp_pillar_v0.64"),
                                  patched_export / aw.head_file("cp_pillar_v0.64"), layout, points)
    with torch.no_grad():
        head = model.forward_voxels(autoware_voxels(model, points)).head
    vox = model.cfg.voxelization
    boxes, scores, _, _ = decode_maps(head, 20, vox.voxel_size, vox.point_cloud_range, model.cfg.head.feature_stride)
    h, w = head.heatmap.shape[-2:]
    cells = head.heatmap.sigmoid().reshape(1, -1).topk(20).indices[0] % (h * w)  # decode_maps' top 20, in order
    assert scores[0, 0] > 0.3  # a trained model: real objects
    for k, cell in enumerate(cells.tolist()):
        row, col = divmod(cell, w)
        ours = boxes[0, k].tolist()
        theirs = aw.decode_cell(got, row, col, layout)
        assert theirs["x"] == pytest.approx(ours[0], abs=1e-3) and theirs["y"] == pytest.approx(ours[1], abs=1e-3)
        assert theirs["z"] == pytest.approx(ours[2], abs=1e-3)
        assert (theirs["length"], theirs["width"], theirs["height"]) == pytest.approx(tuple(ours[3:6]), rel=1e-3)
        dyaw = (theirs["yaw"] - ours[6] + math.pi) % (2 * math.pi) - math.pi
        assert abs(dyaw) < 1e-3


def test_multi_sweep_model_gets_autoware_time_lag_and_past_frames(tmp_path):
    """A time_lag model: Autoware's 4th feature reaches the model's time_lag input, and the node is told to merge
    as many sweeps as the model was trained with."""
    path = tmp_path / "sweeps_w32.yaml"
    path.write_text("base: cp_pillar_v0.64_3sweeps_sim\nvfe: {filters: [32, 32]}\nbev: {num_features: 32}\n")
    model, _ = load_source(str(path), untrained=True)
    layout = aw.check_autoware(model)
    assert layout.past_frames == 2 and not layout.has_twist
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(3000, 6, generator=g) * torch.tensor([50.0, 50.0, 5.0, 1.0, 1.0, 0.0]) - torch.tensor(
        [25.0, 25.0, 1.5, 0.0, 0.0, 0.0])
    pts[:, 5] = (torch.arange(3000) % 3) * 0.1  # three sweeps, 0.1 s apart
    vb = autoware_voxels(model, pts)
    assert vb.voxels[..., 5].max() == pytest.approx(0.2) and vb.voxels[..., 3:5].abs().max() == 0
    feats = aw.encoder_input(vb, layout.voxel_size, layout.point_cloud_range, time_lag_column=5)
    with torch.no_grad():
        got = aw.AutowareEncoder(model)(feats)[:, 0]
        want = model.vfe(vb)
    assert torch.allclose(got, want, atol=1e-5)
    with torch.no_grad():  # and the time lag matters: zeroing it changes the pillar features
        assert not torch.allclose(aw.AutowareEncoder(model)(aw.encoder_input(vb, layout.voxel_size,
                                                                             layout.point_cloud_range))[:, 0], want)
    assert node_params(layout, 0.35, "fp16")["densification_params"]["num_past_frames"] == 2


def test_multi_head_models_export_dense_but_not_to_autoware(tmp_path):
    path = tmp_path / "two_heads.yaml"
    path.write_text("base: cp_pillar_v0.64_sim\nhead: {class_groups: [[Car], [Pedestrian, Cyclist]], velocity: true, "
                    "loss: {code_weights: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}}\n")
    assert main([str(path), "--untrained", "--format", "onnx", "--out", str(tmp_path / "o"), "--name", "two"]) == 0
    _, outs = _onnx_signature(tmp_path / "o/two.onnx")
    assert [n for n, _, _ in outs] == [f"{m}_{i}" for i in (0, 1)
                                       for m in ("heatmap", "center", "center_z", "dim", "rot", "vel")]
    assert [d[1] for n, d, _ in outs if n.startswith("heatmap")] == [1, 2]
    report = json.loads((tmp_path / "o/export_report.json").read_text())
    assert len(report["max_diff"]) == 12 and all(d < TOL for d in report["max_diff"].values())
    with pytest.raises(aw.ExportError, match="2 task heads"):
        aw.check_autoware(load_source(str(path), untrained=True)[0], allow_patch=True)


def test_autoware_layout_notes_the_square_footprint_autoware_does_not_apply(tmp_path):
    path = tmp_path / "square_w32.yaml"
    path.write_text("base: cp_pillar_v0.64_sim\nvfe: {filters: [32, 32]}\nbev: {num_features: 32}\n"
                    "head: {post: {square_footprint: [Pedestrian]}}\n")
    notes = aw.check_autoware(load_source(str(path), untrained=True)[0]).notes
    assert any("Pedestrian boxes as the network decodes them" in n for n in notes)
    path.write_text("base: cp_pillar_v0.64_sim\nvfe: {filters: [32, 32]}\nbev: {num_features: 32}\n")
    assert not any("square" in n for n in aw.check_autoware(load_source(str(path), untrained=True)[0]).notes)


def test_autoware_layout_notes_the_overhead_check_autoware_does_not_make(tmp_path):
    path = tmp_path / "overhead_w32.yaml"
    path.write_text("base: cp_pillar_v0.64_sim\nvfe: {filters: [32, 32]}\nbev: {num_features: 32}\n"
                    "head: {post: {clear_overhead: [Pedestrian, Cyclist]}}\n")
    notes = aw.check_autoware(load_source(str(path), untrained=True)[0]).notes
    assert any("Pedestrian, Cyclist boxes whatever lies over them" in n for n in notes)
    path.write_text("base: cp_pillar_v0.64_sim\nvfe: {filters: [32, 32]}\nbev: {num_features: 32}\n")
    assert not any("clear_overhead" in n for n in aw.check_autoware(load_source(str(path), untrained=True)[0]).notes)


def test_autoware_layout_notes_the_test_time_flip_autoware_does_not_run(tmp_path):
    path = tmp_path / "flip_w32.yaml"
    path.write_text("base: cp_pillar_v0.64_sim\nvfe: {filters: [32, 32]}\nbev: {num_features: 32}\n"
                    "head: {post: {tta_flip: true}}\n")
    notes = aw.check_autoware(load_source(str(path), untrained=True)[0]).notes
    assert any("mirror image" in n and "--tta-flip off" in n for n in notes)
    path.write_text("base: cp_pillar_v0.64_sim\nvfe: {filters: [32, 32]}\nbev: {num_features: 32}\n")
    assert not any("mirror" in n for n in aw.check_autoware(load_source(str(path), untrained=True)[0]).notes)


def test_the_check_holds_large_maps_to_relative_and_small_maps_to_absolute_precision():
    """A logit of -140 that comes out 3.5e-4 apart is float32 rounding (2.5e-6 of it); on a map of values under 1
    the same difference counts in full, and a shape mismatch is an error, not a number."""
    assert map_difference(np.array([[-140.00035, 1.0]]), np.array([[-140.0, 1.0]])) == pytest.approx(2.5e-6, rel=1e-3)
    assert map_difference(np.array([0.5005, 0.2]), np.array([0.5, 0.2])) == pytest.approx(5e-4, rel=1e-6)
    with pytest.raises(AssertionError, match="shape"):
        map_difference(np.zeros(3), np.zeros(4))
