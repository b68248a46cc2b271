"""CenterPoint detector: a fixed sequence of stages chosen by the config.

points -> Voxelizer -> VFE (mean | pillar) -> [VoxelResBackBone8x -> HeightCompression | PointPillarScatter]
       -> BaseBEVBackbone -> CenterHead -> (loss | decode + NMS)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import ModelConfig
from ..ops.voxelize import VoxelBatch, Voxelizer
from .backbone2d import BaseBEVBackbone
from .backbone3d import VoxelResBackBone8x
from .bev import HeightCompression, PointPillarScatter
from .center_head import CenterHead, HeadOutput
from .decode import BoxPredictions, postprocess
from .targets import CenterTargets, assign_targets
from .vfe import MeanVFE, PillarVFE


@dataclass
class DetectorOutput:
    """What one forward pass produces; KD reads the intermediate maps.

    head:         raw head maps on the (H, W) grid.
    bev_features: (B, C, H, W) output of the 2D backbone (the head's input).
    bev_input:    (B, C0, H0, W0) BEV map entering the 2D backbone.
    """

    head: HeadOutput
    bev_features: torch.Tensor
    bev_input: torch.Tensor


class CenterPointDetector(nn.Module):
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
            self.backbone3d = VoxelResBackBone8x(nf, grid, cfg.backbone3d.widths(), cfg.backbone3d.layers)
            self.to_bev = HeightCompression(cfg.bev.num_features)
        b2 = cfg.backbone2d
        filters, up_filters = b2.widths()
        self.backbone2d = BaseBEVBackbone(cfg.bev.num_features, b2.layers, b2.strides, filters,
                                          b2.upsample_strides, up_filters)
        self.head = CenterHead(self.backbone2d.out_channels, len(cfg.class_names), cfg.head)

    # ------------------------------------------------------------------ stages
    def voxelize(self, points: list[torch.Tensor]) -> VoxelBatch:
        """points: list of (N_i, F) float32 tensors in the model's feature order, on the model's device."""
        voxelizer = self.voxelizer_train if self.training else self.voxelizer_test
        return voxelizer(points)

    def forward_voxels(self, vb: VoxelBatch) -> DetectorOutput:
        feats = self.vfe(vb)
        if self.backbone3d is not None:
            bev_input = self.to_bev(self.backbone3d(feats, vb.coords, vb.batch_size))
        else:
            bev_input = self.to_bev(feats, vb.coords, vb.batch_size)
        bev = self.backbone2d(bev_input)
        return DetectorOutput(self.head(bev), bev, bev_input)

    def forward(self, points: list[torch.Tensor]) -> DetectorOutput:
        return self.forward_voxels(self.voxelize(points))

    # ------------------------------------------------------------------ training / inference
    def assign_targets(self, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, grid_hw: tuple[int, int]) -> CenterTargets:
        """gt_boxes (B, M, 7), gt_labels (B, M) (0..C-1, -1 padding) -> targets on the head's (H, W) grid."""
        t = self.cfg.head.target
        return assign_targets(gt_boxes, gt_labels, len(self.cfg.class_names), grid_hw,
                              self.cfg.voxelization.voxel_size, self.cfg.voxelization.point_cloud_range,
                              self.cfg.head.feature_stride, t.gaussian_overlap, t.min_radius, t.max_objects)

    def loss(self, out: DetectorOutput, gt_boxes: torch.Tensor, gt_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        targets = self.assign_targets(gt_boxes, gt_labels, tuple(out.head.heatmap.shape[-2:]))
        return self.head.loss(out.head, targets)

    def predict(self, out: DetectorOutput, score_threshold: float | None = None,
                class_thresholds: torch.Tensor | None = None) -> list[BoxPredictions]:
        c = self.cfg
        return postprocess(out.head, c.head.post, c.voxelization.voxel_size, c.voxelization.point_cloud_range,
                           c.head.feature_stride, score_threshold, class_thresholds)


def build_detector(cfg: ModelConfig) -> CenterPointDetector:
    """Assemble the detector's stages from its config."""
    return CenterPointDetector(cfg)
