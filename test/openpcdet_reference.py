"""OpenPCDet / SparseKD files as the reference writes them, for the import tests.

Facts taken from the reference code (open-mmlab/OpenPCDet 0.6, CVMI-Lab/SparseKD 0.5.2), not from our importer:
  * configs: the YAML fields of tools/cfgs/dataset_configs/{waymo,kitti,nuscenes}_dataset.yaml and of
    waymo_models/centerpoint.yaml, centerpoint_pillar_1x.yaml, nuscenes_models/cbgs_voxel0075_res3d_centerpoint.yaml,
    kitti_models/pointpillar.yaml, second.yaml and SparseKD's cp-voxel-s.yaml, cut to what a model needs and with
    ranges cropped for CPU time;
  * checkpoints: tools/train_utils/train_utils.py checkpoint_state (model_state, optimizer_state, epoch, it,
    version 'pcdet+<version>'), saved with _use_new_zipfile_serialization=False; OpenPCDet's one-cycle schedule puts
    numpy floats in the optimiser's param groups;
  * state_dict names: the Detector3DTemplate module names (vfe, backbone_3d, map_to_bev_module, backbone_2d,
    dense_head), SparseBasicBlock's conv1/bn1/conv2/bn2 with conv biases, CenterHead's shared_conv and
    heads_list.<i>.<hm|center|center_z|dim|rot|vel>, AnchorHeadSingle's conv_cls/conv_box/conv_dir_cls, a
    global_step buffer; REFERENCE_KEYS below lists names and
    shapes read from a SparseKD cp-voxel-s model built by the reference code;
  * spconv weight layouts: 1.x (k, k, k, C_in, C_out), 2.0/2.1 native (k, k, k, C_out, C_in),
    2.2+ (C_out, k, k, k, C_in).

``to_reference_state`` writes one of our models in the reference's form, independently of the importer: the tests
then import it and check that the imported model computes what ours did.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sparsekd_core.ops.spconv_compat import spconv

# name -> shape in a SparseKD cp-voxel-s model (spconv 2.x), as the reference builds it (Waymo, 5 point features)
REFERENCE_KEYS = {
    "global_step": (1,),
    "backbone_3d.conv_input.0.weight": (16, 3, 3, 3, 5),
    "backbone_3d.conv1.0.conv1.weight": (16, 3, 3, 3, 16),
    "backbone_3d.conv1.0.conv1.bias": (16,),
    "backbone_3d.conv1.0.bn2.running_mean": (16,),
    "backbone_3d.conv_out.0.weight": (128, 3, 1, 1, 128),
    "backbone_2d.blocks.0.1.weight": (64, 256, 3, 3),
    "backbone_2d.blocks.0.17.num_batches_tracked": (),
    "backbone_2d.deblocks.0.0.weight": (64, 128, 1, 1),
    "dense_head.shared_conv.0.weight": (32, 256, 3, 3),
    "dense_head.shared_conv.0.bias": (32,),
    "dense_head.heads_list.0.center.0.0.weight": (32, 32, 3, 3),
    "dense_head.heads_list.0.center.1.weight": (2, 32, 3, 3),
    "dense_head.heads_list.0.hm.1.weight": (3, 32, 3, 3),
}
# ... and in a SparseKD cp-pillar-v0.64 model
REFERENCE_PILLAR_KEYS = {
    "vfe.pfn_layers.0.linear.weight": (32, 11),
    "vfe.pfn_layers.0.norm.running_var": (32,),
    "vfe.pfn_layers.1.linear.weight": (64, 64),
    "backbone_2d.deblocks.2.0.weight": (256, 128, 4, 4),
}

def _data_processor(voxel, points: int, caps, indent: str = "") -> str:
    """DATA_PROCESSOR as OpenPCDet's configs write it: range mask, shuffle, fixed voxelisation."""
    text = f"""\
DATA_PROCESSOR:
    - NAME: mask_points_and_boxes_outside_range
      REMOVE_OUTSIDE_BOXES: True
    - NAME: shuffle_points
      SHUFFLE_ENABLED: {{'train': True, 'test': True}}
    - NAME: transform_points_to_voxels
      VOXEL_SIZE: {voxel}
      MAX_POINTS_PER_VOXEL: {points}
      MAX_NUMBER_OF_VOXELS: {{'train': {caps[0]}, 'test': {caps[1]}}}
"""
    return "".join(indent + line for line in text.splitlines(keepends=True))


def _dataset_yaml(dataset: str, extra: str, rng, features, voxel, points: int, caps) -> str:
    """The fields a model import reads from an OpenPCDet dataset config (tools/cfgs/dataset_configs/*.yaml)."""
    return f"""\
DATASET: '{dataset}'
{extra}POINT_CLOUD_RANGE: {rng}
POINT_FEATURE_ENCODING: {{
    encoding_type: absolute_coordinates_encoding,
    used_feature_list: {features},
    src_feature_list: {features},
}}
""" + _data_processor(voxel, points, caps)


DATASETS = {
    "waymo_dataset.yaml": _dataset_yaml("WaymoDataset", "DATA_PATH: '../data/waymo'\n",
                                        [-75.2, -75.2, -2, 75.2, 75.2, 4], ["x", "y", "z", "intensity", "elongation"],
                                        [0.1, 0.1, 0.15], 5, (150000, 150000)),
    "kitti_dataset.yaml": _dataset_yaml("KittiDataset", "DATA_PATH: '../data/kitti'\n", [0, -40, -3, 70.4, 40, 1],
                                        ["x", "y", "z", "intensity"], [0.05, 0.05, 0.1], 5, (16000, 40000)),
    "nuscenes_dataset.yaml": _dataset_yaml(
        "NuScenesDataset", "DATA_PATH: '../data/nuscenes'\nVERSION: 'v1.0-trainval'\nMAX_SWEEPS: 10\n"
        "PRED_VELOCITY: True\n", [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], ["x", "y", "z", "intensity", "timestamp"],
        [0.1, 0.1, 0.2], 10, (60000, 60000)),
}

_HEAD = """\
    DENSE_HEAD:
        NAME: CenterHead
        CLASS_AGNOSTIC: False
        CLASS_NAMES_EACH_HEAD: {groups}
        SHARED_CONV_CHANNEL: {shared}
        USE_BIAS_BEFORE_NORM: {head_bias}
        NUM_HM_CONV: 2
        SEPARATE_HEAD_CFG:
            HEAD_ORDER: {order}
            HEAD_DICT: {{
{head_dict}
            }}
        TARGET_ASSIGNER_CONFIG:
            FEATURE_MAP_STRIDE: {stride}
            NUM_MAX_OBJS: 500
            GAUSSIAN_OVERLAP: 0.1
            MIN_RADIUS: 2
        LOSS_CONFIG:
            LOSS_WEIGHTS: {{
                'cls_weight': 1.0,
                'loc_weight': {loc_weight},
                'code_weights': {code_weights}
            }}
        POST_PROCESSING:
            SCORE_THRESH: 0.1
            POST_CENTER_LIMIT_RANGE: {center_range}
            MAX_OBJ_PER_SAMPLE: 500
            NMS_CONFIG:
                NMS_TYPE: nms_gpu
                NMS_THRESH: {nms_thresh}
                NMS_PRE_MAXSIZE: {nms_pre}
                NMS_POST_MAXSIZE: {nms_post}
    POST_PROCESSING:
        RECALL_THRESH_LIST: [0.3, 0.5, 0.7]
        EVAL_METRIC: waymo
OPTIMIZATION:
    BATCH_SIZE_PER_GPU: 4
    NUM_EPOCHS: 30
    OPTIMIZER: adam_onecycle
    LR: 0.003
    WEIGHT_DECAY: 0.01
    MOMENTUM: 0.9
    MOMS: [0.95, 0.85]
    PCT_START: 0.4
    DIV_FACTOR: 10
    DECAY_STEP_LIST: [35, 45]
    LR_DECAY: 0.1
    LR_CLIP: 0.0000001
    LR_WARMUP: False
    WARMUP_EPOCH: 1
    GRAD_NORM_CLIP: 10
"""


def _head(groups, shared=64, head_bias=True, velocity=False, stride=8, loc_weight=2.0, center_range=None,
          nms=(0.7, 4096, 500)):
    order = ["center", "center_z", "dim", "rot"] + (["vel"] if velocity else [])
    outs = {"center": 2, "center_z": 1, "dim": 3, "rot": 2, "vel": 2}
    head_dict = ",\n".join(f"                '{n}': {{'out_channels': {outs[n]}, 'num_conv': 2}}" for n in order)
    codes = [1.0] * 6 + ([0.2, 0.2, 1.0, 1.0] if velocity else [1.0, 1.0])  # OpenPCDet's nuScenes configs: rot 0.2
    return _HEAD.format(groups=groups, shared=shared, head_bias=head_bias, order=order, head_dict=head_dict,
                        stride=stride, loc_weight=loc_weight, code_weights=codes,
                        center_range=center_range or [-80, -80, -10.0, 80, 80, 10.0], nms_thresh=nms[0],
                        nms_pre=nms[1], nms_post=nms[2])


# MAP_TO_BEV and BACKBONE_2D of the voxel CenterPoints (Waymo, KITTI and nuScenes configs alike)
VOXEL_BEV = """\
    MAP_TO_BEV:
        NAME: HeightCompression
        NUM_BEV_FEATURES: 256
    BACKBONE_2D:
        NAME: BaseBEVBackbone
        LAYER_NUMS: [5, 5]
        LAYER_STRIDES: [1, 2]
        NUM_FILTERS: [128, 256]
        UPSAMPLE_STRIDES: [1, 2]
        NUM_UPSAMPLE_FILTERS: [256, 256]
"""


def waymo_voxel(crop=12.8, shared=64, width2d=None, num_filters=None, block_bias=None) -> str:
    """waymo_models/centerpoint.yaml (SparseKD cp-voxel-s with ``width2d``), cropped to +-crop metres."""
    b3 = "".join([f"        NUM_FILTERS: {num_filters}\n" if num_filters else "",
                  f"        USE_BIAS: {block_bias}\n" if block_bias is not None else ""])
    width = f"        WIDTH: {width2d}\n" if width2d else ""
    return f"""\
CLASS_NAMES: ['Vehicle', 'Pedestrian', 'Cyclist']
DATA_CONFIG:
    _BASE_CONFIG_: cfgs/dataset_configs/waymo_dataset.yaml
    POINT_CLOUD_RANGE: [-{crop}, -{crop}, -2, {crop}, {crop}, 4]
MODEL:
    NAME: CenterPoint
    VFE:
        NAME: MeanVFE
    BACKBONE_3D:
        NAME: VoxelResBackBone8x
{b3}    MAP_TO_BEV:
        NAME: HeightCompression
        NUM_BEV_FEATURES: 256
    BACKBONE_2D:
        NAME: BaseBEVBackbone
{width}        LAYER_NUMS: [5, 5]
        LAYER_STRIDES: [1, 2]
        NUM_FILTERS: [128, 256]
        UPSAMPLE_STRIDES: [1, 2]
        NUM_UPSAMPLE_FILTERS: [256, 256]
""" + _head("[['Vehicle', 'Pedestrian', 'Cyclist']]", shared=shared,
            center_range=[-75.2, -75.2, -2, 75.2, 75.2, 4])


def waymo_pillar(crop=10.24) -> str:
    """waymo_models/centerpoint_pillar_1x.yaml cropped to +-crop metres."""
    return f"""\
CLASS_NAMES: ['Vehicle', 'Pedestrian', 'Cyclist']
DATA_CONFIG:
    _BASE_CONFIG_: cfgs/dataset_configs/waymo_dataset.yaml
    POINT_CLOUD_RANGE: [-{crop}, -{crop}, -2, {crop}, {crop}, 4.0]
""" + _data_processor([0.32, 0.32, 6.0], 20, (150000, 150000), "    ") + """\
MODEL:
    NAME: CenterPoint
    VFE:
        NAME: PillarVFE
        WITH_DISTANCE: False
        USE_ABSLOTE_XYZ: True
        USE_NORM: True
        NUM_FILTERS: [ 64, 64 ]
    MAP_TO_BEV:
        NAME: PointPillarScatter
        NUM_BEV_FEATURES: 64
    BACKBONE_2D:
        NAME: BaseBEVBackbone
        LAYER_NUMS: [ 3, 5, 5 ]
        LAYER_STRIDES: [ 1, 2, 2 ]
        NUM_FILTERS: [ 64, 128, 256 ]
        UPSAMPLE_STRIDES: [ 1, 2, 4 ]
        NUM_UPSAMPLE_FILTERS: [ 128, 128, 128 ]
""" + _head("[['Vehicle', 'Pedestrian', 'Cyclist']]", stride=1)


def kitti_voxel8x(crop_x=25.6, crop_y=12.8) -> str:
    """A CenterPoint with OpenPCDet's VoxelBackBone8x on kitti_dataset.yaml (KITTI's classes), cropped."""
    return f"""\
CLASS_NAMES: ['Car', 'Pedestrian', 'Cyclist']
DATA_CONFIG:
    _BASE_CONFIG_: cfgs/dataset_configs/kitti_dataset.yaml
    POINT_CLOUD_RANGE: [0, -{crop_y}, -3, {crop_x}, {crop_y}, 1]
MODEL:
    NAME: CenterPoint
    VFE:
        NAME: MeanVFE
    BACKBONE_3D:
        NAME: VoxelBackBone8x
""" + VOXEL_BEV + _head("[['Car', 'Pedestrian', 'Cyclist']]", head_bias=False)


# DENSE_HEAD and POST_PROCESSING of OpenPCDet's kitti_models/pointpillar.yaml and second.yaml (they differ only in
# feature_map_stride: 2 for PointPillars, 8 for SECOND)
_ANCHOR_HEAD = """\
    DENSE_HEAD:
        NAME: AnchorHeadSingle
        CLASS_AGNOSTIC: False
        USE_DIRECTION_CLASSIFIER: True
        DIR_OFFSET: 0.78539
        DIR_LIMIT_OFFSET: 0.0
        NUM_DIR_BINS: 2
        ANCHOR_GENERATOR_CONFIG: [
            {{'class_name': 'Car', 'anchor_sizes': [[3.9, 1.6, 1.56]], 'anchor_rotations': [0, 1.57],
              'anchor_bottom_heights': [-1.78], 'align_center': False, 'feature_map_stride': {stride},
              'matched_threshold': 0.6, 'unmatched_threshold': 0.45}},
            {{'class_name': 'Pedestrian', 'anchor_sizes': [[0.8, 0.6, 1.73]], 'anchor_rotations': [0, 1.57],
              'anchor_bottom_heights': [-0.6], 'align_center': False, 'feature_map_stride': {stride},
              'matched_threshold': 0.5, 'unmatched_threshold': 0.35}},
            {{'class_name': 'Cyclist', 'anchor_sizes': [[1.76, 0.6, 1.73]], 'anchor_rotations': [0, 1.57],
              'anchor_bottom_heights': [-0.6], 'align_center': False, 'feature_map_stride': {stride},
              'matched_threshold': 0.5, 'unmatched_threshold': 0.35}}
        ]
        TARGET_ASSIGNER_CONFIG:
            NAME: AxisAlignedTargetAssigner
            POS_FRACTION: -1.0
            SAMPLE_SIZE: 512
            NORM_BY_NUM_EXAMPLES: False
            MATCH_HEIGHT: False
            BOX_CODER: ResidualCoder
        LOSS_CONFIG:
            LOSS_WEIGHTS: {{
                'cls_weight': 1.0,
                'loc_weight': 2.0,
                'dir_weight': 0.2,
                'code_weights': [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
            }}
    POST_PROCESSING:
        RECALL_THRESH_LIST: [0.3, 0.5, 0.7]
        SCORE_THRESH: 0.1
        OUTPUT_RAW_SCORE: False
        EVAL_METRIC: kitti
        NMS_CONFIG:
            MULTI_CLASSES_NMS: False
            NMS_TYPE: nms_gpu
            NMS_THRESH: 0.01
            NMS_PRE_MAXSIZE: 4096
            NMS_POST_MAXSIZE: 500
OPTIMIZATION:
    BATCH_SIZE_PER_GPU: 4
    NUM_EPOCHS: 80
    OPTIMIZER: adam_onecycle
    LR: 0.003
    WEIGHT_DECAY: 0.01
    MOMENTUM: 0.9
    MOMS: [0.95, 0.85]
    PCT_START: 0.4
    DIV_FACTOR: 10
    DECAY_STEP_LIST: [35, 45]
    LR_DECAY: 0.1
    LR_CLIP: 0.0000001
    LR_WARMUP: False
    WARMUP_EPOCH: 1
    GRAD_NORM_CLIP: 10
"""


def kitti_pointpillar(crop_x=20.48, crop_y=10.24) -> str:
    """kitti_models/pointpillar.yaml (PointPillars, AnchorHeadSingle), cropped to x 0..crop_x, y +-crop_y."""
    return f"""\
CLASS_NAMES: ['Car', 'Pedestrian', 'Cyclist']
DATA_CONFIG:
    _BASE_CONFIG_: cfgs/dataset_configs/kitti_dataset.yaml
    POINT_CLOUD_RANGE: [0, -{crop_y}, -3, {crop_x}, {crop_y}, 1]
""" + _data_processor([0.16, 0.16, 4], 32, (16000, 40000), "    ") + """\
MODEL:
    NAME: PointPillar
    VFE:
        NAME: PillarVFE
        WITH_DISTANCE: False
        USE_ABSLOTE_XYZ: True
        USE_NORM: True
        NUM_FILTERS: [64]
    MAP_TO_BEV:
        NAME: PointPillarScatter
        NUM_BEV_FEATURES: 64
    BACKBONE_2D:
        NAME: BaseBEVBackbone
        LAYER_NUMS: [3, 5, 5]
        LAYER_STRIDES: [2, 2, 2]
        NUM_FILTERS: [64, 128, 256]
        UPSAMPLE_STRIDES: [1, 2, 4]
        NUM_UPSAMPLE_FILTERS: [128, 128, 128]
""" + _ANCHOR_HEAD.format(stride=2)


def kitti_second(crop_x=12.8, crop_y=6.4) -> str:
    """kitti_models/second.yaml (SECOND: VoxelBackBone8x, AnchorHeadSingle), cropped to x 0..crop_x, y +-crop_y."""
    return f"""\
CLASS_NAMES: ['Car', 'Pedestrian', 'Cyclist']
DATA_CONFIG:
    _BASE_CONFIG_: cfgs/dataset_configs/kitti_dataset.yaml
    POINT_CLOUD_RANGE: [0, -{crop_y}, -3, {crop_x}, {crop_y}, 1]
MODEL:
    NAME: SECONDNet
    VFE:
        NAME: MeanVFE
    BACKBONE_3D:
        NAME: VoxelBackBone8x
""" + VOXEL_BEV + _ANCHOR_HEAD.format(stride=8)


NUSCENES_GROUPS = ("[['car'], ['truck', 'construction_vehicle'], ['bus', 'trailer'], ['barrier'], "
                   "['motorcycle', 'bicycle'], ['pedestrian', 'traffic_cone']]")


def nuscenes_voxel(crop=None) -> str:
    """nuscenes_models/cbgs_voxel0075_res3d_centerpoint.yaml (six heads, velocity, 10 sweeps); full range by
    default, cropped to +-crop metres when given."""
    rng = f"[-{crop}, -{crop}, -5.0, {crop}, {crop}, 3.0]" if crop else "[-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]"
    return f"""\
CLASS_NAMES: ['car','truck', 'construction_vehicle', 'bus', 'trailer',
              'barrier', 'motorcycle', 'bicycle', 'pedestrian', 'traffic_cone']
DATA_CONFIG:
    _BASE_CONFIG_: cfgs/dataset_configs/nuscenes_dataset.yaml
    POINT_CLOUD_RANGE: {rng}
""" + _data_processor([0.075, 0.075, 0.2], 10, (120000, 160000), "    ") + """\
MODEL:
    NAME: CenterPoint
    VFE:
        NAME: MeanVFE
    BACKBONE_3D:
        NAME: VoxelResBackBone8x
""" + VOXEL_BEV + _head(NUSCENES_GROUPS, velocity=True, loc_weight=0.25,
                        center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], nms=(0.2, 1000, 83))


def write_openpcdet_tree(root: Path, models: dict[str, str]) -> dict[str, Path]:
    """An OpenPCDet checkout's config folders under ``root``: tools/cfgs/dataset_configs/* and the given model
    configs (relative path under tools/cfgs -> YAML text). Returns each model config's path."""
    cfgs = root / "tools" / "cfgs"
    (cfgs / "dataset_configs").mkdir(parents=True, exist_ok=True)
    for name, text in DATASETS.items():
        (cfgs / "dataset_configs" / name).write_text(text)
    out = {}
    for rel, text in models.items():
        path = cfgs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out[rel] = path
    return out


# ----------------------------------------------------------------------------- state_dicts in the reference's form
def _spconv_weight(ours: torch.Tensor, layout: str) -> torch.Tensor:
    """Our (C_out, k, k, k, C_in) -> the layout's order."""
    if layout == "2.x":
        return ours.clone()
    if layout == "1.x":
        return ours.permute(1, 2, 3, 4, 0).contiguous()  # (k, k, k, C_in, C_out)
    if layout == "2.x-native":
        return ours.permute(1, 2, 3, 0, 4).contiguous()  # (k, k, k, C_out, C_in)
    raise ValueError(layout)


def _reference_name(key: str) -> str:
    m = re.match(r"^head\.heads\.(\d+)\.(\w+)\.(.+)$", key)
    if m:
        i, out, rest = m.groups()
        return f"dense_head.heads_list.{i}.{'hm' if out == 'heatmap' else out}.{rest}"
    for ours, theirs in (("backbone3d.", "backbone_3d."), ("backbone2d.", "backbone_2d."),
                         ("head.shared_conv.", "dense_head.shared_conv."), ("vfe.", "vfe."),
                         ("head.conv_", "dense_head.conv_")):  # AnchorHeadSingle: conv_cls, conv_box, conv_dir_cls
        if key.startswith(ours):
            return theirs + key[len(ours):]
    raise KeyError(key)


def to_reference_state(model: nn.Module, layout: str = "2.x", block_bias: bool = True, head_bias: bool = True,
                       intensity_max: float = 1.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Our model's weights as the reference stores the same network.

    block_bias: give every residual-block sparse conv a random bias b and add b to the running mean of the BN after
    it (the reference network then computes exactly what ours does). head_bias False: drop the head's shared and
    inner conv biases (the model's must be zero). intensity_max: the reference reads intensity on 0..N, ours 0..1:
    divide the weights that read it by N.
    """
    g = torch.Generator().manual_seed(seed)
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sparse = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, spconv.conv.SparseConvolution)}
    if intensity_max != 1.0:
        col = list(model.cfg.point_features).index("intensity")
        if "backbone3d.conv_input.0.weight" in own:
            own["backbone3d.conv_input.0.weight"][..., col] /= intensity_max
        else:
            own["vfe.pfn_layers.0.linear.weight"][:, col] /= intensity_max
    state = {"global_step": torch.tensor([123], dtype=torch.long)}
    for key, value in own.items():
        state[_reference_name(key)] = _spconv_weight(value, layout) if key in sparse else value
    if block_bias:
        for name, m in model.named_modules():
            if type(m).__name__ == "SparseBasicBlock":
                for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
                    b = torch.randn(m.get_submodule(conv).out_channels, generator=g) * 0.3
                    state[_reference_name(f"{name}.{conv}.bias")] = b
                    state[_reference_name(f"{name}.{bn}.running_mean")] = own[f"{name}.{bn}.running_mean"] + b
    if not head_bias:
        for key in list(state):
            if key.startswith("dense_head.") and key.endswith(".bias") and ("shared_conv.0." in key or ".0.0." in key):
                assert torch.count_nonzero(state[key]) == 0, f"{key}: the model's head bias must be zero"
                del state[key]
    return state


def save_reference_checkpoint(path: Path, state: dict, version: str | None = "pcdet+0.5.2+1234567",
                              prefix: str = "", extra: dict | None = None) -> Path:
    """A checkpoint as tools/train_utils/train_utils.py writes it (legacy pickle format), with an Adam state whose
    param groups hold numpy floats as OpenPCDet's one-cycle schedule leaves them."""
    params = [v for v in state.values() if v.is_floating_point()]
    optimizer_state = {
        "state": {i: {"step": torch.tensor(2.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
                  for i, p in enumerate(params[:3])},
        "param_groups": [{"lr": np.float64(0.000301), "betas": (np.float64(0.949), 0.99), "eps": 1e-08,
                          "weight_decay": 0, "amsgrad": False, "params": list(range(len(params)))}],
    }
    payload = {"epoch": 1, "it": 2, "model_state": {prefix + k: v for k, v in state.items()},
               "optimizer_state": optimizer_state}
    if version is not None:
        payload["version"] = version
    payload.update(extra or {})
    torch.save(payload, path, _use_new_zipfile_serialization=False)
    return path
