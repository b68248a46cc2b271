"""The sim zoo's models on a small square range, and a point cloud for them: the same layers and widths as the
zoo entries, small BEV maps, so each forward pass takes well under a second (TGI and widening tests)."""
import torch

from sparsekd_core.config import load_model_config


def small(name: str):
    """The zoo config ``name`` on a 12.8 m (voxel) / 10.24 m (pillar) square range ahead of the sensor."""
    cfg = load_model_config(name)
    r = cfg.voxelization.point_cloud_range
    side = 10.24 if cfg.is_pillar else 12.8
    cfg.voxelization.point_cloud_range = [0.0, -side / 2, r[2], side, side / 2, r[5]]
    return cfg


def cloud(cfg, seed=0, n=300):
    """Points around two objects inside the range, plus intensity."""
    g = torch.Generator().manual_seed(seed)
    x0, y0, z0, x1, y1, z1 = cfg.voxelization.point_cloud_range
    centres = torch.tensor([[x0 + 0.3 * (x1 - x0), 0.2 * y1, -1.0], [x0 + 0.7 * (x1 - x0), 0.3 * y0, -1.2]])
    p = centres[torch.randint(0, 2, (n,), generator=g)] + torch.randn(n, 3, generator=g) * torch.tensor([0.8, 0.4, 0.3])
    return torch.cat([p, torch.rand(n, 1, generator=g)], dim=1)
