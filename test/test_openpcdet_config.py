"""OpenPCDet YAML configs: _BASE_CONFIG_ resolution as OpenPCDet does it, and what an import carries over or refuses."""
import pytest

from sparsekd_core.config import load_model_config
from sparsekd_core.openpcdet.model_config import model_config_from_openpcdet
from sparsekd_core.openpcdet.yaml_config import OpenPCDetConfigError, load_openpcdet_config

from openpcdet_reference import (kitti_pointpillar, kitti_second, nuscenes_voxel, waymo_pillar, waymo_voxel,
                                 write_openpcdet_tree)


def _imported(tmp_path, text, rel="waymo_models/m.yaml", **kw):
    path = write_openpcdet_tree(tmp_path, {rel: text})[rel]
    return model_config_from_openpcdet(load_openpcdet_config(path), "m", str(path), **kw)


# ----------------------------------------------------------------------------- _BASE_CONFIG_
def test_base_config_resolves_from_tools_and_from_the_configs_parents(tmp_path, monkeypatch):
    path = write_openpcdet_tree(tmp_path / "OpenPCDet", {"waymo_models/m.yaml": waymo_voxel()})["waymo_models/m.yaml"]
    # as OpenPCDet runs it: from tools/
    monkeypatch.chdir(tmp_path / "OpenPCDet" / "tools")
    from_tools = load_openpcdet_config(path)
    # from anywhere else: tools/ is a parent of the config's folder
    monkeypatch.chdir(tmp_path)
    assert load_openpcdet_config(path) == from_tools
    assert from_tools["DATA_CONFIG"]["DATASET"] == "WaymoDataset"


def test_includes_merge_the_way_openpcdet_merges(tmp_path, monkeypatch):
    """A mapping's base replaces that level's keys first (shallow), then the file's own keys merge in, recursively
    for mappings; lists replace the base's (DATA_PROCESSOR); a base's own _BASE_CONFIG_ is not followed."""
    cfgs = tmp_path / "tools" / "cfgs"
    (cfgs / "dataset_configs").mkdir(parents=True)
    (cfgs / "dataset_configs" / "base.yaml").write_text(
        "_BASE_CONFIG_: cfgs/dataset_configs/never.yaml\nDATASET: B\nA: {x: 1, y: 2}\nLIST: [1, 2, 3]\n")
    (cfgs / "m.yaml").write_text(
        "TOP: 1\nDATA_CONFIG:\n  A: {y: 20, z: 30}\n  LIST: [9]\n  _BASE_CONFIG_: cfgs/dataset_configs/base.yaml\n"
        "MODEL: {NAME: CenterPoint, SUB: {_BASE_CONFIG_: cfgs/dataset_configs/base.yaml, DATASET: M}}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_openpcdet_config(cfgs / "m.yaml")
    d = cfg["DATA_CONFIG"]
    assert d["A"] == {"x": 1, "y": 20, "z": 30}
    assert d["LIST"] == [9]
    assert d["DATASET"] == "B"
    # base.yaml's own _BASE_CONFIG_ (a file that does not exist) was not followed: no error above
    assert d["_BASE_CONFIG_"] == "cfgs/dataset_configs/base.yaml"
    assert cfg["MODEL"]["SUB"]["DATASET"] == "M" and cfg["MODEL"]["SUB"]["A"] == {"x": 1, "y": 2}


def test_a_missing_base_names_the_file_and_where_it_looked(tmp_path, monkeypatch):
    (tmp_path / "m.yaml").write_text("DATA_CONFIG:\n  _BASE_CONFIG_: cfgs/dataset_configs/waymo_dataset.yaml\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OpenPCDetConfigError, match=r"_BASE_CONFIG_ 'cfgs/dataset_configs/waymo_dataset.yaml' was "
                                                   r"not found.*tools/"):
        load_openpcdet_config(tmp_path / "m.yaml")
    with pytest.raises(OpenPCDetConfigError, match="OpenPCDet config not found: .*nope.yaml"):
        load_openpcdet_config(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------- carried over
def test_waymo_voxel_config_carries_everything_over(tmp_path):
    imp = _imported(tmp_path, waymo_voxel(crop=12.8, shared=32, width2d=0.5))
    c = imp.model
    assert c.class_names == ["Vehicle", "Pedestrian", "Cyclist"] and c.head.class_groups == []
    assert c.point_features == ["x", "y", "z", "intensity", "elongation"]
    v = c.voxelization
    assert (v.voxel_size, v.point_cloud_range) == ([0.1, 0.1, 0.15], [-12.8, -12.8, -2.0, 12.8, 12.8, 4.0])
    assert (v.max_points_per_voxel, v.max_voxels_train, v.max_voxels_test) == (5, 150000, 150000)
    assert (c.backbone3d.type, c.backbone3d.filters, c.backbone3d.layers) == ("voxel_res8x", [16, 16, 32, 64, 128, 128],
                                                                             [1, 2, 3, 3, 3, 1])
    assert c.backbone2d.width == 0.5 and c.head.shared_channels == 32 and c.head.feature_stride == 8
    p = c.head.post
    assert (p.score_threshold, p.nms_iou_threshold, p.nms_pre_max_size, p.nms_post_max_size) == (0.1, 0.7, 4096, 500)
    assert p.class_agnostic_nms and p.nms_type == "rotated" and p.center_range == [-75.2, -75.2, -2, 75.2, 75.2, 4]
    assert (c.train.epochs, c.train.lr, c.train.moms) == (30, 0.003, [0.95, 0.85])
    assert imp.intensity_max == 1.0 and imp.block_biases and imp.head_conv_bias and c.sweeps == 1


def test_nuscenes_config_gives_six_heads_velocity_ten_sweeps_and_raw_intensity(tmp_path):
    imp = _imported(tmp_path, nuscenes_voxel(), rel="nuscenes_models/cbgs_voxel0075_res3d_centerpoint.yaml")
    c = imp.model
    assert c.head.class_groups == [["car"], ["truck", "construction_vehicle"], ["bus", "trailer"], ["barrier"],
                                   ["motorcycle", "bicycle"], ["pedestrian", "traffic_cone"]]
    assert c.head.velocity and len(c.head.loss.code_weights) == 10 and c.head.loss.loc_weight == 0.25
    assert c.point_features == ["x", "y", "z", "intensity", "time_lag"] and c.sweeps == 10
    assert imp.intensity_max == 255.0
    assert c.voxelization.voxel_size == [0.075, 0.075, 0.2] and c.voxelization.max_voxels_test == 160000
    post = c.head.post
    assert (post.nms_iou_threshold, post.nms_pre_max_size, post.nms_post_max_size) == (0.2, 1000, 83)
    assert any("6 heads" in n for n in imp.notes) and any("0..255" in n for n in imp.notes)


def test_openpcdets_nuscenes_voxel_config_is_the_zoo_teacher(tmp_path):
    """cbgs_voxel0075_res3d_centerpoint imports as nuscenes_cp_voxel's architecture, so a checkpoint of it can teach
    nuscenes_cp_voxel_s."""
    imported = _imported(tmp_path, nuscenes_voxel(), rel="nuscenes_models/cbgs_voxel0075_res3d_centerpoint.yaml")
    imported, zoo = imported.model.to_dict(), load_model_config("nuscenes_cp_voxel").to_dict()
    for key in ("class_names", "point_features", "sweeps", "voxelization", "vfe", "backbone3d", "bev", "backbone2d",
                "head"):
        assert imported[key] == zoo[key], key


def test_pillar_config(tmp_path):
    c = _imported(tmp_path, waymo_pillar()).model
    assert c.is_pillar and c.vfe.filters == [64, 64] and c.vfe.use_norm and not c.vfe.with_distance
    assert c.voxelization.voxel_size == [0.32, 0.32, 6.0] and c.voxelization.max_points_per_voxel == 20
    assert c.head.feature_stride == 1 and c.backbone2d.upsample_strides == [1.0, 2.0, 4.0]


def test_a_sparsekd_config_imports_its_student(tmp_path):
    text = waymo_voxel(shared=32, width2d=0.5).replace("OPTIMIZATION:", "MODEL_TEACHER:\n    NAME: CenterPoint\n"
                                                       "KD:\n    ENABLED: True\nKD_LOSS:\n    ENABLED: True\n"
                                                       "OPTIMIZATION:")
    text = text.replace("MODEL:\n    NAME: CenterPoint\n", "TEACHER_CKPT: 't.pth'\nMODEL:\n    NAME: CenterPoint\n"
                        "    IGNORE_PRETRAIN_MODULES: ['placeholder']\n")
    imp = _imported(tmp_path, text, rel="waymo_models/cp-voxel/cp-voxel-s_sparsekd.yaml")
    assert imp.model.head.shared_channels == 32 and any("student (MODEL) is imported" in n for n in imp.notes)


# ----------------------------------------------------------------------------- refused, by name
@pytest.mark.parametrize("old, new, message", [
    ("NAME: VoxelResBackBone8x", "NAME: VoxelResBackBone8xVoxelNeXt",
     r"MODEL.BACKBONE_3D.NAME is VoxelResBackBone8xVoxelNeXt, which sparsekd_ros does not have. Supported "
     r"BACKBONE_3D: VoxelResBackBone8x, VoxelBackBone8x"),
    ("NAME: CenterHead", "NAME: AnchorHeadMulti",
     r"MODEL.DENSE_HEAD.NAME is AnchorHeadMulti.*Supported DENSE_HEAD: CenterHead, AnchorHeadSingle"),
    ("    MAP_TO_BEV:", "    ROI_HEAD:\n        NAME: VoxelRCNNHead\n    MAP_TO_BEV:",
     r"MODEL.ROI_HEAD \(VoxelRCNNHead\) is a module sparsekd_ros does not have"),
    ("        NAME: VoxelResBackBone8x\n", "        NAME: VoxelResBackBone8x\n        ACT_FN: Swish\n",
     r"MODEL.BACKBONE_3D.ACT_FN: 'Swish' is not supported"),
    ("        NAME: BaseBEVBackbone\n", "        NAME: BaseBEVBackbone\n        FOCUS: True\n",
     r"MODEL.BACKBONE_2D.FOCUS: True is not supported"),
    ("        NAME: BaseBEVBackbone\n", "        NAME: BaseBEVBackbone\n        SKIP_CONNECT_FEAT: x\n",
     r"MODEL.BACKBONE_2D.SKIP_CONNECT_FEAT is an option sparsekd-import does not know"),
    ("NMS_TYPE: nms_gpu", "NMS_TYPE: circle_nms", r"NMS_CONFIG.NMS_TYPE: 'circle_nms' is not supported"),
    ("NMS_THRESH: 0.7", "NMS_THRESH: [0.8, 0.55, 0.55]", r"one IoU threshold for all classes"),
    ("HEAD_ORDER: ['center', 'center_z', 'dim', 'rot']",
     "HEAD_ORDER: ['center', 'center_z', 'dim', 'rot', 'iou']", r"HEAD_ORDER .*'iou'.* is not supported"),
    ("CLASS_NAMES_EACH_HEAD: [['Vehicle', 'Pedestrian', 'Cyclist']]",
     "CLASS_NAMES_EACH_HEAD: [['Vehicle'], ['Cyclist']]", r"CLASS_NAMES_EACH_HEAD .* does not split CLASS_NAMES"),
])
def test_unsupported_modules_and_options_are_refused_by_name(tmp_path, old, new, message):
    text = waymo_voxel()
    assert old in text
    with pytest.raises(OpenPCDetConfigError, match=message):
        _imported(tmp_path, text.replace(old, new, 1))


def test_dynamic_voxelisation_and_missing_sections_are_refused(tmp_path):
    text = waymo_pillar().replace("NAME: transform_points_to_voxels\n",
                                  "NAME: transform_points_to_voxels_placeholder\n")
    with pytest.raises(OpenPCDetConfigError, match="voxelises dynamically"):
        _imported(tmp_path, text)
    with pytest.raises(OpenPCDetConfigError, match="has no MODEL section.*model config"):
        model_config_from_openpcdet({"DATASET": "WaymoDataset"}, "m", "waymo_dataset.yaml")
    with pytest.raises(OpenPCDetConfigError, match=r"the config has no MODEL.DENSE_HEAD.SHARED_CONV_CHANNEL"):
        _imported(tmp_path, waymo_voxel().replace("        SHARED_CONV_CHANNEL: 64\n", ""))


def test_an_unknown_dataset_needs_the_intensity_scale(tmp_path):
    text = waymo_voxel().replace("_BASE_CONFIG_: cfgs/dataset_configs/waymo_dataset.yaml",
                                 "_BASE_CONFIG_: cfgs/dataset_configs/waymo_dataset.yaml\n    DATASET: 'CustomDataset'")
    with pytest.raises(OpenPCDetConfigError, match="CustomDataset.*--intensity-max 1.*255"):
        _imported(tmp_path, text)
    assert _imported(tmp_path, text, intensity_max=255).intensity_max == 255.0


# ----------------------------------------------------------------------------- anchor heads
@pytest.mark.parametrize("text, zoo", [(kitti_pointpillar, "kitti_pointpillar"), (kitti_second, "kitti_second")])
def test_kitti_anchor_configs_import_as_the_zoo_models(tmp_path, text, zoo):
    """OpenPCDet's kitti_models/pointpillar.yaml and second.yaml import as our zoo's kitti_pointpillar and
    kitti_second: the same network, anchors, thresholds, losses, NMS and schedule (the cropped range and the centre
    filter, which OpenPCDet's anchor post-processing does not have, aside)."""
    imp = _imported(tmp_path, text(), rel=f"kitti_models/{zoo}.yaml").model.to_dict()
    ours = load_model_config(zoo).to_dict()
    for d in (imp, ours):
        d["voxelization"].pop("point_cloud_range")
        d["head"]["post"].pop("center_range")
        d.pop("description"), d.pop("name")
    assert imp == ours


def test_anchor_head_options_we_do_not_reproduce_are_refused(tmp_path):
    sincos = kitti_pointpillar().replace("BOX_CODER: ResidualCoder",
                                         "BOX_CODER: ResidualCoder\n"
                                         "            BOX_CODER_CONFIG: {encode_angle_by_sincos: True}")
    with pytest.raises(OpenPCDetConfigError, match="BOX_CODER_CONFIG"):
        _imported(tmp_path, sincos, rel="kitti_models/a.yaml")
    multi = kitti_pointpillar().replace("MULTI_CLASSES_NMS: False", "MULTI_CLASSES_NMS: True")
    with pytest.raises(OpenPCDetConfigError, match="MULTI_CLASSES_NMS"):
        _imported(tmp_path, multi, rel="kitti_models/b.yaml")
    reordered = kitti_pointpillar().replace("'class_name': 'Car'", "'class_name': 'Van'")
    with pytest.raises(OpenPCDetConfigError, match="CLASS_NAMES order"):
        _imported(tmp_path, reordered, rel="kitti_models/c.yaml")
