"""An OpenPCDet / SparseKD model config (YAML, includes resolved) -> our ModelConfig.

Supported: MeanVFE + VoxelResBackBone8x or VoxelBackBone8x + HeightCompression, or PillarVFE + PointPillarScatter;
then BaseBEVBackbone and a CenterHead (CenterPoint: one or more class groups, with or without ``vel``) or an
AnchorHeadSingle (SECOND, PointPillars: per-class anchors, the axis-aligned assigner, ResidualCoder, a direction
classifier), as OpenPCDet's Waymo, KITTI and nuScenes configs and SparseKD's width-scaled ones (``WIDTH``,
``NUM_FILTERS``, ``LAYER_NUMS``) define them. A SparseKD ``*_sparsekd.yaml`` describes a student (``MODEL``) and its
teacher (``MODEL_TEACHER``) and KD settings: the student is imported.

Carried over: class names and their grouping into heads, point features (OpenPCDet's ``timestamp`` is our
``time_lag``), voxel size, range, points per voxel, voxel caps, sweeps, the head's targets, loss weights and
post-processing (score threshold, centre range, NMS type and settings), and the training schedule. Every option
of a supported module that would change what the network computes must be one we reproduce; anything else is
refused by name, so an import either gives the reference's network or says why not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ANCHOR_CODES, ConfigError, ModelConfig, model_config_from_dict, num_regression_codes
from .yaml_config import OpenPCDetConfigError

SUPPORTED = {
    "VFE": ("MeanVFE", "PillarVFE"),
    "BACKBONE_3D": ("VoxelResBackBone8x", "VoxelBackBone8x"),
    "MAP_TO_BEV": ("HeightCompression", "PointPillarScatter"),
    "BACKBONE_2D": ("BaseBEVBackbone",),
    "DENSE_HEAD": ("CenterHead", "AnchorHeadSingle"),
}
# Sections of MODEL that only training or distillation uses: their weights, if any, are listed and left out.
KD_ONLY_SECTIONS = ("KD_ADAPT_BLOCK", "DENSE_HEAD_AUX")
# Keys of MODEL that do not change the network (evaluation, pretrained-weight loading, SparseKD's teacher flag).
IGNORED_MODEL_KEYS = ("NAME", "POST_PROCESSING", "IS_TEACHER", "IGNORE_PRETRAIN_MODULES") + KD_ONLY_SECTIONS
# What each dataset class of OpenPCDet feeds its models as intensity, as the largest value of its scale. Our models
# take 0..1 (ARCHITECTURE.md), so a model trained on 0..255 has that factor folded into its first layer.
DATASET_INTENSITY_MAX = {
    "KittiDataset": 1.0,      # reflectance as stored, 0..1
    "WaymoDataset": 1.0,      # tanh(raw intensity), 0..1; our Waymo loader applies the same tanh
    "NuScenesDataset": 255.0,  # raw 0..255 from the .pcd.bin files
}
# The ground's height (m) in the frame each dataset class feeds its models, for the node's mounting check:
# KITTI's HDL-64E sits 1.73 m above the road; Waymo's vehicle frame has its origin on the ground; nuScenes'
# LIDAR_TOP sits about 1.84 m up.
DATASET_GROUND_Z = {"KittiDataset": -1.73, "WaymoDataset": 0.0, "NuScenesDataset": -1.84}
HEAD_ORDER = ["center", "center_z", "dim", "rot"]
REG_OUT_CHANNELS = {"center": 2, "center_z": 1, "dim": 3, "rot": 2, "vel": 2}
FEATURE_NAMES = {"timestamp": "time_lag"}  # OpenPCDet's name for a sweep's age in seconds -> ours


@dataclass
class ImportedConfig:
    """The config we build (``model``) and what the import had to know about the reference's model.

    intensity_max: the largest intensity the reference model was trained on (1 for 0..1, 255 for raw 8-bit).
    ground_z: the ground's height in the model frame for its dataset class (DATASET_GROUND_Z), None if unknown.
    block_biases: the residual blocks' sparse convs carry biases (OpenPCDet's default, ``USE_BIAS`` unset).
    head_conv_bias: the head's shared and inner convs carry biases (``USE_BIAS_BEFORE_NORM``).
    notes: what was carried over or left out, for the import report and the checkpoint's meta.
    """

    model: ModelConfig
    intensity_max: float
    block_biases: bool
    head_conv_bias: bool
    notes: list[str] = field(default_factory=list)
    ground_z: float | None = None


class _Section:
    """A mapping of the config with its dotted path, for reads that name the key when they fail."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise OpenPCDetConfigError(f"{path} must be a mapping in the config (got {type(data).__name__})")
        self.data, self.path = data, path

    def sub(self, key: str) -> "_Section":
        return _Section(self.require(key), f"{self.path}.{key}")

    def require(self, key: str):
        if key not in self.data:
            raise OpenPCDetConfigError(f"the config has no {self.path}.{key}, which an OpenPCDet {self.path} "
                                       "needs: is this the config the checkpoint was trained with?")
        return self.data[key]

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def expect(self, key: str, allowed: tuple, default=None):
        """The value of ``key`` (``default`` when absent), refused unless it is one of ``allowed``."""
        value = self.data.get(key, default)
        if value not in allowed:
            raise OpenPCDetConfigError(
                f"{self.path}.{key}: {value!r} is not supported by sparsekd-import "
                f"(supported: {', '.join(repr(a) for a in allowed)}); the imported network would compute "
                "something else than the reference's")
        return value

    def only(self, known: tuple) -> None:
        """Refuse keys this importer does not know for this module (they could change the network)."""
        unknown = [k for k in self.data if k not in known]
        if unknown:
            raise OpenPCDetConfigError(
                f"{self.path}.{unknown[0]} is an option sparsekd-import does not know for "
                f"{self.data.get('NAME', self.path)} (known: {', '.join(known)}); it may change what the network "
                "computes, so the import stops rather than guess")


def _module(model: _Section, key: str) -> _Section:
    sec = model.sub(key)
    name = sec.require("NAME")
    if name not in SUPPORTED[key]:
        raise OpenPCDetConfigError(
            f"MODEL.{key}.NAME is {name}, which sparsekd_ros does not have. Supported {key}: "
            f"{', '.join(SUPPORTED[key])} (CenterPoint, SECOND and PointPillars voxel and pillar models)")
    return sec


def _width(sec: _Section) -> float:
    return float(sec.get("WIDTH", None) or 1.0)


def _vfe(model: _Section, notes: list) -> dict:
    sec = _module(model, "VFE")
    if sec.data["NAME"] == "MeanVFE":
        sec.only(("NAME",))
        return {"type": "mean"}
    sec.only(("NAME", "WITH_DISTANCE", "USE_ABSLOTE_XYZ", "USE_NORM", "NUM_FILTERS", "LAYER_TYPE", "POOLING_MODE",
              "COMPRESS_POINT"))
    sec.expect("USE_ABSLOTE_XYZ", (True,))
    sec.expect("LAYER_TYPE", ("PFNLayer",), "PFNLayer")
    sec.expect("POOLING_MODE", ("max",), "max")
    sec.expect("COMPRESS_POINT", (None, False), None)
    return {"type": "pillar", "filters": list(sec.require("NUM_FILTERS")), "use_norm": bool(sec.require("USE_NORM")),
            "with_distance": bool(sec.require("WITH_DISTANCE"))}


def _backbone3d(model: _Section) -> tuple[dict, bool]:
    """-> our backbone3d section, and whether its residual blocks' convs carry biases."""
    sec = _module(model, "BACKBONE_3D")
    sec.only(("NAME", "NUM_FILTERS", "LAYER_NUMS", "WIDTH", "ACT_FN", "USE_BIAS", "last_pad"))
    sec.expect("ACT_FN", ("ReLU",), "ReLU")
    sec.expect("last_pad", (0,), 0)
    residual = sec.data["NAME"] == "VoxelResBackBone8x"
    defaults = ([16, 16, 32, 64, 128, 128], [1, 2, 3, 3, 3, 1]) if residual else \
        ([16, 16, 32, 64, 64, 128], [1, 1, 3, 3, 3, 1])
    filters = list(sec.get("NUM_FILTERS", None) or defaults[0])
    layers = list(sec.get("LAYER_NUMS", None) or defaults[1])
    # OpenPCDet's SparseBasicBlock has biases unless USE_BIAS is set to false
    block_biases = residual and sec.get("USE_BIAS", None) is not False
    return ({"type": "voxel_res8x" if residual else "voxel8x", "filters": filters, "layers": layers,
             "width": _width(sec)}, block_biases)


def _bev(model: _Section) -> dict:
    sec = _module(model, "MAP_TO_BEV")
    sec.only(("NAME", "NUM_BEV_FEATURES"))
    kind = "height_compression" if sec.data["NAME"] == "HeightCompression" else "pillar_scatter"
    return {"type": kind, "num_features": int(sec.require("NUM_BEV_FEATURES"))}


def _backbone2d(model: _Section) -> dict:
    sec = _module(model, "BACKBONE_2D")
    sec.only(("NAME", "LAYER_NUMS", "LAYER_STRIDES", "NUM_FILTERS", "UPSAMPLE_STRIDES", "NUM_UPSAMPLE_FILTERS",
              "WIDTH", "ACT_FN", "NORM_TYPE", "CONV_BLOCK", "DECONV_BLOCK", "FOCUS"))
    sec.expect("ACT_FN", ("ReLU",), "ReLU")
    sec.expect("NORM_TYPE", ("BatchNorm2d",), "BatchNorm2d")
    sec.expect("CONV_BLOCK", ("BasicBlock2D",), "BasicBlock2D")
    sec.expect("DECONV_BLOCK", ("ConvTranspose2dBlock",), "ConvTranspose2dBlock")
    sec.expect("FOCUS", (None, False), None)
    layers = list(sec.require("LAYER_NUMS"))
    ups = list(sec.require("UPSAMPLE_STRIDES"))
    if len(ups) != len(layers):
        raise OpenPCDetConfigError(f"{sec.path}: {len(ups)} UPSAMPLE_STRIDES for {len(layers)} levels; only one "
                                   "upsampling block per level is supported (no extra final deblock)")
    return {"layers": layers, "strides": list(sec.require("LAYER_STRIDES")),
            "filters": list(sec.require("NUM_FILTERS")),
            "upsample_strides": [float(u) for u in ups],
            "upsample_filters": list(sec.require("NUM_UPSAMPLE_FILTERS")), "width": _width(sec)}


def _head(model: _Section, class_names: list[str], notes: list) -> tuple[dict, bool]:
    """-> our head section, and whether the shared and inner head convs carry biases."""
    sec = _module(model, "DENSE_HEAD")
    sec.only(("NAME", "CLASS_AGNOSTIC", "CLASS_NAMES_EACH_HEAD", "SHARED_CONV_CHANNEL", "USE_BIAS_BEFORE_NORM",
              "NUM_HM_CONV", "SEPARATE_HEAD_CFG", "TARGET_ASSIGNER_CONFIG", "LOSS_CONFIG", "POST_PROCESSING",
              "BN_EPS", "BN_MOM", "ACT_FN", "NORM_TYPE", "PRE_BLOCK", "SHARED_CONV_UPSAMPLE",
              "SHARED_CONV_DOWNSAMPLE", "PRED_BOX_WHEN_TRAIN", "DISABLE", "DISABLE_INFERENCE"))
    sec.expect("CLASS_AGNOSTIC", (False, None), False)
    sec.expect("BN_EPS", (1e-5,), 1e-5)
    sec.expect("ACT_FN", ("ReLU",), "ReLU")
    sec.expect("NORM_TYPE", ("BatchNorm2d",), "BatchNorm2d")
    for key in ("PRE_BLOCK", "SHARED_CONV_UPSAMPLE", "SHARED_CONV_DOWNSAMPLE", "DISABLE", "DISABLE_INFERENCE"):
        sec.expect(key, (None, False), None)

    # OpenPCDet keeps, per head, the listed classes that are in CLASS_NAMES, in the head's order
    groups = [[c for c in group if c in class_names] for group in sec.require("CLASS_NAMES_EACH_HEAD")]
    if any(not g for g in groups) or sorted(c for g in groups for c in g) != sorted(class_names):
        raise OpenPCDetConfigError(
            f"{sec.path}.CLASS_NAMES_EACH_HEAD {sec.data['CLASS_NAMES_EACH_HEAD']} does not split CLASS_NAMES "
            f"{class_names} into non-empty heads with every class once")

    sep = sec.sub("SEPARATE_HEAD_CFG")
    sep.only(("HEAD_ORDER", "HEAD_DICT", "UPSAMPLE"))
    sep.expect("UPSAMPLE", (None, False), None)
    order = list(sep.require("HEAD_ORDER"))
    velocity = order == HEAD_ORDER + ["vel"]
    if order != HEAD_ORDER and not velocity:
        raise OpenPCDetConfigError(
            f"{sep.path}.HEAD_ORDER {order} is not supported: sparsekd_ros regresses {HEAD_ORDER} and optionally "
            "'vel' after them (an 'iou' branch or another order is not supported)")
    head_dict = sep.sub("HEAD_DICT")
    if sorted(head_dict.data) != sorted(order):
        raise OpenPCDetConfigError(f"{head_dict.path} defines {sorted(head_dict.data)} but HEAD_ORDER is {order}")
    num_convs = set()
    for name in order:
        spec = head_dict.sub(name)
        if spec.require("out_channels") != REG_OUT_CHANNELS[name]:
            raise OpenPCDetConfigError(f"{spec.path}.out_channels is {spec.data['out_channels']}; '{name}' has "
                                       f"{REG_OUT_CHANNELS[name]} outputs in CenterPoint")
        num_convs.add(int(spec.require("num_conv")))
    if len(num_convs) != 1:
        raise OpenPCDetConfigError(f"{head_dict.path}: regression heads with different num_conv {sorted(num_convs)} "
                                   "are not supported (one tower depth for all of them)")

    target = sec.sub("TARGET_ASSIGNER_CONFIG")
    target.expect("SHARPER", (None, False), None)
    weights = sec.sub("LOSS_CONFIG").sub("LOSS_WEIGHTS")
    code_weights = [float(w) for w in weights.require("code_weights")]
    if len(code_weights) != num_regression_codes(velocity):
        raise OpenPCDetConfigError(f"{weights.path}.code_weights has {len(code_weights)} values for "
                                   f"{num_regression_codes(velocity)} regression codes")
    post = sec.sub("POST_PROCESSING")
    post.expect("USE_IOU_TO_RECTIFY_SCORE", (None, False), None)
    nms = post.sub("NMS_CONFIG")
    nms_type = nms.expect("NMS_TYPE", ("nms_gpu", "nms_normal", "class_specific_nms"))
    threshold = nms.require("NMS_THRESH")
    if not isinstance(threshold, (int, float)):
        raise OpenPCDetConfigError(f"{nms.path}.NMS_THRESH {threshold!r}: one IoU threshold for all classes is "
                                   "supported, not one per class")
    head = {
        "shared_channels": int(sec.require("SHARED_CONV_CHANNEL")),
        "num_hm_conv": int(sec.require("NUM_HM_CONV")),
        "num_reg_conv": num_convs.pop(),
        "feature_stride": int(target.require("FEATURE_MAP_STRIDE")),
        "class_groups": [] if groups == [class_names] else groups,
        "velocity": velocity,
        "target": {"gaussian_overlap": float(target.require("GAUSSIAN_OVERLAP")),
                   "min_radius": int(target.require("MIN_RADIUS")),
                   "max_objects": int(target.require("NUM_MAX_OBJS"))},
        "loss": {"cls_weight": float(weights.require("cls_weight")), "loc_weight": float(weights.require("loc_weight")),
                 "code_weights": code_weights},
        "post": {"score_threshold": float(post.require("SCORE_THRESH")),
                 "center_range": [float(v) for v in post.require("POST_CENTER_LIMIT_RANGE")],
                 "max_per_sample": int(post.require("MAX_OBJ_PER_SAMPLE")),
                 "nms_iou_threshold": float(threshold),
                 "nms_pre_max_size": int(nms.require("NMS_PRE_MAXSIZE")),
                 "nms_post_max_size": int(nms.require("NMS_POST_MAXSIZE")),
                 "class_agnostic_nms": nms_type != "class_specific_nms",
                 "nms_type": "axis_aligned" if nms_type == "nms_normal" else "rotated"},
    }
    if len(groups) > 1:
        notes.append(f"{len(groups)} heads: " + "; ".join(", ".join(g) for g in groups))
    return head, sec.get("USE_BIAS_BEFORE_NORM", False) is True


def _anchor_head(model: _Section, class_names: list[str], point_cloud_range: list[float]) -> dict:
    """AnchorHeadSingle (SECOND, PointPillars) -> our head section. Its post-processing is MODEL.POST_PROCESSING."""
    sec = _module(model, "DENSE_HEAD")
    sec.only(("NAME", "CLASS_AGNOSTIC", "USE_DIRECTION_CLASSIFIER", "DIR_OFFSET", "DIR_LIMIT_OFFSET", "NUM_DIR_BINS",
              "ANCHOR_GENERATOR_CONFIG", "TARGET_ASSIGNER_CONFIG", "LOSS_CONFIG"))
    sec.expect("CLASS_AGNOSTIC", (False, None), False)
    direction = sec.get("USE_DIRECTION_CLASSIFIER", None) is not None  # OpenPCDet tests for presence, not truth
    generators = sec.require("ANCHOR_GENERATOR_CONFIG")
    if [g.get("class_name") for g in generators] != class_names:
        raise OpenPCDetConfigError(
            f"{sec.path}.ANCHOR_GENERATOR_CONFIG lists the classes {[g.get('class_name') for g in generators]}; "
            f"sparsekd-import needs one anchor set per class in CLASS_NAMES order {class_names}")
    anchors, strides = [], set()
    for i, g in enumerate(generators):
        gen = _Section(g, f"{sec.path}.ANCHOR_GENERATOR_CONFIG[{i}]")
        gen.only(("class_name", "anchor_sizes", "anchor_rotations", "anchor_bottom_heights", "align_center",
                  "feature_map_stride", "matched_threshold", "unmatched_threshold"))
        heights = list(gen.require("anchor_bottom_heights"))
        if len(heights) != 1:
            raise OpenPCDetConfigError(f"{gen.path}.anchor_bottom_heights {heights}: one bottom height per class is "
                                       "supported (AnchorHeadSingle's layout with several is not)")
        strides.add(int(gen.require("feature_map_stride")))
        anchors.append({"class_name": g["class_name"],
                        "sizes": [[float(v) for v in size] for size in gen.require("anchor_sizes")],
                        "rotations": [float(r) for r in gen.require("anchor_rotations")],
                        "bottom_height": float(heights[0]), "align_center": bool(gen.get("align_center", False)),
                        "matched_threshold": float(gen.require("matched_threshold")),
                        "unmatched_threshold": float(gen.require("unmatched_threshold"))})
    if len(strides) != 1:
        raise OpenPCDetConfigError(f"{sec.path}.ANCHOR_GENERATOR_CONFIG: feature_map_stride {sorted(strides)} differ "
                                   "between classes; AnchorHeadSingle has one map")
    target = sec.sub("TARGET_ASSIGNER_CONFIG")
    target.only(("NAME", "POS_FRACTION", "SAMPLE_SIZE", "NORM_BY_NUM_EXAMPLES", "MATCH_HEIGHT", "BOX_CODER",
                 "BOX_CODER_CONFIG"))
    target.expect("NAME", ("AxisAlignedTargetAssigner",))
    target.expect("NORM_BY_NUM_EXAMPLES", (False,), False)
    target.expect("MATCH_HEIGHT", (False,), False)
    target.expect("BOX_CODER", ("ResidualCoder",))
    coder = target.get("BOX_CODER_CONFIG", None) or {}
    if coder.get("encode_angle_by_sincos", False) or coder.get("code_size", ANCHOR_CODES) != ANCHOR_CODES:
        raise OpenPCDetConfigError(f"{target.path}.BOX_CODER_CONFIG {coder}: ResidualCoder's 7 codes with a plain "
                                   "angle residual are supported (no sin/cos encoding, no extra codes)")
    if float(target.get("POS_FRACTION", -1.0)) >= 0:
        raise OpenPCDetConfigError(f"{target.path}.POS_FRACTION {target.data['POS_FRACTION']}: anchor sampling is "
                                   "not supported (OpenPCDet's SECOND and PointPillars configs use -1: every anchor)")
    loss = sec.sub("LOSS_CONFIG")
    loss.only(("LOSS_WEIGHTS", "REG_LOSS_TYPE"))
    loss.expect("REG_LOSS_TYPE", (None, "WeightedSmoothL1Loss"), None)
    weights = loss.sub("LOSS_WEIGHTS")
    code_weights = [float(w) for w in weights.require("code_weights")]
    if len(code_weights) != ANCHOR_CODES:
        raise OpenPCDetConfigError(f"{weights.path}.code_weights has {len(code_weights)} values for the "
                                   f"{ANCHOR_CODES} residual codes")
    post = model.sub("POST_PROCESSING")
    post.expect("OUTPUT_RAW_SCORE", (False, None), False)
    nms = post.sub("NMS_CONFIG")
    nms.expect("MULTI_CLASSES_NMS", (False,))  # each anchor's best class, then one NMS (per class: not reproduced)
    nms_type = nms.expect("NMS_TYPE", ("nms_gpu", "nms_normal"))
    threshold = nms.require("NMS_THRESH")
    if not isinstance(threshold, (int, float)):
        raise OpenPCDetConfigError(f"{nms.path}.NMS_THRESH {threshold!r}: one IoU threshold for all classes is "
                                   "supported, not one per class")
    r = point_cloud_range
    margin = 10.0  # no centre filter in OpenPCDet's anchor post-processing: anchors and residuals stay near the range
    return {
        "type": "anchor",
        "feature_stride": strides.pop(),
        "anchor": {"anchors": anchors, "dir_classifier": direction,
                   "num_dir_bins": int(sec.get("NUM_DIR_BINS", 2)), "dir_offset": float(sec.get("DIR_OFFSET", 0.0)),
                   "dir_limit_offset": float(sec.get("DIR_LIMIT_OFFSET", 0.0)),
                   "dir_weight": float(weights.get("dir_weight", 0.2))},
        "loss": {"cls_weight": float(weights.require("cls_weight")), "loc_weight": float(weights.require("loc_weight")),
                 "code_weights": code_weights},
        "post": {"score_threshold": float(post.require("SCORE_THRESH")),
                 "center_range": [r[0] - margin, r[1] - margin, r[2] - margin, r[3] + margin, r[4] + margin,
                                  r[5] + margin],
                 "nms_iou_threshold": float(threshold),
                 "nms_pre_max_size": int(nms.require("NMS_PRE_MAXSIZE")),
                 "nms_post_max_size": int(nms.require("NMS_POST_MAXSIZE")),
                 "class_agnostic_nms": True,
                 "nms_type": "axis_aligned" if nms_type == "nms_normal" else "rotated"},
    }


def _voxelization(data: _Section, notes: list) -> dict:
    procs = data.require("DATA_PROCESSOR")
    names = [p.get("NAME") for p in procs if isinstance(p, dict)]
    if "transform_points_to_voxels_placeholder" in names:
        raise OpenPCDetConfigError(
            f"{data.path}.DATA_PROCESSOR voxelises dynamically (transform_points_to_voxels_placeholder, for "
            "DynamicVoxelVFE / DynPillarVFE models); sparsekd_ros supports the fixed voxelisation "
            "(transform_points_to_voxels) of MeanVFE and PillarVFE models")
    if "transform_points_to_voxels" not in names:
        raise OpenPCDetConfigError(f"{data.path}.DATA_PROCESSOR has no transform_points_to_voxels step "
                                   f"(steps: {names}); the voxel size and caps come from it")
    vox = _Section(procs[names.index("transform_points_to_voxels")],
                   f"{data.path}.DATA_PROCESSOR[transform_points_to_voxels]")
    caps = vox.require("MAX_NUMBER_OF_VOXELS")
    caps = caps if isinstance(caps, dict) else {"train": caps, "test": caps}
    dropped = [n for n in names if n not in ("transform_points_to_voxels", "mask_points_and_boxes_outside_range",
                                             "shuffle_points")]
    if dropped:
        notes.append(f"data processors not carried over (training-time only here): {', '.join(dropped)}")
    return {"voxel_size": [float(v) for v in vox.require("VOXEL_SIZE")],
            "point_cloud_range": [float(v) for v in data.require("POINT_CLOUD_RANGE")],
            "max_points_per_voxel": int(vox.require("MAX_POINTS_PER_VOXEL")),
            "max_voxels_train": int(caps["train"]), "max_voxels_test": int(caps["test"])}


def _point_features(data: _Section) -> list[str]:
    enc = data.sub("POINT_FEATURE_ENCODING")
    enc.expect("encoding_type", ("absolute_coordinates_encoding",))
    used = list(enc.require("used_feature_list"))
    if used[:3] != ["x", "y", "z"]:
        raise OpenPCDetConfigError(f"{enc.path}.used_feature_list {used} must start with x, y, z")
    return [FEATURE_NAMES.get(f, f) for f in used]


def _sweeps(data: _Section) -> int:
    if data.get("SEQUENCE_CONFIG") and data.get("SEQUENCE_CONFIG").get("ENABLED"):
        lo, hi = data.sub("SEQUENCE_CONFIG").require("SAMPLE_OFFSET")
        return int(hi) - int(lo) + 1
    return int(data.get("MAX_SWEEPS", 1) or 1)


def _train(cfg: dict, notes: list) -> dict:
    opt = cfg.get("OPTIMIZATION")
    if not isinstance(opt, dict):
        return {}
    if opt.get("OPTIMIZER") != "adam_onecycle":
        notes.append(f"OPTIMIZATION.OPTIMIZER {opt.get('OPTIMIZER')!r} not carried over (sparsekd-train runs Adam "
                     "one-cycle); the training schedule keeps its defaults")
        return {}
    keys = {"epochs": "NUM_EPOCHS", "batch_size": "BATCH_SIZE_PER_GPU", "lr": "LR", "weight_decay": "WEIGHT_DECAY",
            "moms": "MOMS", "pct_start": "PCT_START", "div_factor": "DIV_FACTOR", "grad_clip": "GRAD_NORM_CLIP"}
    out = {ours: opt[theirs] for ours, theirs in keys.items() if theirs in opt}
    for k in ("lr", "weight_decay", "pct_start", "div_factor", "grad_clip"):
        if k in out:
            out[k] = float(out[k])
    if "moms" in out:
        out["moms"] = [float(m) for m in out["moms"]]
    return out


def model_config_from_openpcdet(cfg: dict, name: str, source: str = "<config>",
                                intensity_max: float | None = None) -> ImportedConfig:
    """A resolved OpenPCDet config dict (``load_openpcdet_config``) -> ImportedConfig (our ModelConfig and facts).

    ``intensity_max`` overrides the intensity scale the dataset class implies (DATASET_INTENSITY_MAX); it is
    required for datasets this table does not know when the model reads intensity.
    """
    notes: list[str] = []
    root = _Section(cfg, "")
    if "MODEL" not in cfg:
        raise OpenPCDetConfigError(f"{source} has no MODEL section: pass the model config the checkpoint was trained "
                                   "with (e.g. tools/cfgs/waymo_models/centerpoint.yaml), not a dataset config")
    model = _Section(cfg["MODEL"], "MODEL")
    if "MODEL_TEACHER" in cfg or "KD" in cfg:
        notes.append("a SparseKD config: the student (MODEL) is imported; MODEL_TEACHER, KD and KD_LOSS are not")
    extra = [k for k in model.data if k not in IGNORED_MODEL_KEYS and k not in SUPPORTED]
    if extra:
        value = model.data[extra[0]]
        what = f" ({value.get('NAME')})" if isinstance(value, dict) and "NAME" in value else ""
        raise OpenPCDetConfigError(
            f"MODEL.{extra[0]}{what} is a module sparsekd_ros does not have; supported: a single-stage model of "
            + "; ".join(f"{k} {' or '.join(v)}" for k, v in SUPPORTED.items()))
    class_names = [str(c) for c in root.require("CLASS_NAMES")]
    data = _Section(cfg.get("DATA_CONFIG"), "DATA_CONFIG")
    pillar = model.sub("VFE").get("NAME") == "PillarVFE"
    if pillar and "BACKBONE_3D" in model.data:
        raise OpenPCDetConfigError("MODEL.BACKBONE_3D with a PillarVFE is not a pillar layout (CenterPoint-Pillar, "
                                   "PointPillars) that sparsekd_ros has")
    if not pillar and "BACKBONE_3D" not in model.data:
        raise OpenPCDetConfigError("MODEL.BACKBONE_3D is missing: a MeanVFE model needs VoxelResBackBone8x or "
                                   "VoxelBackBone8x")
    features = _point_features(data)
    dataset = data.get("DATASET")
    if intensity_max is None and "intensity" in features:
        if dataset not in DATASET_INTENSITY_MAX:
            raise OpenPCDetConfigError(
                f"DATA_CONFIG.DATASET {dataset!r}: sparsekd-import does not know which intensity scale this dataset "
                f"feeds its models (it knows {', '.join(DATASET_INTENSITY_MAX)}). Pass --intensity-max 1 if the "
                "model was trained on 0..1 intensity, 255 if on raw 8-bit values")
        intensity_max = DATASET_INTENSITY_MAX[dataset]
    intensity_max = float(intensity_max or 1.0)
    voxelization = _voxelization(data, notes)
    if model.sub("DENSE_HEAD").get("NAME") == "AnchorHeadSingle":
        head, head_bias = _anchor_head(model, class_names, voxelization["point_cloud_range"]), False
    else:
        head, head_bias = _head(model, class_names, notes)
    d = {
        "name": name,
        "description": f"imported from OpenPCDet config {source}",
        "class_names": class_names,
        "point_features": features,
        "voxelization": voxelization,
        "vfe": _vfe(model, notes),
        "bev": _bev(model),
        "backbone2d": _backbone2d(model),
        "head": head,
        "train": _train(cfg, notes),
        "sweeps": _sweeps(data),
    }
    block_biases = False
    if pillar:
        d["backbone3d"] = {"type": "none"}
    else:
        d["backbone3d"], block_biases = _backbone3d(model)
    if intensity_max != 1.0:
        notes.append(f"intensity: the reference model was trained on 0..{intensity_max:g} ({dataset}); that factor is "
                     "folded into its first layer, so the imported model takes 0..1 like every sparsekd model")
    if d["sweeps"] > 1:
        lag = " with a time_lag feature" if "time_lag" in features else ""
        notes.append(f"the reference merges {d['sweeps']} sweeps per input{lag}")
    try:
        model_cfg = model_config_from_dict(d, source=f"{source} (imported)")
    except ConfigError as e:
        raise OpenPCDetConfigError(str(e)) from e
    return ImportedConfig(model_cfg, intensity_max, block_biases, head_bias, notes, DATASET_GROUND_Z.get(dataset))


def model_name_for(config_path: str | Path) -> str:
    """Our model name for an imported config: its file name without .yaml."""
    return Path(config_path).stem
