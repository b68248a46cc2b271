"""Autoware's lidar_centerpoint: its model layout, and our pillar models wrapped to fit it.

Facts from autowarefoundation/autoware_universe at tag 0.43.0 (commit b8ce82e3759e50f780a0941ca8698ff52aa57b97),
package perception/autoware_lidar_centerpoint (lib/centerpoint_trt.cpp, lib/preprocess/preprocess_kernel.cu,
lib/network/scatter_kernel.cu, lib/postprocess/postprocess_kernel.cu, lib/ros_utils.cpp,
include/autoware/lidar_centerpoint/centerpoint_config.hpp, launch/lidar_centerpoint.launch.xml, config/):

- The node loads two ONNX files (TensorRT builds engines from them): ``pts_voxel_encoder_<model_name>.onnx``
  (``input_features`` (V, 32, 9) -> ``pillar_features`` (V, 1, 32)) and ``pts_backbone_neck_head_<model_name>.onnx``
  (``spatial_features`` (1, 32, H, W) -> ``heatmap, reg, height, dim, rot, vel``, in that order).
- Its CUDA preprocessing merges the current sweep with ``num_past_frames`` earlier ones, keeps at most 32
  points per pillar and feeds the encoder 9 features per point: x, y, z, the sweep's time lag in seconds (not
  intensity), the offsets to the pillar's point mean (3) and to the pillar centre in x and y (2); padded points
  are all zero. Its scatter writes 32 channels per pillar. These three numbers are compiled-in constants.
- Decoding: score = sigmoid(heatmap), the best class per cell; x = vx * downsample * (col + reg[0]) + x_min,
  y likewise; z = height; width = exp(dim[0]), length = exp(dim[1]), height = exp(dim[2]);
  yaw_mmdet = atan2(rot[0], rot[1]) and the ROS yaw is -yaw_mmdet - pi/2; vel is read as (vx, vy), used
  with has_twist. One task head only.

Our pillar encoder takes x y z + the model's point features, the offsets to the pillar mean (3) and to the
pillar centre (3, z too). The exported encoder takes Autoware's 9 features and builds ours from them:
z's centre offset from z, the time lag as the model's ``time_lag`` feature (multi-sweep models), its other
point features (intensity, ...) as zeros (Autoware does not pass them). The exported head re-expresses our
maps in Autoware's conventions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..backends.graphs import inference_copy
from ..models.center_head import HeadOutput
from ..models.heading import to_cos_sin
from ..ops.voxelize import VoxelBatch
from .errors import ExportError

AUTOWARE_REF = "autoware_universe 0.43.0 (commit b8ce82e3759e50f780a0941ca8698ff52aa57b97)"
MAX_POINTS_PER_PILLAR = 32  # MAX_POINT_IN_VOXEL_SIZE, preprocess_kernel.cu
ENCODER_IN_FEATURES = 9  # ENCODER_IN_FEATURE_SIZE, preprocess_kernel.cu
ENCODER_OUT_FEATURES = 32  # encoder_out_feature_size_ (const), centerpoint_config.hpp
PATCH_MARK = "rebuild autoware_lidar_centerpoint"  # in the note of files that need a patched Autoware build
POINT_FEATURE_SIZE = 4  # x, y, z, time lag
ENCODER_INPUT, ENCODER_OUTPUT = "input_features", "pillar_features"
HEAD_INPUT = "spatial_features"
HEAD_OUTPUTS = ("heatmap", "reg", "height", "dim", "rot", "vel")

#: Our class names (lower case) -> the names Autoware's getSemanticType (lib/ros_utils.cpp) understands.
CLASS_LABELS = {
    "car": "CAR", "vehicle": "CAR", "van": "CAR", "truck": "TRUCK", "bus": "BUS", "trailer": "TRAILER",
    "cyclist": "BICYCLE", "bicycle": "BICYCLE", "motorcycle": "MOTORBIKE", "motorbike": "MOTORBIKE",
    "pedestrian": "PEDESTRIAN",
}


def encoder_file(model_name: str) -> str:
    return f"pts_voxel_encoder_{model_name}.onnx"


def head_file(model_name: str) -> str:
    return f"pts_backbone_neck_head_{model_name}.onnx"


@dataclass(frozen=True)
class AutowareLayout:
    """What the node's ml_package parameters say about a model, and how it differs from stock Autoware."""

    class_names: tuple[str, ...]
    point_cloud_range: tuple[float, ...]
    voxel_size: tuple[float, ...]
    grid_xy: tuple[int, int]
    downsample_factor: int
    encoder_out_features: int
    max_voxels: int
    past_frames: int  # densification_params.num_past_frames: the sweeps the model merges, minus the current one
    has_twist: bool
    notes: tuple[str, ...]  # differences from our torch pipeline that the user must know


def autoware_grid(point_cloud_range, voxel_size) -> tuple[int, int]:
    """Grid size as CenterPointConfig computes it: float32 (max - min) / size, truncated."""
    r = torch.tensor(point_cloud_range, dtype=torch.float32)
    v = torch.tensor(voxel_size, dtype=torch.float32)
    cells = ((r[3:5] - r[0:2]) / v[0:2]).tolist()
    return int(cells[0]), int(cells[1])


def autoware_class_names(names, override=None) -> tuple[str, ...]:
    if override:
        if len(override) != len(names):
            raise ExportError(f"--class-names gives {len(override)} names for a model with {len(names)} classes "
                              f"({', '.join(names)})")
        return tuple(override)
    unknown = [n for n in names if n.lower() not in CLASS_LABELS]
    if unknown:
        raise ExportError(
            f"class(es) {', '.join(unknown)} have no Autoware label (Autoware knows CAR, TRUCK, BUS, TRAILER, "
            "BICYCLE, MOTORBIKE, PEDESTRIAN; others become UNKNOWN). Pass --class-names with one Autoware name "
            "per model class, in order.")
    return tuple(CLASS_LABELS[n.lower()] for n in names)


def check_autoware(model: nn.Module, allow_patch: bool = False, class_names=None,
                   max_voxels: int | None = None) -> AutowareLayout:
    """Check that Autoware's lidar_centerpoint can run ``model``; raise ExportError naming what cannot.

    Stock Autoware scatters 32 channels per pillar: a pillar encoder with another width runs only in a build
    whose ``encoder_out_feature_size_`` is changed to it (``allow_patch``).
    """
    cfg = model.cfg
    if len(cfg.class_groups()) != 1:
        raise ExportError(f"{cfg.name} has {len(cfg.class_groups())} task heads (head.class_groups); Autoware's "
                          "lidar_centerpoint reads one head (six output maps). Export it with --format onnx, or "
                          "train a single-head model.")
    if not cfg.is_pillar:
        raise ExportError(
            f"{cfg.name} is a voxel model (sparse 3D backbone); Autoware's lidar_centerpoint runs pillar "
            "CenterPoints only (encoder + backbone/neck/head). Supported: the pillar family (cp_pillar, "
            "cp_pillar_v0.4/0.48/0.64, their _sim and kitti_ variants). Use --format onnx for the dense part.")
    vox = cfg.voxelization
    ours = tuple(vox.grid_size()[:2])
    grid = autoware_grid(vox.point_cloud_range, vox.voxel_size)
    if grid != ours:
        raise ExportError(f"Autoware computes a {grid[0]} x {grid[1]} grid from point_cloud_range / voxel_size in "
                          f"float32 where the model has {ours[0]} x {ours[1]}; choose a range that is a whole "
                          "number of pillars in float32")
    stride = int(cfg.head.feature_stride)
    if grid[0] % stride or grid[1] % stride:
        raise ExportError(f"grid {grid} is not a multiple of the head's stride {stride} (Autoware's downsample_factor)")
    notes = []
    width = int(model.vfe.out_channels)
    if width != ENCODER_OUT_FEATURES:
        msg = (f"the pillar encoder has {width} output channels; stock Autoware ({AUTOWARE_REF}) scatters "
               f"{ENCODER_OUT_FEATURES} (encoder_out_feature_size_ in include/autoware/lidar_centerpoint/"
               f"centerpoint_config.hpp is a compiled-in constant)")
        if not allow_patch:
            raise ExportError(
                msg + ". Either distil a student with vfe.filters [32, 32] and bev.num_features 32 (TGI narrows a "
                "64-channel teacher to it), or leave out --stock-autoware to write the files for an Autoware "
                f"build with that constant set to {width}.")
        notes.append(msg + f": set it to {width} and {PATCH_MARK} before loading these files")
    if vox.max_points_per_voxel > MAX_POINTS_PER_PILLAR:
        notes.append(f"Autoware keeps at most {MAX_POINTS_PER_PILLAR} points per pillar (the model was trained "
                     f"with up to {vox.max_points_per_voxel}); fuller pillars see a random subset")
    extra = [f for f in cfg.point_features[3:] if f != "time_lag"]
    if extra:
        notes.append(f"Autoware feeds x, y, z and the sweep's time lag, not {', '.join(extra)}: the exported encoder "
                     f"sets {', '.join(extra)} to 0, so accuracy drops unless the model was trained without them")
    if model.vfe.with_distance:
        notes.append("the point's distance feature is computed inside the exported encoder from x, y, z")
    if cfg.head.post.square_footprint:
        notes.append(f"Autoware publishes {', '.join(cfg.head.post.square_footprint)} boxes as the network decodes "
                     "them; our Detector makes their footprint square (head.post.square_footprint), so their "
                     "length and width differ from ours")
    if cfg.head.post.clear_overhead:
        notes.append(f"Autoware publishes {', '.join(cfg.head.post.clear_overhead)} boxes whatever lies over them; our "
                     "Detector drops those with returns just above them (head.post.clear_overhead), so Autoware "
                     "shows boxes ours do not, on sign posts and tree trunks")
    if cfg.head.post.tta_flip:
        notes.append("Autoware runs the network once a cloud; our Detector also runs it on the cloud's mirror image "
                     "and averages the two (head.post.tta_flip), so Autoware's boxes are those of sparsekd-eval "
                     "--tta-flip off")
    return AutowareLayout(
        class_names=autoware_class_names(cfg.class_names, class_names),
        point_cloud_range=tuple(float(v) for v in vox.point_cloud_range),
        voxel_size=tuple(float(v) for v in vox.voxel_size),
        grid_xy=grid, downsample_factor=stride, encoder_out_features=width,
        max_voxels=int(max_voxels or vox.max_voxels_test), past_frames=int(cfg.sweeps) - 1,
        has_twist=bool(cfg.head.velocity), notes=tuple(notes))


class AutowareEncoder(nn.Module):
    """input_features (V, P, 9), Autoware's layout -> pillar_features (V, 1, C): our pillar encoder."""

    def __init__(self, model: nn.Module):
        super().__init__()
        model = inference_copy(model)
        self.vfe = model.vfe
        vox = model.cfg.voxelization
        self.extra_features = tuple(model.cfg.point_features[3:])  # fed Autoware's time lag, or zeros
        # pillar centre height: Autoware's pillars have z index 0
        self.register_buffer("z_centre", torch.tensor(vox.point_cloud_range[2] + vox.voxel_size[2] / 2,
                                                       dtype=torch.float32), persistent=False)

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        f = input_features
        # Autoware zero-fills padded points; a real point is never all-zero (its centre offset would be 0 only
        # at a pillar centre on the origin, with z, time lag and mean offset 0 too).
        valid = (f.abs().sum(dim=2, keepdim=True) > 0).to(f.dtype)
        xyz = f[:, :, 0:3]
        zeros = xyz.new_zeros(f.shape[0], f.shape[1], 1)
        parts = [xyz] + [f[:, :, 3:4] if name == "time_lag" else zeros for name in self.extra_features]
        parts += [f[:, :, 4:7], f[:, :, 7:9], (f[:, :, 2:3] - self.z_centre) * valid]
        if self.vfe.with_distance:
            parts.append(xyz.norm(dim=2, keepdim=True))
        return self.vfe.encode(torch.cat(parts, dim=2))


def autoware_head_maps(out: HeadOutput) -> tuple[torch.Tensor, ...]:
    """Our head maps -> Autoware's (heatmap, reg, height, dim, rot, vel).

    dim: Autoware reads channel 0 as the width (our y extent) and 1 as the length (our x extent).
    rot: ours is (cos t, sin t) of the ROS yaw t; Autoware takes yaw_mmdet = atan2(rot[0], rot[1]) and
    publishes -yaw_mmdet - pi/2, so it needs (sin, cos) of -t - pi/2 = (-cos t, -sin t). The norm, which
    Autoware compares with yaw_norm_thresholds, is unchanged. A ``heading: axis_dir`` model's axis and direction
    maps are first decoded to (cos t, sin t) inside the graph (models/heading.to_cos_sin: norm sqrt of the axis
    code's). vel: (vx, vy) in the sensor frame as ours, or zeros for a model without velocity (has_twist false:
    Autoware then ignores it).
    """
    dim = torch.cat([out.dim[:, 1:2], out.dim[:, 0:1], out.dim[:, 2:3]], dim=1)
    if out.direction is None:
        rot = -out.rot
    else:
        cos_t, sin_t = to_cos_sin(out.rot.movedim(1, -1), out.direction.movedim(1, -1))
        rot = -torch.stack([cos_t, sin_t], dim=1)
    vel = out.vel if out.vel is not None else torch.zeros_like(out.center)
    return out.heatmap, out.center, out.center_z, dim, rot, vel


class AutowareHead(nn.Module):
    """spatial_features (1, C, H, W) -> Autoware's six head maps: our 2D backbone and head."""

    def __init__(self, model: nn.Module):
        super().__init__()
        model = inference_copy(model)
        self.backbone2d, self.head = model.backbone2d, model.head

    def forward(self, spatial_features: torch.Tensor):
        (out,) = self.head(self.backbone2d(spatial_features))  # one task head (check_autoware)
        return autoware_head_maps(out)


def encoder_input(vb: VoxelBatch, voxel_size, point_cloud_range, time_lag_column: int | None = None) -> torch.Tensor:
    """What Autoware's generateFeatures_kernel feeds the encoder for these voxels: (V, P, 9).

    The time lag is the voxels' ``time_lag_column`` (a multi-sweep model's time_lag feature), else 0 (the
    current sweep). Hand-written from the kernel's definition (no library computes Autoware's layout); used to
    check the exported encoder against the torch model on the same pillars. P should be <= 32, as in Autoware.
    """
    v, p, _ = vb.voxels.shape
    n = vb.num_points.long().clamp(min=1)
    valid = (torch.arange(p)[None, :] < n[:, None]).unsqueeze(-1).float()
    xyz = vb.voxels[:, :, :3]
    mean = (xyz * valid).sum(dim=1, keepdim=True) / n.float().view(-1, 1, 1)
    xs, ys = vb.coords[:, 3].float(), vb.coords[:, 2].float()
    cx = voxel_size[0] / 2 + xs * voxel_size[0] + point_cloud_range[0]
    cy = voxel_size[1] / 2 + ys * voxel_size[1] + point_cloud_range[1]
    lag = vb.voxels[:, :, time_lag_column:time_lag_column + 1] if time_lag_column is not None else xyz[:, :, :1] * 0
    feats = torch.cat([xyz, lag, xyz - mean,
                       (xyz[:, :, 0] - cx[:, None]).unsqueeze(-1), (xyz[:, :, 1] - cy[:, None]).unsqueeze(-1)], dim=2)
    return feats * valid


def scatter(pillar_features: torch.Tensor, coords: torch.Tensor, grid_xy: tuple[int, int]) -> torch.Tensor:
    """Autoware's scatterFeatures_kernel: (V, 1, C) pillar features at coords (b, z, y, x) -> (1, C, H, W)."""
    c = pillar_features.shape[-1]
    canvas = pillar_features.new_zeros(c, grid_xy[1], grid_xy[0])
    canvas[:, coords[:, 2].long(), coords[:, 3].long()] = pillar_features.reshape(-1, c).t()
    return canvas.unsqueeze(0)


def decode_cell(maps: dict, row: int, col: int, layout: AutowareLayout) -> dict:
    """Autoware's postprocess for one cell of its six maps (batch 0): the box it publishes, in the ROS frame."""
    def at(name, ch):
        return float(maps[name][0, ch, row, col])

    ds = layout.downsample_factor
    yaw_mmdet = math.atan2(at("rot", 0), at("rot", 1))
    return {
        "x": layout.voxel_size[0] * ds * (col + at("reg", 0)) + layout.point_cloud_range[0],
        "y": layout.voxel_size[1] * ds * (row + at("reg", 1)) + layout.point_cloud_range[1],
        "z": at("height", 0),
        "length": math.exp(at("dim", 1)), "width": math.exp(at("dim", 0)), "height": math.exp(at("dim", 2)),
        "yaw": -yaw_mmdet - math.pi / 2,
    }
