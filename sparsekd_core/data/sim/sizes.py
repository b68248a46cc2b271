"""How big road users are: the real datasets' published size statistics, and the body types behind them.

A *label style* is the size convention of one dataset's annotators (KITTI labels cars tightly, without
mirrors; Waymo and nuScenes boxes are larger, and their cars are American/Asian cars). Each style gives,
per labelled class, the mean and the standard deviation of the box's length, width and height (metres).
The simulator draws every road user's box from the style chosen for a dataset, so a model trained on it
learns the box sizes that dataset's labels have.

Sources (facts, rounded to centimetres):
- KITTI means: the class mean sizes of KITTI's training labels as PointRCNN's config lists them
  (``CLS_MEAN_SIZE``: Car 3.88 x 1.63 x 1.53, Pedestrian 0.84 x 0.66 x 1.76, Cyclist 1.76 x 0.60 x 1.74);
  OpenPCDet's KITTI anchors round them (``kitti_models/pointpillar.yaml``: Car 3.9 x 1.6 x 1.56).
- Waymo and nuScenes means: the per-class anchor sizes OpenPCDet uses for each dataset, which are the
  datasets' class means (``waymo_models/second.yaml``: Vehicle 4.7 x 2.1 x 1.7, Pedestrian 0.91 x 0.86 x 1.73,
  Cyclist 1.78 x 0.84 x 1.78; ``nuscenes_models/cbgs_pp_multihead.yaml``: car 4.63 x 1.97 x 1.74, truck 6.93 x
  2.51 x 2.84, bus 10.5 x 2.94 x 3.47, pedestrian 0.73 x 0.67 x 1.77, bicycle 1.70 x 0.60 x 1.28).
- Car spreads and the KITTI car mean: Wang et al., "Train in Germany, Test in the USA: Making 3D Object
  Detectors Generalize", CVPR 2020, Table 2 (KITTI 3.88 +- 0.43 x 1.63 +- 0.10 x 1.53 +- 0.14; Waymo
  4.80 +- 0.79 x 2.11 +- 0.18 x 1.78 +- 0.25; nuScenes 4.64 +- 0.46 x 1.96 +- 0.19 x 1.71 +- 0.25).
- Pedestrian and cyclist spreads, van and truck sizes: typical values of the same datasets (approximate;
  they matter less than the car figures, which decide KITTI's 0.7 IoU).

Vehicles come in body types (hatchback, sedan, SUV, pickup, van, truck, bus). A style says how common
each type is and which class it is labelled as; the types of one class are offsets from the class mean
(in units of its spread) whose mixture reproduces the class's mean and spread exactly
(:func:`type_size_distributions`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Body types of vehicles, and the non-vehicle kinds of road user.
VEHICLE_TYPES: tuple[str, ...] = ("hatchback", "sedan", "suv", "pickup", "van", "truck", "bus")
KINDS: tuple[str, ...] = VEHICLE_TYPES + ("pedestrian", "cyclist")

#: Offsets of each car body type from its class mean, in standard deviations of (length, width, height).
#: A hatchback is short, an SUV tall, a pickup long: what makes their point clouds differ.
CAR_TYPE_OFFSETS: dict[str, tuple[float, float, float]] = {
    "hatchback": (-1.0, -0.5, -0.2),
    "sedan": (0.5, 0.2, -0.6),
    "suv": (0.5, 0.6, 1.6),
    "pickup": (1.6, 0.8, 1.0),
}


@dataclass(frozen=True)
class SizeStat:
    """Mean and standard deviation of (length, width, height), metres, and hard limits (3 sigma by default)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def low(self) -> np.ndarray:
        return np.maximum(np.asarray(self.mean) - 3 * np.asarray(self.std), 0.2)

    @property
    def high(self) -> np.ndarray:
        return np.asarray(self.mean) + 3 * np.asarray(self.std)


@dataclass(frozen=True)
class LabelStyle:
    """One dataset's size convention.

    classes: per labelled class name, its size statistics.
    type_class: per body type / kind, the class it is labelled as (one of ``classes``).
    type_weights: how common each vehicle body type is among vehicles (sums to 1).
    child_fraction: share of pedestrians that are children (drawn from ``child``).
    """

    name: str
    classes: dict[str, SizeStat]
    type_class: dict[str, str]
    type_weights: dict[str, float]
    child: SizeStat
    child_fraction: float


#: The KITTI class of each kind (KITTI has no bus class: buses are labelled Truck); the KITTI and Waymo styles
#: keep their statistics under these names, and the KITTI writer labels with them (actors.KITTI_NAMES).
KITTI_CLASSES = {"hatchback": "Car", "sedan": "Car", "suv": "Car", "pickup": "Car", "van": "Van", "truck": "Truck",
                 "bus": "Truck", "pedestrian": "Pedestrian", "cyclist": "Cyclist"}

KITTI = LabelStyle(
    name="kitti",
    classes={
        "Car": SizeStat((3.88, 1.63, 1.53), (0.43, 0.10, 0.14)),
        "Van": SizeStat((5.08, 1.90, 2.21), (0.45, 0.11, 0.24)),
        "Truck": SizeStat((10.1, 2.59, 3.25), (2.5, 0.16, 0.35)),
        "Pedestrian": SizeStat((0.84, 0.66, 1.76), (0.23, 0.14, 0.11)),
        "Cyclist": SizeStat((1.76, 0.60, 1.74), (0.18, 0.12, 0.09)),
    },
    type_class=KITTI_CLASSES,
    type_weights={"hatchback": 0.42, "sedan": 0.33, "suv": 0.1, "pickup": 0.02, "van": 0.09, "truck": 0.03,
                  "bus": 0.01},
    child=SizeStat((0.55, 0.45, 1.25), (0.1, 0.06, 0.12)),
    child_fraction=0.05,
)

WAYMO = LabelStyle(
    name="waymo",
    classes={
        "Car": SizeStat((4.80, 2.11, 1.78), (0.79, 0.18, 0.25)),
        "Van": SizeStat((5.6, 2.2, 2.4), (0.5, 0.12, 0.25)),
        "Truck": SizeStat((10.5, 2.7, 3.4), (2.5, 0.2, 0.4)),
        "Pedestrian": SizeStat((0.91, 0.86, 1.73), (0.2, 0.15, 0.16)),
        "Cyclist": SizeStat((1.78, 0.84, 1.78), (0.2, 0.15, 0.12)),
    },
    type_class=KITTI_CLASSES,
    type_weights={"hatchback": 0.12, "sedan": 0.38, "suv": 0.3, "pickup": 0.1, "van": 0.06, "truck": 0.03,
                  "bus": 0.01},
    child=SizeStat((0.6, 0.55, 1.25), (0.1, 0.08, 0.12)),
    child_fraction=0.06,
)

NUSCENES = LabelStyle(
    name="nuscenes",
    classes={
        "Car": SizeStat((4.64, 1.96, 1.71), (0.46, 0.19, 0.25)),
        "Van": SizeStat((5.3, 2.1, 2.3), (0.45, 0.12, 0.25)),
        "Truck": SizeStat((6.93, 2.51, 2.84), (1.8, 0.3, 0.5)),
        "Bus": SizeStat((10.5, 2.94, 3.47), (1.5, 0.12, 0.25)),
        "Pedestrian": SizeStat((0.73, 0.67, 1.77), (0.19, 0.14, 0.18)),
        "Cyclist": SizeStat((1.70, 0.60, 1.28), (0.2, 0.12, 0.15)),
    },
    type_class={**KITTI_CLASSES, "bus": "Bus"},
    type_weights={"hatchback": 0.2, "sedan": 0.4, "suv": 0.25, "pickup": 0.03, "van": 0.06, "truck": 0.05,
                  "bus": 0.01},
    child=SizeStat((0.55, 0.5, 1.25), (0.1, 0.07, 0.12)),
    child_fraction=0.06,
)

LABEL_STYLES: dict[str, LabelStyle] = {s.name: s for s in (KITTI, WAYMO, NUSCENES)}


def get_label_style(name: str) -> LabelStyle:
    if name not in LABEL_STYLES:
        raise ValueError(f"unknown label style {name!r}; choose one of {', '.join(LABEL_STYLES)}")
    return LABEL_STYLES[name]


def type_size_distributions(style: LabelStyle) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per body type / kind: (mean (3,), std (3,)) of its box, metres.

    The car types of a class are its mean plus ``CAR_TYPE_OFFSETS`` (centred on the mixture's weights),
    each with a within-type spread chosen so that the mixture of types, at the style's weights, has the
    class's published mean and standard deviation: var(class) = var(within type) + var(type means).
    Other kinds take their class's statistics directly.
    """
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    car_types = [t for t in CAR_TYPE_OFFSETS if style.type_class[t] == "Car"]
    weights = np.array([style.type_weights[t] for t in car_types], np.float64)
    weights = weights / weights.sum()
    offsets = np.array([CAR_TYPE_OFFSETS[t] for t in car_types], np.float64)
    offsets -= weights @ offsets  # the mixture's mean is the class mean
    spread_of_means = weights @ offsets ** 2
    if np.any(spread_of_means >= 1.0):
        raise ValueError(f"{style.name}: the car type offsets spread more than the class itself")
    within = np.sqrt(1.0 - spread_of_means)
    car = style.classes["Car"]
    for t, off in zip(car_types, offsets):
        out[t] = (np.asarray(car.mean) + off * np.asarray(car.std), within * np.asarray(car.std))
    for kind, cls in style.type_class.items():
        if kind not in out:
            stat = style.classes[cls]
            out[kind] = (np.asarray(stat.mean, np.float64), np.asarray(stat.std, np.float64))
    return out


class SizeSampler:
    """Draws box extents (length, width, height) of a kind in a label style, in whole centimetres.

    Draws are made in batches of 64 per kind (numpy's per-call cost dominates for three numbers), clipped to
    3 sigma of the class, so the same Generator gives the same sizes in the same order.
    """

    BATCH = 64

    def __init__(self, rng: np.random.Generator, style: LabelStyle = KITTI):
        self._rng = rng
        self.style = style
        self._dists = type_size_distributions(style)
        self._limits = {kind: (style.classes[cls].low, style.classes[cls].high)
                        for kind, cls in style.type_class.items()}
        self._pool: dict[str, list[np.ndarray]] = {}

    def __call__(self, kind: str, child: bool = False) -> np.ndarray:
        key = "child" if child else kind
        pool = self._pool.get(key)
        if not pool:
            if child:
                stat = self.style.child
                mean, std, lo, hi = np.asarray(stat.mean), np.asarray(stat.std), stat.low, stat.high
            else:
                (mean, std), (lo, hi) = self._dists[kind], self._limits[kind]
            batch = np.round(np.clip(self._rng.normal(mean, std, size=(self.BATCH, 3)), lo, hi), 2)
            pool = self._pool[key] = list(batch[::-1])
        return pool.pop()

    def vehicle_type(self) -> str:
        """A vehicle body type, drawn at the style's weights."""
        types = list(self.style.type_weights)
        p = np.array([self.style.type_weights[t] for t in types], np.float64)
        return types[int(self._rng.choice(len(types), p=p / p.sum()))]

