"""sparsekd_core: distilled CenterPoint LiDAR detectors (SparseKD). No ROS imports in this package."""

__version__ = "0.1.0"
