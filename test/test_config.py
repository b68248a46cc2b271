import pytest
import yaml

from sparsekd_core.config import (ConfigError, ModelConfig, WAYMO_ZOO, list_models, load_model_config,
                                  model_config_from_dict)


def test_waymo_zoo_matches_architecture_table():
    expected = {
        # name: (3D width, BEV features, 2D width, head shared conv)
        "cp_voxel": (1.0, 256, 1.0, 64),
        "cp_voxel_s": (1.0, 256, 0.5, 32),
        "cp_voxel_xs": (0.75, 192, 0.5, 32),
        "cp_voxel_xxs": (0.5, 128, 0.25, 16),
    }
    for name, (w3, bev, w2, sh) in expected.items():
        c = load_model_config(name)
        assert (c.backbone3d.width, c.bev.num_features, c.backbone2d.width, c.head.shared_channels) == (w3, bev, w2, sh)
        assert c.voxelization.voxel_size == [0.1, 0.1, 0.15]
        assert c.voxelization.point_cloud_range == [-75.2, -75.2, -2.0, 75.2, 75.2, 4.0]
        assert c.class_names == ["Vehicle", "Pedestrian", "Cyclist"]
        assert c.point_features == ["x", "y", "z", "intensity", "elongation"]
        assert c.head.feature_stride == 8
    pillars = {"cp_pillar": (0.32, 74.24, 20), "cp_pillar_v0.4": (0.4, 73.6, 28),
               "cp_pillar_v0.48": (0.48, 74.88, 36), "cp_pillar_v0.64": (0.64, 74.24, 50)}
    for name, (size, rng, pts) in pillars.items():
        c = load_model_config(name)
        assert c.voxelization.voxel_size == [size, size, 6.0]
        assert c.voxelization.point_cloud_range == [-rng, -rng, -2.0, rng, rng, 4.0]
        assert c.voxelization.max_points_per_voxel == pts
        assert c.head.feature_stride == 1 and c.is_pillar
        # the grid must divide by the 2D backbone's total stride (4)
        gx, gy, _ = c.voxelization.grid_size()
        assert gx % 4 == 0 and gy % 4 == 0
    assert set(WAYMO_ZOO) <= set(list_models())


def test_kitti_configs_use_kitti_range_and_classes():
    v = load_model_config("kitti_cp_voxel")
    assert v.voxelization.voxel_size == [0.05, 0.05, 0.1]
    assert v.voxelization.point_cloud_range == [0.0, -40.0, -3.0, 70.4, 40.0, 1.0]
    assert v.class_names == ["Car", "Pedestrian", "Cyclist"]
    assert v.voxelization.grid_size() == [1408, 1600, 40]
    assert load_model_config("kitti_cp_pillar").voxelization.voxel_size[0] == 0.16
    assert load_model_config("kitti_cp_pillar_v0.32").voxelization.voxel_size[0] == 0.32


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({"base": "cp_voxel", "backbone2d": {"widht": 0.5}}))
    with pytest.raises(ConfigError) as e:
        load_model_config(p)
    assert "backbone2d.widht" in str(e.value) and str(p) in str(e.value)


def test_wrong_type_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({"base": "cp_voxel", "head": {"shared_channels": "wide"}}))
    with pytest.raises(ConfigError) as e:
        load_model_config(p)
    assert "head.shared_channels" in str(e.value) and "integer" in str(e.value) and str(p) in str(e.value)
    p.write_text(yaml.safe_dump({"base": "cp_voxel", "voxelization": {"voxel_size": 0.1}}))
    with pytest.raises(ConfigError, match="voxelization.voxel_size.*list"):
        load_model_config(p)


def test_inheritance_overrides_only_what_it_lists(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump({"base": "cp_voxel_s", "head": {"post": {"score_threshold": 0.3}}}))
    c = load_model_config(p)
    assert c.name == "mine"
    assert c.head.post.score_threshold == 0.3
    assert c.head.post.nms_iou_threshold == 0.7  # inherited
    assert c.backbone2d.width == 0.5 and c.head.shared_channels == 32


def test_cross_field_validation():
    d = load_model_config("cp_voxel").to_dict()
    d["point_features"] = ["intensity", "x", "y", "z"]
    with pytest.raises(ConfigError, match="point_features must start with x, y, z"):
        model_config_from_dict(d)
    d = load_model_config("cp_pillar").to_dict()
    d["bev"]["type"] = "height_compression"
    with pytest.raises(ConfigError, match="pillar vfe needs bev.type pillar_scatter"):
        model_config_from_dict(d)
    with pytest.raises(ConfigError, match="unknown model 'cp_nope'.*Zoo models"):
        load_model_config("cp_nope")


def test_config_dict_round_trip():
    for name in list_models():
        c = load_model_config(name)
        assert model_config_from_dict(c.to_dict()) == c
        assert isinstance(c, ModelConfig)


def test_a_bev_grid_the_2d_levels_cannot_concatenate_is_refused_as_the_backbone_would_fail():
    """The check agrees with the real BaseBEVBackbone on every map size from 20 to 40 cells (kitti_pointpillar's
    levels: strides 2, 2, 2, brought back by 1, 2, 4), and its error names a multiple of cells that always fits."""
    import torch

    from sparsekd_core.models.backbone2d import BaseBEVBackbone

    base = load_model_config("kitti_pointpillar").to_dict()
    b2 = base["backbone2d"]
    net = BaseBEVBackbone(2, [0] * len(b2["strides"]), b2["strides"], [2] * len(b2["strides"]),
                          b2["upsample_strides"], [2] * len(b2["strides"])).eval()
    size = base["voxelization"]["voxel_size"][0]
    refused = []
    for n in range(20, 41):
        d = yaml.safe_load(yaml.safe_dump(base))
        d["voxelization"]["point_cloud_range"][3] = d["voxelization"]["point_cloud_range"][0] + n * size
        try:
            model_config_from_dict(d)
        except ConfigError as e:
            refused.append(n)
            assert f"BEV map is {n} cells along x" in str(e) and "a multiple of 8 voxels" in str(e)
        try:
            with torch.no_grad():
                net(torch.zeros(1, 2, 8, n))
            assert n not in refused, f"{n} cells were refused but the backbone runs them"
        except RuntimeError:
            assert n in refused, f"{n} cells pass the check but the backbone fails on them"
    assert refused and all(n % 8 for n in refused)
