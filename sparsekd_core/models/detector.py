"""A BEV detector: a fixed sequence of stages chosen by the config.

points -> Voxelizer -> VFE (mean | pillar) -> [VoxelResBackBone8x | VoxelBackBone8x -> HeightCompression
       | PointPillarScatter] -> BaseBEVBackbone -> dense head -> (loss | decode + NMS)

The dense head is CenterHead (CenterPoint: one task head per class group) or AnchorHeadSingle (SECOND,
PointPillars), by ``head.type``. Both take the BEV features and return a list of raw maps (HeadOutput per task
head, or one AnchorMaps), assign their own targets, compute their own loss and decode their own boxes; the
detector and everything above it (training, distillation, inference) only pass these along.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..config import ModelConfig
from ..ops.voxelize import VoxelBatch, Voxelizer
from .backbone2d import BaseBEVBackbone
from .backbone3d import VoxelBackBone8x, VoxelResBackBone8x
from .anchor_decode import postprocess_anchors
from .anchor_head import AnchorHeadSingle, AnchorMaps
from .bev import HeightCompression, PointPillarScatter, crop_windows
from .center_head import CenterHead, HeadOutput
from .decode import BoxPredictions, postprocess
from .targets import CenterTargets, assign_targets, labels_of_group
from .vfe import MeanVFE, PillarVFE


@dataclass
class DetectorOutput:
    """What one forward pass produces; KD reads the intermediate maps.

    heads:        the dense head's raw maps on the (H, W) grid: a CenterHead's HeadOutput per task head (one per
                  class group), or an anchor head's one AnchorMaps.
    bev_features: (B, C, H, W) output of the 2D backbone (the head's input).
    bev_input:    (B, C0, H0, W0) BEV map entering the 2D backbone.
    """

    heads: list[HeadOutput] | list[AnchorMaps]
    bev_features: torch.Tensor
    bev_input: torch.Tensor

    @property
    def grid_hw(self) -> tuple[int, int]:
        """(H, W) of the head's maps."""
        return self.heads[0].grid_hw

    @property
    def head(self) -> HeadOutput:
        """The maps of a single-head model (every class in one head); a multi-head model has ``heads``."""
        if len(self.heads) != 1:
            raise ValueError(f"this model has {len(self.heads)} task heads (class groups): use .heads, "
                             "one HeadOutput per group")
        return self.heads[0]

    def contiguous(self) -> "DetectorOutput":
        """The same output with contiguous head maps: pillar models produce channels-last maps (the scatter's
        permute), which ``.view`` calls reject."""
        return DetectorOutput([h.contiguous() for h in self.heads], self.bev_features, self.bev_input)


class BEVDetector(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        vox = cfg.voxelization
        nf = len(cfg.point_features)
        grid = vox.grid_size()
        self.voxelizer_train = Voxelizer(vox.voxel_size, vox.point_cloud_range, vox.max_points_per_voxel,
                                         vox.max_voxels_train, nf)
        self.voxelizer_test = Voxelizer(vox.voxel_size, vox.point_cloud_range, vox.max_points_per_voxel,
                                        vox.max_voxels_test, nf)
        if cfg.is_pillar:
            self.vfe = PillarVFE(nf, cfg.vfe.filters, vox.voxel_size, vox.point_cloud_range,
                                 cfg.vfe.use_norm, cfg.vfe.with_distance)
            self.backbone3d = None
            self.to_bev = PointPillarScatter(cfg.bev.num_features, grid)
        else:
            self.vfe = MeanVFE(nf)
            backbone = VoxelResBackBone8x if cfg.backbone3d.type == "voxel_res8x" else VoxelBackBone8x
            self.backbone3d = backbone(nf, grid, cfg.backbone3d.widths(), cfg.backbone3d.layers)
            self.to_bev = HeightCompression(cfg.bev.num_features)
        b2 = cfg.backbone2d
        filters, up_filters = b2.widths()
        self.backbone2d = BaseBEVBackbone(cfg.bev.num_features, b2.layers, b2.strides, filters,
                                          b2.upsample_strides, up_filters)
        if cfg.is_anchor:
            s = cfg.head.feature_stride  # strided convs round up: a map of n cells becomes ceil(n / s)
            self.head = AnchorHeadSingle(self.backbone2d.out_channels, cfg.head, cfg.class_names,
                                         (-(-grid[1] // s), -(-grid[0] // s)), vox.point_cloud_range)
        else:
            self.head = CenterHead(self.backbone2d.out_channels, cfg.class_groups(), cfg.head)
        #: Training on BEV windows (data/window.py): ((B, 2) offsets in metres, (x, y) size in metres) or None.
        self.bev_window: tuple[torch.Tensor, tuple[float, float]] | None = None

    @property
    def bev_cell(self) -> float:
        """Metres per cell of the BEV map entering the 2D backbone (pillars: one pillar; voxels: 8 voxels)."""
        return float(self.cfg.voxelization.voxel_size[0]) * self.cfg.bev_voxels_per_cell

    @property
    def bev_alignment(self) -> float:
        """Metres that a BEV window's offset and size must be multiples of: the coarsest cell of the 2D backbone."""
        return float(self.cfg.voxelization.voxel_size[0]) * self.cfg.coarsest_bev_cell_voxels

    # ------------------------------------------------------------------ stages
    def voxelize(self, points: list[torch.Tensor]) -> VoxelBatch:
        """points: list of (N_i, F) float32 tensors in the model's feature order, on the model's device."""
        voxelizer = self.voxelizer_train if self.training else self.voxelizer_test
        return voxelizer(points)

    def bev_input(self, vb: VoxelBatch) -> torch.Tensor:
        """Voxels -> the (B, C0, H0, W0) BEV map entering the 2D backbone (VFE, then 3D backbone or scatter)."""
        feats = self.vfe(vb)
        if self.backbone3d is not None:
            return self.to_bev(self.backbone3d(feats, vb.coords, vb.batch_size))
        return self.to_bev(feats, vb.coords, vb.batch_size)

    def forward_voxels(self, vb: VoxelBatch) -> DetectorOutput:
        bev_input = self.bev_input(vb)
        if self.bev_window is not None:
            offsets, size = self.bev_window
            cell = self.bev_cell
            bev_input = crop_windows(bev_input, torch.round(offsets / cell).long(),
                                     (int(round(size[1] / cell)), int(round(size[0] / cell))))
        bev = self.backbone2d(bev_input)
        return DetectorOutput(self.head(bev), bev, bev_input)

    def forward(self, points: list[torch.Tensor]) -> DetectorOutput:
        return self.forward_voxels(self.voxelize(points))

    # ------------------------------------------------------------------ training / inference
    def assign_targets(self, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, grid_hw: tuple[int, int],
                       outside: str = "drop") -> list[CenterTargets]:
        """gt_boxes (B, M, 7), or (B, M, 9) with (vx, vy), and gt_labels (B, M) (0..C-1, -1 padding) -> targets on
        the head's (H, W) grid, one CenterTargets per task head (its classes numbered in group order).

        outside: what to do with a box centred outside the map, "drop" or "clamp" (see targets.assign_targets).
        """
        c, t = self.cfg, self.cfg.head.target
        if c.is_anchor:  # anchors are fixed by the config; nothing lies outside them
            return self.head.assign_targets(gt_boxes, gt_labels)
        if c.head.velocity and gt_boxes.shape[-1] < 9:
            raise ValueError(f"{c.name} regresses velocity, so its training boxes need (vx, vy) after the 7 box "
                             f"values (B, M, 9); got {tuple(gt_boxes.shape)}")
        if not c.head.velocity:
            gt_boxes = gt_boxes[..., :7]
        return [assign_targets(gt_boxes, labels_of_group(gt_labels, group), len(group), grid_hw,
                               c.voxelization.voxel_size, c.voxelization.point_cloud_range, c.head.feature_stride,
                               t.gaussian_overlap, t.min_radius, t.max_objects, outside)
                for group in c.class_groups()]

    def loss(self, out: DetectorOutput, gt_boxes: torch.Tensor, gt_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        targets = self.assign_targets(gt_boxes, gt_labels, out.grid_hw)
        return self.head.loss(out.heads, targets)

    def predict(self, out: DetectorOutput, score_threshold: float | None = None,
                class_thresholds: torch.Tensor | None = None, nms: bool = True) -> list[BoxPredictions]:
        return self.decode(out.heads, score_threshold, class_thresholds, nms)

    def decode(self, heads: Sequence[HeadOutput], score_threshold: float | None = None,
               class_thresholds: torch.Tensor | None = None, nms: bool = True) -> list[BoxPredictions]:
        """Maps of every task head (from torch or another backend) -> boxes per sample: decode, threshold, NMS
        (``nms=False``: none, as label KD decodes its teacher)."""
        c = self.cfg
        if c.is_anchor:
            return postprocess_anchors(self.head, heads, c.head.post, score_threshold, class_thresholds, nms)
        return postprocess(heads, c.class_groups(), c.head.post, c.voxelization.voxel_size,
                           c.voxelization.point_cloud_range, c.head.feature_stride, score_threshold, class_thresholds,
                           nms)


# The name from before the head became exchangeable, kept for code that imports it.
CenterPointDetector = BEVDetector


@contextmanager
def bev_windows(models, offsets: torch.Tensor | None, size: tuple[float, float] | None):
    """Run the ``models`` (BEVDetectors) on BEV windows for the duration of the block: each crops its
    BEV map to the windows at ``offsets`` (B, 2) metres of ``size`` (x, y) metres. ``offsets`` None: whole maps."""
    models = [m for m in models if m is not None]
    for m in models:
        m.bev_window = None if offsets is None else (offsets, tuple(size))
    try:
        yield
    finally:
        for m in models:
            m.bev_window = None


def build_detector(cfg: ModelConfig) -> BEVDetector:
    """Assemble the detector's stages from its config."""
    return BEVDetector(cfg)
