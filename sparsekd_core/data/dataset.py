"""The torch Dataset for training and evaluation and its collate function.

A sample is points and ground truth after augmentation (training), range cropping and class filtering;
voxelisation happens later in the model, on the model's device (ops/voxelize.py), so workers only read
files and move numbers. Labels are 0-based class indices: ``gt_labels[i] == k`` means
``class_names[k]``; padding in a batch is -1.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from sparsekd_core.data.augment import AugmentConfig, AugmentPipeline
from sparsekd_core.data.infos import FrameInfo, load_infos, load_points, loaded_features
from sparsekd_core.data.sweeps import TIME_LAG
from sparsekd_core.data.window import BevWindow


@dataclass
class Sample:
    """One frame, ready for the model.

    points: (N, F) float32, columns ``DetectionDataset.point_features``, inside the point cloud range.
    gt_boxes: (M, 7) float32 (x, y, z, dx, dy, dz, yaw), LiDAR frame, centres inside the range; (M, 9) with the
        velocity (vx, vy) in m/s after them for a dataset made with ``velocity`` (models that regress it).
    gt_labels: (M,) int64 in 0..C-1 (index into the dataset's class_names).
    frame_id: the frame's id in its dataset.
    window_offset: (2,) float32 metres, when training on BEV windows (data/window.py): the window's offset from
        the range's corner; gt_boxes are then in window coordinates. None: the whole range.
    """

    points: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    frame_id: str
    window_offset: np.ndarray | None = None


@dataclass
class Batch:
    """B samples stacked.

    points: (sum N, 1 + F) float32; column 0 is the sample index in the batch, then the point columns.
    gt_boxes: (B, Mmax, 7 or 9) float32 (as the samples'), zero-padded. gt_labels: (B, Mmax) int64, padded with -1.
    num_boxes: (B,) int64 real boxes per sample. frame_ids: B ids.
    window_offset: (B, 2) float32 metres (BEV windows, see Sample) or None.
    """

    points: torch.Tensor
    gt_boxes: torch.Tensor
    gt_labels: torch.Tensor
    num_boxes: torch.Tensor
    frame_ids: list[str]
    window_offset: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return len(self.frame_ids)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(move(self.points), move(self.gt_boxes), move(self.gt_labels), move(self.num_boxes),
                     list(self.frame_ids), self.window_offset)

    def pin_memory(self) -> "Batch":
        """Called by DataLoader(pin_memory=True) so host-to-GPU copies can overlap compute."""
        return Batch(self.points.pin_memory(), self.gt_boxes.pin_memory(), self.gt_labels.pin_memory(),
                     self.num_boxes.pin_memory(), self.frame_ids, self.window_offset)


def collate_samples(samples: Sequence[Sample]) -> Batch:
    """Stack samples into a Batch (see Batch for shapes)."""
    if not samples:
        raise ValueError("collate_samples: empty list of samples")
    widths = {s.points.shape[1] for s in samples}
    if len(widths) != 1:
        raise ValueError(f"collate_samples: samples have different point widths {sorted(widths)}")
    box_widths = {s.gt_boxes.shape[1] for s in samples}
    if len(box_widths) != 1:
        raise ValueError(f"collate_samples: samples have boxes of different widths {sorted(box_widths)} (with and "
                         "without velocity)")
    points = np.concatenate([
        np.concatenate([np.full((len(s.points), 1), b, np.float32), s.points.astype(np.float32, copy=False)], 1)
        for b, s in enumerate(samples)
    ])
    num_boxes = np.array([len(s.gt_boxes) for s in samples], np.int64)
    m_max = int(num_boxes.max())
    boxes = np.zeros((len(samples), m_max, box_widths.pop()), np.float32)
    labels = np.full((len(samples), m_max), -1, np.int64)
    for b, s in enumerate(samples):
        boxes[b, : len(s.gt_boxes)] = s.gt_boxes
        labels[b, : len(s.gt_labels)] = s.gt_labels
    windows = [s.window_offset for s in samples]
    if any(w is None for w in windows) and not all(w is None for w in windows):
        raise ValueError("collate_samples: some samples have a BEV window and some do not")
    window = None if windows[0] is None else torch.from_numpy(np.stack(windows).astype(np.float32))
    return Batch(torch.from_numpy(points), torch.from_numpy(boxes), torch.from_numpy(labels),
                 torch.from_numpy(num_boxes), [s.frame_id for s in samples], window)


class DetectionDataset(Dataset):
    """Frames of one split as Samples.

    infos: FrameInfos, or the path of an infos pickle (``sparsekd-data`` writes them).
    root: the dataset root the infos' paths are relative to.
    class_names: the model's classes; other objects are dropped (they still block gt-sampling pastes).
    point_features: the model's input columns, e.g. ("x", "y", "z", "intensity"); each must be one of
        the frame's columns (KITTI x y z intensity; Waymo x y z intensity elongation).
    point_cloud_range: (6,) xmin ymin zmin xmax ymax zmax, metres; points outside are dropped, and boxes
        whose centre lies outside the x/y range.
    augment_config: AugmentConfig or its dict form, applied in training mode only (None = none).
    training: augment and drop boxes with no LiDAR point (nothing to learn from them).
    seed: augmentation is drawn from numpy Generator(seed, epoch, index): reproducible, different per
        epoch once ``set_epoch`` is called, and independent of which worker loads the frame.
    sweeps: sweeps merged per sample (the model's ``sweeps``): with more than one, each frame comes with its
        earlier sweeps and a ``time_lag`` column (infos.load_points); gt-sampled objects get time lag 0, or keep
        theirs from a multi-sweep database (nuScenes: those no older than the scene's sweeps). A ``time_lag``
        feature of a single-sweep model is 0 where the frames have none.
    velocity: boxes come with their velocity (vx, vy) labels, (M, 9) (the model's ``head.velocity``); the
        frames must have them (nuScenes).
    window: train on BEV windows (data/window.py), drawn with the augmentation's Generator; training only.
    """

    def __init__(self, infos: Sequence[FrameInfo] | str | Path, root: str | Path, class_names: Sequence[str],
                 point_features: Sequence[str], point_cloud_range: Sequence[float],
                 augment_config: AugmentConfig | Mapping | None = None, training: bool = True, seed: int = 0,
                 sweeps: int = 1, velocity: bool = False, window: BevWindow | None = None):
        self.infos = load_infos(infos) if isinstance(infos, (str, Path)) else list(infos)
        self.root = Path(root)
        self.class_names = tuple(class_names)
        self.point_features = tuple(point_features)
        self.point_cloud_range = np.asarray(point_cloud_range, dtype=np.float32).reshape(-1)
        if self.point_cloud_range.shape != (6,) or np.any(self.point_cloud_range[3:] <= self.point_cloud_range[:3]):
            raise ValueError(f"point_cloud_range must be [xmin, ymin, zmin, xmax, ymax, zmax] with max > min, "
                             f"got {point_cloud_range}")
        if self.point_features[:3] != ("x", "y", "z"):
            raise ValueError(f"point_features must start with x, y, z, got {self.point_features}")
        self.sweeps = int(sweeps)
        self.velocity = bool(velocity)
        lag_column = None
        for info in self.infos[:1]:
            features = loaded_features(info, self.sweeps)
            missing = [f for f in self.point_features if f not in features + (TIME_LAG,)]
            if missing:
                raise ValueError(
                    f"point_features {missing} are not in the {info.dataset} frames (columns "
                    f"{info.point_features}); use a model whose point_features match the dataset")
            if self.velocity:
                _velocity_labels(info)
            lag_column = features.index(TIME_LAG) if TIME_LAG in features else None
        self.training = training
        self.seed = int(seed)
        self.epoch = 0
        if isinstance(augment_config, Mapping):
            augment_config = AugmentConfig.from_dict(augment_config)
        extra = 1 if TIME_LAG in self.point_features else 0  # the time_lag column gt-sampled objects lack
        self.augment = (AugmentPipeline(augment_config, self.root, fill_columns=extra, time_lag_column=lag_column)
                        if (training and augment_config) else None)
        self.window = window if training else None

    def __len__(self) -> int:
        return len(self.infos)

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations; call before each epoch (workers are re-created per epoch and see it)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> Sample:
        info = self.infos[index]
        points, features = load_points(info, self.root, self.sweeps), loaded_features(info, self.sweeps)
        if TIME_LAG in self.point_features and TIME_LAG not in features:
            points, features = np.pad(points, ((0, 0), (0, 1))), features + (TIME_LAG,)
        annos = info.annos
        scene = annos.names != "DontCare"
        boxes, names = annos.boxes_lidar[scene], annos.names[scene]
        if self.velocity:
            boxes = np.concatenate([boxes, _velocity_labels(info)[scene]], axis=1)
        wanted = np.isin(names, self.class_names)
        if self.training:
            wanted &= annos.num_points_in_gt[scene] != 0
        rng = np.random.default_rng((self.seed, self.epoch, index))
        if self.augment is not None:
            points, boxes, names = self.augment(points, boxes, names, rng)
            wanted = np.concatenate([wanted, np.isin(names[len(wanted):], self.class_names)])
        lo, hi = self.point_cloud_range[:3], self.point_cloud_range[3:]
        wanted &= np.all((boxes[:, :2] >= lo[:2]) & (boxes[:, :2] < hi[:2]), axis=1)
        offset = None
        if self.window is not None:
            offset = self.window.draw(rng)
            points, boxes, wanted = self.window.apply(points, boxes, wanted, offset)
        labels = np.array([self.class_names.index(n) for n in names[wanted]], dtype=np.int64)
        # One gather for range crop and column selection (per-column tests: reductions along a short
        # axis are slow in numpy, and these frames have up to ~200k points).
        inside = np.ones(len(points), dtype=bool)
        for axis in range(3):
            column = points[:, axis]
            inside &= (column >= lo[axis]) & (column < hi[axis])
        columns = [features.index(f) for f in self.point_features]
        points = np.take(points, np.flatnonzero(inside), axis=0)
        if columns != list(range(points.shape[1])):
            points = points[:, columns]
        return Sample(np.ascontiguousarray(points, dtype=np.float32), boxes[wanted].astype(np.float32), labels,
                      info.frame_id, offset)


def _velocity_labels(info: FrameInfo) -> np.ndarray:
    """(M, 2) velocity labels of a frame (none needed where it has no objects); a clear error where it has none."""
    a = info.annos
    if a.velocity is not None:
        return a.velocity
    if len(a) == 0:
        return np.zeros((0, 2), np.float32)
    raise ValueError(f"the model regresses velocity but {info.dataset} frame {info.frame_id} has no velocity labels: "
                     "train it on nuScenes data, or use a model without head.velocity")


def make_dataloader(dataset: DetectionDataset, batch_size: int, workers: int = 2, shuffle: bool | None = None,
                    pin_memory: bool = False, num_samples: int | None = None, seed: int = 0) -> DataLoader:
    """A DataLoader yielding Batches. shuffle: default = dataset.training. num_samples: draw this many
    samples with replacement instead of one pass (for fixed-length probes)."""
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=num_samples, generator=generator) \
        if num_samples is not None else None
    shuffle = dataset.training if shuffle is None else shuffle
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else None,
                      sampler=sampler, num_workers=workers, collate_fn=collate_samples, pin_memory=pin_memory,
                      generator=generator if sampler is None else None)
