"""BEV pictures (size, raster, class colours of predicted and true boxes) and the open3d geometry."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sparsekd_core.data.sim.preview import save_bev_png as sim_preview
from sparsekd_core.detections import Detections
from sparsekd_core.viz.bev import BevView, height_raster, render_bev, save_bev_png
from sparsekd_core.viz.colors import class_color
from sparsekd_core.viz.scene3d import NoDisplayError, box_line_set, cloud_geometry, has_display, show

KITTI_BIN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kitti" / "training" / \
    "velodyne_reduced" / "000008.bin"
CLASSES = ("Car", "Pedestrian", "Cyclist")


def _kitti() -> np.ndarray:
    return np.fromfile(KITTI_BIN, dtype=np.float32).reshape(-1, 4)


def _near(image: np.ndarray, rgb: tuple[float, float, float], tol: int = 12) -> int:
    """Pixels within ``tol`` of a 0..1 colour."""
    target = np.round(np.asarray(rgb) * 255).astype(int)
    return int((np.abs(image.astype(int) - target).max(axis=-1) <= tol).sum())


def test_png_has_the_asked_size_and_content(tmp_path):
    dets = Detections([[20.0, 0.0, -0.8, 4.2, 1.8, 1.5, 0.3]], [0.9], [0], CLASSES)
    path = save_bev_png(tmp_path / "sub" / "bev.png", _kitti(), dets, view=BevView(0, 70.4, -40, 40),
                        title="KITTI 000008", size_px=640)
    assert path.is_file() and path.stat().st_size > 10_000
    with Image.open(path) as img:
        assert img.size == (640, 640) and img.mode == "RGB"
        pixels = np.asarray(img)
    assert pixels.std() > 5  # not a blank canvas


def test_boxes_are_drawn_in_their_class_colours():
    pts = _kitti()
    car = Detections([[20.0, 0.0, -0.8, 4.2, 1.8, 1.5, 0.3]], [0.9], [0], CLASSES)
    ped = np.array([[10.0, 5.0, -0.9, 0.7, 0.7, 1.7, 0.0]])
    view = BevView(0, 40, -20, 20)
    plain = render_bev(pts, view=view)
    both = render_bev(pts, car, ped, ["Pedestrian"], view=view)
    orange, blue = class_color("Car"), class_color("Pedestrian")
    assert _near(plain, orange) == 0 and _near(plain, blue) == 0
    assert _near(both, orange) > 50  # the car's outline (and its legend entry)
    assert _near(both, blue) > 10  # the dashed pedestrian
    assert both.shape == plain.shape == (720, 720, 3) and both.dtype == np.uint8


def test_height_raster_keeps_the_highest_point_per_cell():
    ground = np.array([[x + 0.5, y + 0.5, 0.0] for x in range(10) for y in range(4)], np.float32)
    tall = np.array([[5.5, 2.5, 3.0], [5.6, 2.4, 1.0]], np.float32)  # one cell, two points
    outside = np.array([[50.0, 0.0, 9.0]], np.float32)
    image = height_raster(np.vstack([ground, tall, outside]), BevView(0, 10, 0, 10), cell=1.0)
    assert image.shape == (10, 10, 3)
    np.testing.assert_allclose(image[2, 5], [0.8, 0.88, 1.0], atol=1e-6)  # row = y cell, 3 m up: full brightness
    np.testing.assert_allclose(image[0, 0], 0.35 * np.array([0.8, 0.88, 1.0]), atol=1e-6)  # ground
    np.testing.assert_allclose(image[8, 8], [0.04, 0.04, 0.06], atol=1e-6)  # no point: background
    empty = height_raster(np.zeros((0, 3), np.float32), BevView(0, 10, 0, 10), cell=1.0)
    assert np.allclose(empty, image[8, 8])


def test_view_helpers_and_validation():
    assert BevView.around(30) == BevView(-30, 30, -30, 30)
    assert BevView.from_range([0, -40, -3, 70.4, 40, 1], margin=1) == BevView(-1, 71.4, -41, 41)
    with pytest.raises(ValueError, match="x_max > x_min"):
        BevView(5, 5, 0, 1)


def test_sim_preview_uses_the_same_renderer(tmp_path):
    boxes = np.array([[12.0, -3.0, -0.9, 4.5, 1.8, 1.5, 0.0], [8.0, 4.0, -0.8, 0.6, 0.6, 1.7, 1.0]])
    path = sim_preview(tmp_path / "p.png", _kitti(), boxes, np.array(["car", "pedestrian"]), title="t", dpi=60)
    with Image.open(path) as img:
        assert img.size == (420, 420)
        assert _near(np.asarray(img.convert("RGB")), class_color("pedestrian")) > 0


def test_open3d_line_set_has_twelve_coloured_edges_per_box():
    dets = Detections([[5, 0, 0, 4, 2, 1.5, 0], [9, 3, 0, 0.6, 0.6, 1.7, 1]], [0.9, 0.5], [0, 1], CLASSES)
    lines = box_line_set(dets)
    assert len(lines.points) == 16 and len(lines.lines) == 24
    colours = np.asarray(lines.colors)
    np.testing.assert_allclose(colours[:12], np.tile(class_color("Car"), (12, 1)))
    np.testing.assert_allclose(colours[12:], np.tile(class_color("Pedestrian"), (12, 1)))
    # every edge has the length of one of its box's extents
    pts = np.asarray(lines.points)
    length = np.linalg.norm(pts[np.asarray(lines.lines)[:, 0]] - pts[np.asarray(lines.lines)[:, 1]], axis=1)
    np.testing.assert_allclose(np.sort(length[:12]), np.sort([4, 4, 4, 4, 2, 2, 2, 2, 1.5, 1.5, 1.5, 1.5]), atol=1e-9)
    assert len(cloud_geometry(_kitti()).points) == 17238


def test_show_without_display_says_what_to_do(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not has_display()
    with pytest.raises(NoDisplayError, match="--png DIR"):
        show(_kitti(), Detections.empty(CLASSES))
