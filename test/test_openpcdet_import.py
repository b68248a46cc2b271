"""sparsekd-import: reference checkpoints round-trip to identical outputs; layouts, biases and every error case.

Reference checkpoints are written as OpenPCDet writes them (openpcdet_reference.py): our model M, with trained-looking
weights, is stored in the reference's names, spconv layout and conventions (block biases, head biases, intensity
scale); importing that file must give back a model that computes M's maps on the same voxels.
"""
import subprocess
import sys

import pytest
import torch

from sparsekd_core.checkpoint import load_model, read_checkpoint
from sparsekd_core.cli.import_weights import main as import_main
from sparsekd_core.models.detector import build_detector
from sparsekd_core.openpcdet.checkpoint import OpenPCDetCheckpointError, read_reference_checkpoint
from sparsekd_core.openpcdet.importer import import_checkpoint
from sparsekd_core.openpcdet.model_config import model_config_from_openpcdet
from sparsekd_core.openpcdet.spconv_layout import SpconvLayoutError, decide_layout, source_shape, to_ours
from sparsekd_core.openpcdet.weights import WeightsError
from sparsekd_core.openpcdet.yaml_config import load_openpcdet_config

from conftest import REPO, trained_looking
from openpcdet_reference import (REFERENCE_KEYS, REFERENCE_PILLAR_KEYS, kitti_pointpillar, kitti_second,
                                 kitti_voxel8x, nuscenes_voxel, save_reference_checkpoint, to_reference_state,
                                 waymo_pillar, waymo_voxel, write_openpcdet_tree)


def _model_for(path, **kw):
    """Our model for an OpenPCDet config, with trained-looking weights (distinct BN statistics, head biases)."""
    imp = model_config_from_openpcdet(load_openpcdet_config(path), path.stem, str(path), **kw)
    torch.manual_seed(0)
    model = trained_looking(build_detector(imp.model)).eval()
    return model, imp


def _points(cfg, n=3000, seed=0, intensity_max=1.0):
    g = torch.Generator().manual_seed(seed)
    r = torch.tensor(cfg.voxelization.point_cloud_range)
    p = torch.rand(n, len(cfg.point_features), generator=g)
    p[:, :3] = r[:3] + p[:, :3] * (r[3:] - r[:3]) * 0.999
    if "time_lag" in cfg.point_features:
        p[:, cfg.point_features.index("time_lag")] = torch.randint(0, 10, (n,), generator=g) * 0.05
    return p


def _same_maps(a, b, pts, atol=2e-5):
    with torch.no_grad():
        oa, ob = a([pts]), b([pts])
    assert len(oa.heads) == len(ob.heads)
    for ha, hb in zip(oa.heads, ob.heads):
        for name in (("cls", "box", "dir") if a.cfg.is_anchor else ("heatmap", "center", "center_z", "dim", "rot")):
            torch.testing.assert_close(getattr(ha, name), getattr(hb, name), atol=atol, rtol=1e-5)


# ----------------------------------------------------------------------------- the reference's names
def test_reference_state_has_the_reference_names_and_shapes(tmp_path):
    """Our cp_voxel_s written in the reference's form has the names and shapes a SparseKD cp-voxel-s has (read from
    a model the reference code built), and cp_pillar_v0.64 those of cp-pillar-v0.64."""
    from sparsekd_core.config import load_model_config

    state = to_reference_state(build_detector(load_model_config("cp_voxel_s")))
    for key, shape in REFERENCE_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    state = to_reference_state(build_detector(load_model_config("cp_pillar_v0.64")))
    for key, shape in REFERENCE_PILLAR_KEYS.items():
        assert tuple(state[key].shape) == shape, key


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("kind, layout, version", [
    ("waymo_voxel", "2.x", "pcdet+0.5.2+1234567"),
    ("waymo_voxel", "1.x", "pcdet+0.3.0+0000000"),
    ("kitti_voxel8x", "2.x-native", None),
    ("waymo_pillar", "2.x", "pcdet+0.6.0+8caccce"),
    ("kitti_pointpillar", "2.x", "pcdet+0.6.0+8caccce"),
    ("kitti_second", "2.x", "pcdet+0.6.0+8caccce"),
])
def test_import_round_trips_to_identical_outputs(tmp_path, kind, layout, version):
    text = {"waymo_voxel": waymo_voxel(crop=12.8), "kitti_voxel8x": kitti_voxel8x(),
            "waymo_pillar": waymo_pillar(), "kitti_pointpillar": kitti_pointpillar(),
            "kitti_second": kitti_second()}[kind]
    cfg_path = write_openpcdet_tree(tmp_path / "OpenPCDet", {f"models/{kind}.yaml": text})[f"models/{kind}.yaml"]
    model, imp = _model_for(cfg_path)
    if not imp.head_conv_bias:  # USE_BIAS_BEFORE_NORM False: the reference's head convs have no bias
        for k, v in model.state_dict().items():
            if k.startswith("head.") and k.endswith(".bias") and ("shared_conv.0." in k or ".0.0." in k):
                v.zero_()
    state = to_reference_state(model, layout=layout, block_bias=imp.block_biases, head_bias=imp.head_conv_bias)
    ckpt = save_reference_checkpoint(tmp_path / "ref.pth", state, version=version)
    flag = layout if kind == "kitti_voxel8x" else None  # no version: the shapes decide (or the flag)
    report = import_checkpoint(ckpt, cfg_path, tmp_path / "out.pth", spconv_layout=flag)
    assert report.layout.layout == layout
    imported, payload = load_model(tmp_path / "out.pth")
    _same_maps(imported, model, _points(model.cfg))
    assert payload["meta"]["imported_from"]["version"] == version
    assert ("global_step", "OpenPCDet's training step counter") in report.ignored
    if imp.block_biases:
        assert len(report.folded) == 16  # conv1..conv4's residual blocks: (2 + 2 + 2 + 2) x 2 convs
        assert "backbone_3d.conv1.0.conv1.bias" in report.folded


def test_nuscenes_import_with_prefix_kd_keys_and_intensity_scale(tmp_path):
    """Six heads with velocity, a DDP 'module.' prefix, SparseKD's KD-only keys, spconv 1.x from an old OpenPCDet,
    and a model trained on 0..255 intensity: the imported model takes 0..1 and computes the same maps."""
    cfg_path = write_openpcdet_tree(tmp_path, {"nuscenes_models/nus.yaml": nuscenes_voxel(crop=9.6)})[
        "nuscenes_models/nus.yaml"]
    model, imp = _model_for(cfg_path)
    state = to_reference_state(model, layout="1.x", intensity_max=255.0)
    state["kd_adapt_block.adapt_conv.0.weight"] = torch.randn(8, 8, 1, 1)
    state["dense_head_aux.shared_conv.0.weight"] = torch.randn(8, 8, 3, 3)
    ckpt = save_reference_checkpoint(tmp_path / "ref.pth", state, version="pcdet+0.4.0+abcdef0", prefix="module.")
    report = import_checkpoint(ckpt, cfg_path, tmp_path / "out.pth")
    ignored = dict(report.ignored)
    assert "distillation only" in ignored["kd_adapt_block.adapt_conv.0.weight"]
    assert "distillation only" in ignored["dense_head_aux.shared_conv.0.weight"]
    assert any("module." in n for n in report.notes)
    assert report.layout.layout == "1.x" and "0.4.0" in report.layout.reason
    imported, payload = load_model(tmp_path / "out.pth")
    assert payload["meta"]["imported_from"]["intensity_max"] == 255.0
    assert payload["meta"]["ground_z"] == -1.84  # nuScenes' LIDAR_TOP, for the node's mounting check
    assert imported.cfg.sweeps == 10 and len(imported.cfg.class_groups()) == 6
    _same_maps(imported, model, _points(model.cfg, intensity_max=255.0))
    text = "\n".join(report.lines())
    assert "left out 2 key(s), SparseKD's KD adapter block" not in text  # two reasons, one line each
    assert "kd_adapt_block.adapt_conv.0.weight" in text and "16 sparse-conv biases folded" in text


def test_block_bias_fold_is_exact():
    """BN(conv(x) + b) with BN's running mean m equals BN'(conv(x)) with running mean m - b (eval), and batch
    statistics cancel a constant shift (train): the fold changes nothing the block computes."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm1d(16, eps=1e-3).double().eval()
    bn.running_mean.normal_(0, 0.3)
    bn.running_var.uniform_(0.5, 1.5)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.normal_(0, 0.1)
    x, b = torch.randn(500, 16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    folded = torch.nn.BatchNorm1d(16, eps=1e-3).double().eval()
    folded.load_state_dict(bn.state_dict())
    folded.running_mean -= b
    torch.testing.assert_close(folded(x), bn(x + b), rtol=0, atol=1e-12)
    bn.train(), folded.train()
    torch.testing.assert_close(folded(x), bn(x + b), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- spconv layouts
def test_spconv_layouts_convert_to_ours():
    ours = torch.arange(32 * 27 * 16, dtype=torch.float32).reshape(32, 3, 3, 3, 16)
    one = ours.permute(1, 2, 3, 4, 0)      # (k, k, k, C_in, C_out)
    native = ours.permute(1, 2, 3, 0, 4)   # (k, k, k, C_out, C_in)
    assert torch.equal(to_ours(one, "1.x"), ours) and torch.equal(to_ours(native, "2.x-native"), ours)
    assert torch.equal(to_ours(ours, "2.x"), ours)
    assert source_shape("1.x", (32, 3, 1, 1, 16)) == (3, 1, 1, 16, 32)


def test_layout_is_never_guessed():
    square = {"a": torch.zeros(3, 3, 3, 16, 16)}  # (k, k, k, 16, 16): 1.x and 2.x-native look alike
    expected = {"a": (16, 3, 3, 3, 16)}
    with pytest.raises(SpconvLayoutError, match=r"more than one spconv layout \(1.x, 2.x-native.*--spconv-layout"):
        decide_layout(square, expected, (0, 5, 2))
    assert decide_layout(square, expected, (0, 4, 0)).layout == "1.x"  # OpenPCDet < 0.5 ran only spconv 1.x
    assert decide_layout(square, expected, None, "2.x-native").layout == "2.x-native"
    telling = {"a": torch.zeros(3, 3, 3, 16, 16), "b": torch.zeros(3, 3, 3, 16, 5)}  # C_out 16, C_in 5: native
    decision = decide_layout(telling, {**expected, "b": (16, 3, 3, 3, 5)}, None)
    assert decision.layout == "2.x-native" and "no OpenPCDet version" in decision.reason
    with pytest.raises(SpconvLayoutError, match=r"b has shape \(3, 3, 3, 16, 5\), but in the spconv 1.x"):
        decide_layout(telling, {**expected, "b": (16, 3, 3, 3, 5)}, None, "1.x")
    with pytest.raises(SpconvLayoutError, match="fit no spconv layout.*not the one this checkpoint was trained with"):
        decide_layout({"a": torch.zeros(3, 3, 3, 8, 16)}, expected, (0, 6, 0))


# ----------------------------------------------------------------------------- errors that name the key and module
@pytest.fixture
def waymo(tmp_path):
    cfg_path = write_openpcdet_tree(tmp_path / "OpenPCDet", {"w.yaml": waymo_voxel(crop=12.8)})["w.yaml"]
    model, _ = _model_for(cfg_path)
    return cfg_path, to_reference_state(model)


def _import_error(tmp_path, cfg_path, state, **kw):
    ckpt = save_reference_checkpoint(tmp_path / "bad.pth", state, **kw)
    with pytest.raises(ValueError) as e:
        import_checkpoint(ckpt, cfg_path, tmp_path / "never.pth")
    assert not (tmp_path / "never.pth").exists()
    return str(e.value)


def test_a_head_that_does_not_fit_names_the_key_and_module(tmp_path, waymo):
    cfg_path, state = waymo
    state["dense_head.heads_list.0.hm.1.weight"] = torch.zeros(4, 64, 3, 3)  # four classes in the checkpoint
    state["dense_head.heads_list.0.hm.1.bias"] = torch.zeros(4)
    msg = _import_error(tmp_path, cfg_path, state)
    assert "dense_head.heads_list.0.hm.1.weight (module 'dense_head') has shape (4, 64, 3, 3)" in msg
    assert "(3, 64, 3, 3)" in msg and "CLASS_NAMES_EACH_HEAD" in msg


def test_missing_extra_and_foreign_keys_are_named(tmp_path, waymo):
    cfg_path, state = waymo
    del state["backbone_3d.conv2.1.bn1.running_var"]
    state["roi_head.shared_fc_layer.0.weight"] = torch.zeros(4, 4)
    state["backbone_2d.blocks.5.1.weight"] = torch.zeros(4, 4, 3, 3)
    msg = _import_error(tmp_path, cfg_path, state)
    assert "roi_head.shared_fc_layer.0.weight: module 'roi_head' is not part of a model that sparsekd_ros runs" in msg
    assert "needs backbone3d.conv2.1.bn1.running_var (module 'backbone_3d')" in msg
    assert "backbone_2d.blocks.5.1.weight (module 'backbone_2d') has no place" in msg


def test_files_that_are_not_reference_checkpoints(tmp_path, waymo):
    cfg_path, state = waymo
    with pytest.raises(OpenPCDetCheckpointError, match="checkpoint not found"):
        read_reference_checkpoint(tmp_path / "none.pth")
    torch.save({"optimizer_state": {}}, tmp_path / "optim.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(OpenPCDetCheckpointError, match="no model weights.*'model_state'.*optimizer_state"):
        read_reference_checkpoint(tmp_path / "optim.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(OpenPCDetCheckpointError, match="not a readable PyTorch checkpoint"):
        read_reference_checkpoint(tmp_path / "junk.pth")
    torch.save({"model_state": state, "cfg": subprocess.CompletedProcess([], 0)}, tmp_path / "code.pth")
    with pytest.raises(OpenPCDetCheckpointError, match="will not run code from a file"):
        read_reference_checkpoint(tmp_path / "code.pth")
    ours = tmp_path / "ours.pth"
    from sparsekd_core.checkpoint import write_untrained_checkpoint

    write_untrained_checkpoint("cp_voxel_xxs_sim", ours)
    with pytest.raises(OpenPCDetCheckpointError, match="already a sparsekd checkpoint"):
        read_reference_checkpoint(ours)
    bare = save_reference_checkpoint(tmp_path / "bare.pth", state)  # also fine: a bare state_dict
    torch.save(torch.load(bare, weights_only=False)["model_state"], tmp_path / "bare_sd.pth")
    ref = read_reference_checkpoint(tmp_path / "bare_sd.pth")
    assert ref.version is None and any("top level" in n for n in ref.notes)


# ----------------------------------------------------------------------------- the command line, end to end
def test_cli_imports_and_the_result_runs_in_sparsekd_detect(tmp_path, shared_data, capsys):
    """An imported nuScenes CenterPoint (full range, six heads, velocity) detects on the real nuScenes sweep."""
    cfg_path = write_openpcdet_tree(tmp_path / "OpenPCDet", {
        "nuscenes_models/cbgs_voxel0075_res3d_centerpoint.yaml": nuscenes_voxel()})[
        "nuscenes_models/cbgs_voxel0075_res3d_centerpoint.yaml"]
    model, _ = _model_for(cfg_path)
    ckpt = save_reference_checkpoint(tmp_path / "checkpoint_epoch_20.pth",
                                     to_reference_state(model, intensity_max=255.0), version="pcdet+0.6.0+8caccce")
    out = tmp_path / "nus.pth"
    assert import_main([str(ckpt), "--config", str(cfg_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "car, truck" in printed and "6 heads" in printed
    assert read_checkpoint(out)["config"]["head"]["velocity"] is True
    sweep = shared_data / "nuscenes" / "lidar_top.bin"
    res = subprocess.run([sys.executable, "-m", "sparsekd_core.cli.detect", str(sweep),
                          "--model", str(out), "--json", "--score-threshold", "0.0", "--device", "cpu"],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr
    import json

    doc = json.loads(res.stdout)
    result = doc["files"][0] if "files" in doc else doc[0]
    assert result["points"] > 30000 and result["missing_features"] == []
    assert len(result["detections"]) > 0 and all("velocity" in d for d in result["detections"])


def test_cli_says_what_is_missing(tmp_path, capsys):
    with pytest.raises(SystemExit):
        import_main([str(tmp_path / "x.pth"), "--out", str(tmp_path / "o.pth")])
    assert "--config CFG.yaml is required" in capsys.readouterr().err
    cfg = write_openpcdet_tree(tmp_path, {"w.yaml": waymo_voxel()})["w.yaml"]
    assert import_main([str(tmp_path / "x.pth"), "--config", str(cfg), "--out", str(tmp_path / "o.pth")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    res = subprocess.run([sys.executable, "-m", "sparsekd_core.cli.import_weights", "--help"], capture_output=True,
                         text=True, cwd=REPO)
    assert res.returncode == 0 and "_BASE_CONFIG_" in res.stdout and "--spconv-layout" in res.stdout
