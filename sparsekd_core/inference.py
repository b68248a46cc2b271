"""Detector: a checkpoint in, Detections out. The one entry point for offline detection and the ROS node."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .backends import check_backend, make_dense_runner
from .checkpoint import CheckpointError, load_model
from .config import check_min_points, list_models
from .detections import Detections
from .geometry.boxes import points_in_boxes
from .geometry.transforms import RigidTransform
from .models.tta_flip import merge_flipped, mirror_points
from .own_vehicle import OwnVehicle
from .clear_overhead import clear_overhead
from .square_footprint import square_footprints
from .thresholds import ScoreThresholds

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "assets" / "checkpoints"
#: The real sample sweeps packaged with the core (assets/sample_data/README.md): the tools' default frames.
SAMPLE_DATA_DIR = Path(__file__).resolve().parent / "assets" / "sample_data"

#: Checkpoint meta key: the ground height (m, z in the model frame) of the model's training data.
GROUND_Z_KEY = "ground_z"
# Checkpoints without it: the ground of their dataset layout, told apart by class names as the configs are.
# KITTI and sparsekd-sim's hdl64 write points in the LiDAR frame of an HDL-64E 1.73 m above the road;
# Waymo (and sim waymo_top) in a vehicle frame whose origin is on the ground.
_LAYOUT_GROUND_Z = (("Car", -1.73, "KITTI-layout classes: the LiDAR frame of an HDL-64E 1.73 m above the road"),
                    ("Vehicle", 0.0, "Waymo-layout classes: a vehicle frame with its origin on the ground"))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu. Asking for cuda without one is an error that says so."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA GPU: use device 'cpu' or 'auto', "
                         "or install a CUDA build of torch and spconv (README, GPU install)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N] (got {device!r})")
    return torch.device(device)


def resolve_checkpoint(model: str | Path) -> Path:
    """A checkpoint path, or a zoo name with a bundled checkpoint -> the file."""
    p = Path(model)
    if p.suffix in (".pth", ".pt") or p.exists():
        if not p.exists():
            raise CheckpointError(f"checkpoint not found: {p}")
        return p
    bundled = BUNDLED_DIR / f"{model}.pth"
    if bundled.exists():
        return bundled
    have = sorted(q.stem for q in BUNDLED_DIR.glob("*.pth"))
    if str(model) in list_models():
        raise CheckpointError(
            f"no trained weights bundled for zoo model '{model}' (bundled: {', '.join(have) or 'none'}). "
            f"Train one (sparsekd-train --model {model} ...) and pass the .pth path."
        )
    raise CheckpointError(f"'{model}' is neither a checkpoint file nor a bundled model "
                          f"(bundled: {', '.join(have) or 'none'})")


class Detector:
    """Runs a CenterPoint checkpoint on point clouds.

    ``detector(points)`` takes float (N, F) points with F == len(point_features) (x y z first) in the
    sensor frame and returns Detections. NaN/inf rows are dropped, points outside the model's range
    are cropped, an empty cloud gives no boxes.

    Boxes are kept by :attr:`thresholds` (a :class:`ScoreThresholds`: a default and per-class values that
    replace it) and by :attr:`min_points`: a box holding fewer returns of the cloud is dropped (from the
    checkpoint's ``head.post.min_points``; 0 keeps every box, CenterPoint's and OpenPCDet's behaviour). A model
    trained on simulated streets can put a confident pedestrian on a patch of a real sweep with one return: the
    heatmap reads context over metres (docs/results.md, "Boxes on empty ground"). The classes of
    :attr:`square_footprint` (the checkpoint's ``head.post.square_footprint``) then get boxes with length = width
    (sparsekd_core/square_footprint.py), and those of :attr:`clear_overhead` (``head.post.clear_overhead``) are
    dropped where the cloud has something solid just above them (sparsekd_core/clear_overhead.py): a sign plate or
    a trunk that goes on up. A call reads these settings once, so
    assigning a new value from another thread (a ROS parameter change) applies to whole frames: a frame never
    mixes old and new settings.

    ``backend``: ``torch`` runs the model eagerly; ``onnxruntime`` (CPU, or its CUDA provider on a CUDA
    device) and ``tensorrt`` (CUDA only) run its dense part, exported to ONNX when the Detector is made
    (sparsekd_core/backends). Voxelisation, the sparse 3D backbone of voxel models, decoding and NMS are
    torch's in every backend, so the same maps give the same boxes.

    :attr:`view_turn` (degrees, 0 by default) is a check, not a setting for a robot: the model sees each cloud
    turned by that angle about the sensor's z axis and its boxes are turned back, so they are scored where the
    objects are. A model that reads an object's heading from its returns gives the same boxes whatever the turn;
    one that learnt which way its training streets ran does not (docs/results.md, "Heading from the street").
    """

    def __init__(self, model, payload: dict, device: torch.device, fp16: bool = False, name: str | None = None,
                 backend: str = "torch"):
        self.model = model
        self.cfg = model.cfg
        self.device = device
        self.fp16 = bool(fp16 and device.type == "cuda")
        self.backend = check_backend(backend)
        self.dense = make_dense_runner(model, backend, device, self.fp16)
        self.name = name or self.cfg.name
        self.meta = dict(payload.get("meta", {}))
        self.class_names: tuple[str, ...] = tuple(payload["class_names"])
        self.point_features: tuple[str, ...] = tuple(payload["point_features"])
        self.point_cloud_range = np.asarray(self.cfg.voxelization.point_cloud_range, dtype=np.float32)
        self._thresholds = ScoreThresholds(float(self.cfg.head.post.score_threshold))
        self._min_points = check_min_points(self.cfg.head.post.min_points)
        self._own_vehicle: OwnVehicle | None = None
        self._view_turn = 0.0
        self._square_footprint = self._checked_classes("square_footprint", self.cfg.head.post.square_footprint)
        self._clear_overhead = self._checked_classes("clear_overhead", self.cfg.head.post.clear_overhead)
        self._tta_flip = bool(self.cfg.head.post.tta_flip)
        self.last_timings: dict[str, float] = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "auto", fp16: bool = False,
                        backend: str = "torch") -> "Detector":
        check_backend(backend)
        dev = resolve_device(device)
        model, payload = load_model(path, dev)
        return cls(model, payload, dev, fp16, backend=backend)

    # ------------------------------------------------------------------ input checks
    def _prepare(self, points, view: RigidTransform | None = None) -> torch.Tensor:
        """Checked, finite points inside the model's range as a tensor on its device, moved by ``view`` first (the
        turn of :attr:`view_turn`)."""
        return self._in_range(self._checked_cloud(points, view))

    def _checked_cloud(self, points, view: RigidTransform | None) -> np.ndarray:
        """A cloud's finite points as float32 (N, features), moved by ``view``, not yet cropped to the model's range
        (the overhead check looks above it); a ValueError names what is wrong with the array."""
        if isinstance(points, torch.Tensor):
            points = points.detach().cpu().numpy()
        if not isinstance(points, np.ndarray):
            raise ValueError(f"points must be a numpy array of shape (N, {len(self.point_features)}), "
                             f"got {type(points).__name__}")
        nf = len(self.point_features)
        if points.ndim != 2 or points.shape[1] != nf:
            raise ValueError(f"points must have shape (N, {nf}) with columns {' '.join(self.point_features)}; "
                             f"got shape {points.shape}")
        if not np.issubdtype(points.dtype, np.floating):
            raise ValueError(f"points must be floating point (float32 expected), got dtype {points.dtype}")
        pts = points.astype(np.float32, copy=False)
        if view is not None:
            pts = view.apply_points(pts)
        finite = np.isfinite(pts).all(axis=1)
        return pts if finite.all() else pts[finite]

    def _in_range(self, pts: np.ndarray) -> torch.Tensor:
        """The points of a checked cloud inside the model's range, as a tensor on its device."""
        r = self.point_cloud_range
        xyz = pts[:, :3]
        keep = (xyz >= r[:3]).all(axis=1) & (xyz < r[3:]).all(axis=1)
        if not keep.all():
            pts = pts[keep]
        return torch.from_numpy(np.ascontiguousarray(pts)).to(self.device, non_blocking=True)

    def expected_ground(self) -> tuple[float | None, str]:
        """(ground z in the model frame, where it comes from): the checkpoint's meta ``ground_z`` when recorded,
        else the ground of the dataset layout its classes name; (None, why) when neither is known."""
        if GROUND_Z_KEY in self.meta:
            return float(self.meta[GROUND_Z_KEY]), f"recorded in the checkpoint (meta '{GROUND_Z_KEY}')"
        for name, z, why in _LAYOUT_GROUND_Z:
            if name in self.class_names:
                return z, f"not recorded in the checkpoint (meta '{GROUND_Z_KEY}'); assumed from its {why}"
        return None, f"not recorded in the checkpoint (meta '{GROUND_Z_KEY}') and not known for its classes"

    # ------------------------------------------------------------------ thresholds
    @property
    def thresholds(self) -> ScoreThresholds:
        return self._thresholds

    @thresholds.setter
    def thresholds(self, value: ScoreThresholds) -> None:
        if not isinstance(value, ScoreThresholds):
            raise TypeError(f"thresholds must be a ScoreThresholds, got {type(value).__name__}")
        unknown = value.unknown(self.class_names)
        if unknown:
            raise ValueError(f"class thresholds name unknown classes {unknown}; "
                             f"the model's classes are {list(self.class_names)}")
        self._thresholds = value  # one assignment: the swap is atomic for a frame in progress

    @property
    def score_threshold(self) -> float:
        """The default threshold (for classes without their own)."""
        return self._thresholds.default

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self.thresholds = self._thresholds.with_default(value)

    @property
    def class_score_thresholds(self) -> dict[str, float]:
        """Per-class thresholds that replace the default for their class."""
        return dict(self._thresholds.per_class)

    @class_score_thresholds.setter
    def class_score_thresholds(self, value: dict[str, float]) -> None:
        self.thresholds = self._thresholds.with_per_class(value)

    @property
    def operating_thresholds(self) -> dict[str, float]:
        """The checkpoint's operating point (``head.post.operating_thresholds``): per-class thresholds the node
        publishes at unless told otherwise. Not applied here by itself: evaluation keeps every box above
        :attr:`score_threshold`; the node and the tools that act as it do set them."""
        return dict(self.cfg.head.post.operating_thresholds)

    @property
    def min_points(self) -> int:
        """Boxes holding fewer LiDAR returns than this are dropped (0: none is)."""
        return self._min_points

    @min_points.setter
    def min_points(self, value: int) -> None:
        self._min_points = check_min_points(value)

    @property
    def own_vehicle(self) -> OwnVehicle | None:
        """The footprint of the vehicle carrying the sensor (model frame): boxes lying on it are dropped
        (sparsekd_core/own_vehicle.py). None (the default for a library call): no vehicle is assumed."""
        return self._own_vehicle

    @own_vehicle.setter
    def own_vehicle(self, value: OwnVehicle | None) -> None:
        if value is not None and not isinstance(value, OwnVehicle):
            raise TypeError(f"own_vehicle must be an OwnVehicle or None, got {type(value).__name__}")
        self._own_vehicle = value

    @property
    def view_turn(self) -> float:
        """Degrees the model sees every cloud turned about the sensor's z axis (counter-clockwise from above)
        before its boxes are turned back into the cloud's frame; 0: as the cloud is (see the class docstring)."""
        return self._view_turn

    @view_turn.setter
    def view_turn(self, degrees: float) -> None:
        degrees = float(degrees)
        if not np.isfinite(degrees):
            raise ValueError(f"view_turn must be a finite angle in degrees, got {degrees}")
        self._view_turn = degrees

    @property
    def square_footprint(self) -> tuple[str, ...]:
        """Classes whose boxes come out with a square footprint, length = width = their mean (the checkpoint's
        ``head.post.square_footprint`` unless set; sparsekd_core/square_footprint.py); () for boxes as decoded."""
        return self._square_footprint

    @square_footprint.setter
    def square_footprint(self, names) -> None:
        self._square_footprint = self._checked_classes("square_footprint", names)

    @property
    def clear_overhead(self) -> tuple[str, ...]:
        """Classes whose boxes are dropped when returns lie just above them (the checkpoint's
        ``head.post.clear_overhead`` unless set; sparsekd_core/clear_overhead.py); () for no such check."""
        return self._clear_overhead

    @clear_overhead.setter
    def clear_overhead(self, names) -> None:
        self._clear_overhead = self._checked_classes("clear_overhead", names)

    def _checked_classes(self, setting: str, names) -> tuple[str, ...]:
        names = tuple(names)
        unknown = [n for n in names if n not in self.class_names]
        if unknown:
            raise ValueError(f"{setting} names {unknown}, not classes of {self.name}: "
                             f"its classes are {list(self.class_names)}")
        return names

    @property
    def tta_flip(self) -> bool:
        """Whether the network also sees each cloud's mirror image and averages the two views' maps (the
        checkpoint's ``head.post.tta_flip`` unless set; models/tta_flip.py), for twice the network's work a frame."""
        return self._tta_flip

    @tta_flip.setter
    def tta_flip(self, on: bool) -> None:
        if not isinstance(on, (bool, np.bool_)):
            raise ValueError(f"tta_flip must be True or False, got {on!r}")
        if on and (problem := self.cfg.tta_flip_problem()):
            raise ValueError(f"{self.name} cannot run tta_flip: {problem}")
        self._tta_flip = bool(on)

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ------------------------------------------------------------------ running
    @torch.no_grad()
    def detect_batch(self, clouds: Sequence[np.ndarray]) -> list[Detections]:
        # Read once: the whole batch uses one setting.
        thresholds, min_points, own_vehicle = self._thresholds, self._min_points, self._own_vehicle
        tta_flip = self._tta_flip
        square_labels = [self.class_names.index(n) for n in self._square_footprint]
        overhead_labels = [self.class_names.index(n) for n in self._clear_overhead]
        view = RigidTransform.from_xyz_rpy(yaw=np.deg2rad(self._view_turn)) if self._view_turn else None
        view_back = None if view is None else view.inverse()
        t0 = time.perf_counter()
        checked = [self._checked_cloud(c, view) for c in clouds]
        tensors = [self._in_range(c) for c in checked]
        results: list[Detections | None] = [None] * len(tensors)
        live = [i for i, t in enumerate(tensors) if t.shape[0] > 0]
        for i in set(range(len(tensors))) - set(live):
            results[i] = Detections.empty(self.class_names, with_velocity=self.cfg.head.velocity)
        if not live:
            self.last_timings = {"preprocess": time.perf_counter() - t0, "inference": 0.0, "postprocess": 0.0}
            return results
        batch = [tensors[i] for i in live]
        vb = self.model.voxelize(batch + [mirror_points(t) for t in batch] if tta_flip else batch)
        self._sync()
        t1 = time.perf_counter()
        if self.dense is None:
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.fp16):
                heads = self.model.forward_voxels(vb).heads
        else:
            heads = self.dense(vb)
        if tta_flip:
            heads = merge_flipped(heads)
        self._sync()
        t2 = time.perf_counter()
        per_class = torch.tensor(thresholds.for_classes(self.class_names), dtype=torch.float32, device=self.device)
        preds = self.model.decode(heads, thresholds.default, per_class)
        for i, p in zip(live, preds):
            if min_points and len(p.boxes):
                support = points_in_boxes(tensors[i][:, :3].cpu().numpy(), p.boxes.float().cpu().numpy()).sum(axis=0)
                p = p.select(torch.from_numpy(support >= min_points).to(p.boxes.device))
            p.boxes = square_footprints(p.boxes, p.labels, square_labels)
            if overhead_labels and len(p.boxes):  # over the footprint published, in the whole cloud: the window
                keep = clear_overhead(checked[i][:, :3], p.boxes.float().cpu().numpy(),  # reaches above the range
                                      p.labels.cpu().numpy(), overhead_labels)
                p = p.select(torch.from_numpy(keep).to(p.boxes.device))
            d = Detections(p.boxes.float().cpu().numpy(), p.scores.float().cpu().numpy(), p.labels.cpu().numpy(),
                           self.class_names, None if p.velocities is None else p.velocities.float().cpu().numpy())
            if view_back is not None:
                d = view_back.apply_detections(d)
            if own_vehicle is not None and len(d):
                d = d.select(~own_vehicle.covers(d.boxes))
            results[i] = d
        t3 = time.perf_counter()
        self.last_timings = {"preprocess": t1 - t0, "inference": t2 - t1, "postprocess": t3 - t2}
        return results

    def __call__(self, points: np.ndarray) -> Detections:
        return self.detect_batch([points])[0]

    def warmup(self, runs: int = 3, points: np.ndarray | None = None) -> float:
        """Run ``runs`` forwards after one untimed call and return their median latency (s).

        Without ``points``, a synthetic scan is used: 32 rings on a flat ground 1.7 m below the sensor,
        5 to 60 m out, as sparse in voxels as a real LiDAR sweep (uniform noise would be far denser).
        """
        if points is None:
            radius = np.repeat(np.geomspace(5.0, 60.0, 32), 1024)
            azimuth = np.tile(np.linspace(-np.pi, np.pi, 1024, endpoint=False), 32)
            points = np.zeros((len(radius), len(self.point_features)), np.float32)
            points[:, 0] = radius * np.cos(azimuth)
            points[:, 1] = radius * np.sin(azimuth)
            points[:, 2] = -1.7
            if points.shape[1] > 3:
                points[:, 3] = 0.2
        self(points)  # first call: allocations, spconv setup
        times = []
        for _ in range(max(1, runs)):
            t = time.perf_counter()
            self(points)
            times.append(time.perf_counter() - t)
        return float(np.median(times))


def load_detector(model: str | Path, device: str | torch.device = "auto", fp16: bool = False,
                  backend: str = "torch") -> Detector:
    """A zoo name with bundled weights (e.g. ``cp_voxel_s``) or a checkpoint path -> Detector (see Detector
    for ``backend``)."""
    path = resolve_checkpoint(model)
    det = Detector.from_checkpoint(path, device, fp16, backend)
    if det.meta.get("untrained"):
        log.warning("%s holds untrained (random) weights: boxes will be meaningless", path)
    if Path(model).suffix not in (".pth", ".pt"):
        det.name = str(model)
    return det
