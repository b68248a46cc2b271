"""Pictures of point clouds and boxes without ROS: bird's-eye-view images (matplotlib, Agg), an open3d window, and
2D boxes on camera images (``camera.draw_camera_boxes``, pillow: ``sparsekd-gap --images``). ``bev.save_bev_png`` is
the one BEV renderer used by ``sparsekd-detect --png``, the demo and the simulator's previews."""
from sparsekd_core.viz.bev import BevView, render_bev, save_bev_png
from sparsekd_core.viz.colors import class_color

__all__ = ["BevView", "render_bev", "save_bev_png", "class_color"]
