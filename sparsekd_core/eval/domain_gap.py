"""How far simulated frames are from real ones, in the numbers a LiDAR detector is sensitive to.

Each side is a KITTI-format dataset split (real KITTI frames, or ``sparsekd-sim`` output). For each side:

- frames: points per frame; ground height (geometry/ground.py: where the road is in the points' frame, which
  a model expects at a fixed height); what a roof sensor sees of its own vehicle: the returns within
  ``NEAR_SENSOR`` m of the sensor (BEV), within ``OWN_VEHICLE_HALF_WIDTH`` m of its long axis (a car passing or
  parked beside is not the own vehicle) and more than ``ABOVE_ROAD`` m above the road, and how far ahead and
  behind the road shows (the nearest road return within ``SHADOW_HALF_ANGLE`` degrees of straight ahead and of
  straight behind; the body hides the road under and around it, data/sim/ego_body.py); how much stands around
  the road: the returns ``STANDING`` m above the road in BEV range bands from ``NEAR_SENSOR`` m on (parked cars,
  walls, hedges, trees, people: everything a detector must tell road users from), median per frame;
- intensity: percentiles, the share of exact zeros, the median by range band;
- objects: per class, box size mean and spread (length, width, height) and the median number of points per
  fully visible object (occlusion level 0) in range bands (how well the simulated sensor sees each class); and how
  deep a box's returns lie: the median, over objects ``DEPTH_RANGE`` m away with at least ``DEPTH_MIN_RETURNS``
  returns in their box, of their returns' median offset from the box centre along the sensor's ray (negative:
  nearer than the centre). A detector learns from it how far behind the surface it sees a centre lies, so a gap
  here puts boxes too far or too near on the other side; and how bright each class reads: the median, over objects
  ``DEPTH_RANGE`` m away with at least ``OBJECT_INTENSITY_MIN_RETURNS`` returns, of their returns' median intensity
  (a class that reads darker or brighter than its real counterpart can teach a detector a cue that real frames
  do not hold), and the share of those returns that read exactly 0, over all of them and over those above
  ``BELTLINE`` of the box's height (a car's windows, roof and bonnet: where a real car reads 0 and a matte one does
  not, sim/materials.clear_coat); and the share of pedestrians with another labelled pedestrian within
  ``COMPANY_REACH`` m (BEV centres): people walking or standing side by side, whose returns a detector must split
  into two boxes; and how wide a pedestrian reads across the sensor's ray at chest height (``CHEST_BAND`` above its
  box floor, 5-95% of its returns there; objects ``DEPTH_RANGE`` m away), for those crossing the ray
  (``CROSSING_DEG``) and those walking along it (``ALONG_RAY_DEG``) apart: seen from the side a walker shows its
  torso's depth and swinging arms, from the front its shoulders, which is how a detector can tell which way a person
  faces; and how flat a person's or a cyclist's returns lie (:func:`returns_thickness`: their spread in BEV across
  the direction they spread least, ``THICKNESS_FLOOR`` m above the box floor and up, objects ``DEPTH_RANGE`` m away),
  the median and the share under ``FLAT`` m: a real body is round and its silhouette's edges scatter, a board, a
  plate or a flat face is not, so a simulator whose people read flat teaches a detector that flat things are people;
  and where a cyclist's rider sits on the bicycle (:func:`rider_on_bicycle`: head and shoulders along the heading,
  and the share of returns on the wheels and frame low down, cyclists seen from the side): a detector learns from it
  where the box lies around a person on a bicycle; and what stands beside each pedestrian and cyclist
  (:func:`standing_beside`: returns standing within ``BESIDE_REACH`` m that are on no labelled road user): walls,
  posts, bollards, bushes, which a detector must tell from the person next to them;
- with a detector: boxes per frame at its score threshold, and *false boxes* per frame: predictions in the
  front camera's view (where KITTI labels exist) whose centre is not within reach of any labelled object of
  any class (``FALSE_BOX_REACH`` m beyond its half-diagonal) nor inside a DontCare region of the image,
  in all and by the class the detector gave them (which clutter fires as what), per class by BEV distance band
  (``RANGE_BANDS``: where it fires), and the median score of a class's false boxes beside that of its boxes
  on labelled objects (how far apart they are is what a score threshold can use); for pedestrians and cyclists
  also the share of false boxes, and beside it of labelled objects, with returns just over the head
  (clear_overhead.py's window and count: a sign post or a trunk going on up, which a simulator may lack), and the
  same thickness figures for those false boxes;
  and, per class, how the boxes it puts on labelled objects are wrong: each labelled object centred in the
  detector's range is matched to the nearest box of its class whose BEV centre is within ``MATCH_REACH`` m,
  and the medians of the matched pairs' errors are reported (centre distance in BEV; its signed part along
  the sensor's ray, positive when the box sits farther from the sensor than the object; predicted minus true
  z, length, width and height; yaw difference folded to 0..90 degrees, as a box's IoU does not see a half turn),
  with the share of pairs whose yaw is within ``YAW_WITHIN_DEG`` degrees; and the pairs' BEV IoU, its median and
  the share that reaches KITTI's threshold for the class (Car 0.7, Pedestrian and Cyclist 0.5): an object found
  but boxed loosely is a miss in AP, and a median IoU near the threshold says AP turns on small errors;
  beside it the same share had each box the label's yaw, or the label's size (its own centre and the rest kept):
  which part of the box keeps found objects under the threshold.
  A systematic size or height error shows there, where AP only says that IoU fell short. Two kinds of pedestrian
  are also reported on their own (``PEDESTRIAN_SUBSETS``: found, size and yaw error, BEV IoU and its shares): those
  in company, where a detector may draw one large box across two people, and those crossing the ray, where a
  detector that misreads a person's shape boxes them along it.

``sparsekd-gap`` prints the two sides next to each other (and writes JSON), so a change to the simulator can
be judged by the gap it closes. With ``images_dir`` (``--images``) it also draws each frame's labels and boxes on its
camera image (``camera_view``), false boxes captioned: what they stand on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from sparsekd_core.clear_overhead import MIN_RETURNS, overhead_returns
from sparsekd_core.data.infos import FrameInfo, load_points
from sparsekd_core.data.kitti_format import boxes_to_image_bbox
from sparsekd_core.data.point_files import model_points
from sparsekd_core.eval.kitti import MIN_OVERLAP
from sparsekd_core.geometry.boxes import points_in_boxes
from sparsekd_core.geometry.ground import estimate_ground
from sparsekd_core.geometry.iou import iou_bev_aligned
from sparsekd_core.viz.camera import draw_camera_boxes

CLASSES = ("Car", "Pedestrian", "Cyclist")
#: the classes whose boxes and labels are checked for returns over the head (clear_overhead.py)
PEOPLE = ("Pedestrian", "Cyclist")
RANGE_BANDS = ((0.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 40.0), (40.0, 60.0))
INTENSITY_BANDS = ((0.0, 20.0), (20.0, 40.0), (40.0, 80.0))
#: A prediction is false when its centre lies farther than this beyond every labelled object's half-diagonal.
FALSE_BOX_REACH = 1.0
#: A labelled object and a prediction of its class are a pair when their BEV centres are this close (metres).
MATCH_REACH = 1.5
#: A matched box turned by less than this (degrees, folded) counts as well aligned: a 3.9 x 1.6 m car box turned
#: by 10 degrees keeps a BEV IoU of 0.80 with itself, by 24 degrees only 0.62, under KITTI's 0.7.
YAW_WITHIN_DEG = 10.0
#: The ego vehicle's returns: within this BEV distance of the sensor and this far above the road (metres).
NEAR_SENSOR = 3.0
ABOVE_ROAD = 0.3
#: ... and within this much of the sensor's long axis: half a car's width, mirrors and what a rig sticks out
#: (KITTI's rear roof corners read at y +-1.2 m; data/sim/ego_body.py's widest fixtures reach about 1.4 m).
OWN_VEHICLE_HALF_WIDTH = 1.5
#: Returns this high above the road (metres) stand on it: road users, parked cars, walls, vegetation, poles.
STANDING = (0.3, 3.0)
#: BEV range bands (metres) of the standing returns; they start where the own vehicle's returns end.
STANDING_BANDS = ((NEAR_SENSOR, 10.0), (10.0, 20.0), (20.0, 40.0), (40.0, 80.0))
#: Objects whose returns' depth is measured: this far from the sensor (BEV, metres), with this many returns.
DEPTH_RANGE = (5.0, 40.0)
DEPTH_MIN_RETURNS = 40
#: Objects whose returns' intensity is measured: DEPTH_RANGE away, with this many returns.
OBJECT_INTENSITY_MIN_RETURNS = 20
#: Where a car's upper body starts, as a share of its box's height from the floor: its beltline.
BELTLINE = 0.55
#: A pedestrian is in company when another labelled pedestrian's BEV centre is this close (metres): two people
#: side by side, shoulders apart or touching.
COMPANY_REACH = 1.1
#: A pedestrian crosses the sensor's ray when its label's heading is this many degrees or more off the ray (folded to
#: 0-90), and walks along it within ALONG_RAY_DEG: seen from the side or from the front or back.
CROSSING_DEG = 60.0
ALONG_RAY_DEG = 30.0
#: The chest band of a person (metres above the box's floor): torso and upper arms, below the head, above the hands.
#: Its returns' extent across the ray tells a walker seen from the side (narrow) from one seen from the front.
CHEST_BAND = (0.9, 1.5)
CHEST_MIN_RETURNS = 10
#: The thickness of a person's returns is measured from this high above the box floor (metres: above the ground and
#: a kerb), on objects with this many returns there; returns spread less than FLAT (metres, standard deviation)
#: across their least spread direction lie on a plane (a board, a sign, one flat face). Real KITTI pedestrians
#: and cyclists read 0.066 and 0.088 m and more (31 and 14 labelled ones at any distance, session 54).
THICKNESS_FLOOR = 0.3
THICKNESS_MIN_RETURNS = 10
FLAT = 0.05
#: Where a cyclist's rider sits on the bicycle: the median position along the box's heading (metres from its centre,
#: positive ahead) of its returns UPPER_BODY m and more above the box floor (head and shoulders), and the share of its
#: returns below LOW_PART m (wheels, frame, feet), on cyclists DEPTH_RANGE away seen SIDE_VIEW_DEG or more off the
#: sensor's ray (end-on, the returns cannot say where along the bicycle anything is), with RIDER_MIN_RETURNS returns
#: up there. Real KITTI riders sit over the rear half, on a saddle behind the bottom bracket.
UPPER_BODY = 1.25
LOW_PART = 0.9
SIDE_VIEW_DEG = 25.0
RIDER_MIN_RETURNS = 5
#: What stands beside a pedestrian or cyclist DEPTH_RANGE away: the returns STANDING above its box's floor within
#: BESIDE_REACH m (BEV) of its box centre, outside every labelled box grown by BESIDE_MARGIN m (real labels are tight,
#: and a person's own returns spill past them): walls, poles, bollards, bushes, unlabelled things, not road users.
BESIDE_REACH = 3.0
BESIDE_MARGIN = 0.3
#: Road returns within this many degrees of straight ahead / behind measure how far the ego's shadow reaches.
SHADOW_HALF_ANGLE = 20.0
#: The matched pairs' errors, their BEV IoU, and their BEV IoU had the box the label's yaw, or the label's size (its
#: own centre and the rest): which part of a box keeps it under KITTI's threshold. In the order of SideStats.errors'
#: rows.
ERROR_FIELDS = ("centre", "radial", "dz", "dl", "dw", "dh", "yaw_deg", "bev_iou", "bev_iou_label_yaw",
                "bev_iou_label_size")


@dataclass
class SideStats:
    """The figures of one side (see the module docstring); every list is over frames or objects."""

    name: str
    frames: int = 0
    points_per_frame: list[float] = field(default_factory=list)
    ground: list[float] = field(default_factory=list)
    #: per frame: returns near the sensor, nearest road return ahead and behind (see near_sensor)
    near_sensor: list[tuple[int, float, float]] = field(default_factory=list)
    #: per frame: returns standing on the road in each of STANDING_BANDS (see standing_returns)
    standing: list[list[int]] = field(default_factory=list)
    intensity: list[np.ndarray] = field(default_factory=list, repr=False)
    intensity_range: list[np.ndarray] = field(default_factory=list, repr=False)
    sizes: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)
    points_at: dict[str, list[tuple[float, int]]] = field(default_factory=dict, repr=False)
    #: per class: each measured object's returns' median offset from its box centre along the ray (return_depth)
    depth: dict[str, list[float]] = field(default_factory=dict, repr=False)
    #: per class: each measured object's returns' median intensity (object_intensity)
    object_intensity: dict[str, list[float]] = field(default_factory=dict, repr=False)
    #: per class: the measured objects' returns and those reading 0, all and above BELTLINE (zero_intensity_counts)
    zero_counts: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: per frame: labelled pedestrians, and those of them in company (COMPANY_REACH)
    pedestrians: list[tuple[int, int]] = field(default_factory=list)
    boxes_per_frame: list[int] = field(default_factory=list)
    false_per_frame: list[int] = field(default_factory=list)
    #: per class the detector gave: its false boxes in each frame
    false_by_class: dict[str, list[int]] = field(default_factory=dict)
    #: per class: the BEV distance and the score of each false box; the score of each box matched to a labelled object
    false_distance: dict[str, list[float]] = field(default_factory=dict, repr=False)
    false_scores: dict[str, list[float]] = field(default_factory=dict, repr=False)
    matched_scores: dict[str, list[float]] = field(default_factory=dict, repr=False)
    #: per class: labelled objects in the detector's range, and the error rows (ERROR_FIELDS) of the matched ones
    in_range: dict[str, int] = field(default_factory=dict)
    errors: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)
    #: the same for each of PEDESTRIAN_SUBSETS (in company, crossing the ray): how many in range, their error rows
    subset_in_range: dict[str, int] = field(default_factory=dict)
    subset_errors: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)
    #: measured pedestrians' chest-band extent across the ray (chest_across_ray), crossing the ray or along it
    chest_across: dict[str, list[float]] = field(default_factory=dict, repr=False)
    #: measured cyclists' riders (rider_on_bicycle): head and shoulders along the heading, share of returns low down
    rider: list[tuple[float, float]] = field(default_factory=list, repr=False)
    #: per class of PEOPLE: how much stands beside each measured labelled object (standing_beside)
    beside: dict[str, list[int]] = field(default_factory=dict, repr=False)
    #: per class of PEOPLE: each measured labelled object's and false box's returns' thickness (returns_thickness)
    thickness: dict[str, list[float]] = field(default_factory=dict, repr=False)
    false_thickness: dict[str, list[float]] = field(default_factory=dict, repr=False)
    #: per class of PEOPLE: each labelled object's and each false box's "returns over the head" (clear_overhead.py)
    labelled_overhead: dict[str, list[bool]] = field(default_factory=dict, repr=False)
    false_overhead: dict[str, list[bool]] = field(default_factory=dict, repr=False)
    #: camera images drawn (measure's images_dir)
    images: int = 0

    def add_frame(self, info: FrameInfo, points: np.ndarray, rng: np.random.Generator) -> None:
        self.frames += 1
        self.points_per_frame.append(len(points))
        ground = estimate_ground(points)
        self.ground.append(float("nan") if ground is None else ground.height)
        if ground is not None:
            self.near_sensor.append(near_sensor(points, ground.height))
            self.standing.append(standing_returns(points, ground.height))
        if points.shape[1] > 3:
            pick = rng.choice(len(points), size=min(len(points), 20000), replace=False)
            self.intensity.append(points[pick, 3])
            self.intensity_range.append(np.hypot(points[pick, 0], points[pick, 1]))
        a = info.annos
        self.pedestrians.append(pedestrians_in_company(a.boxes_lidar[np.asarray(a.names) == "Pedestrian"]))
        for c in PEOPLE:
            labelled = a.boxes_lidar[np.asarray(a.names) == c]
            self.labelled_overhead.setdefault(c, []).extend(overhead_returns(points, labelled) >= MIN_RETURNS)
        occluded = a.occluded if a.occluded is not None else np.zeros(len(a), np.int64)
        for name, box, n, occ in zip(a.names, a.boxes_lidar, a.num_points_in_gt, occluded):
            if name not in CLASSES:
                continue
            self.sizes.setdefault(name, []).append(np.asarray(box[3:6], np.float64))
            if occ == 0 and n >= 0:
                self.points_at.setdefault(name, []).append((float(np.hypot(box[0], box[1])), int(n)))
            if DEPTH_RANGE[0] <= np.hypot(box[0], box[1]) < DEPTH_RANGE[1]:
                inside = points_in_boxes(points[:, :3], np.asarray(box, np.float64)[None])[:, 0].astype(bool)
                depth = return_depth(points, box, inside)
                if depth is not None:
                    self.depth.setdefault(name, []).append(depth)
                brightness = object_intensity(points, inside)
                if brightness is not None:
                    self.object_intensity.setdefault(name, []).append(brightness)
                    counts = zero_intensity_counts(points, box, inside)
                    self.zero_counts[name] = self.zero_counts.get(name, np.zeros(4, np.int64)) + counts
                if name == "Pedestrian":
                    self._add_chest(box, points, inside)
                if name in PEOPLE:
                    self._add_thickness(self.thickness, name, box, points, inside)
                    self.beside.setdefault(name, []).append(int(standing_beside(points, box, a.boxes_lidar)[0]))
                if name == "Cyclist":
                    rider = rider_on_bicycle(points, box, inside)
                    if rider is not None:
                        self.rider.append(rider)

    @staticmethod
    def _add_thickness(into: dict[str, list[float]], name: str, box: np.ndarray, points: np.ndarray,
                       inside: np.ndarray) -> None:
        thickness = returns_thickness(points, box, inside)
        if thickness is not None:
            into.setdefault(name, []).append(thickness)

    def _add_chest(self, box: np.ndarray, points: np.ndarray, inside: np.ndarray) -> None:
        """Keep a pedestrian's chest-band extent across the ray if it crosses the ray or walks along it."""
        turn = float(heading_to_ray(np.asarray(box, np.float64)[None])[0])
        way = "crossing" if turn >= CROSSING_DEG else "along" if turn <= ALONG_RAY_DEG else None
        extent = chest_across_ray(points, box, inside) if way else None
        if extent is not None:
            self.chest_across.setdefault(way, []).append(extent)

    def add_detections(self, info: FrameInfo, boxes: np.ndarray, names: Sequence[str],
                       point_cloud_range: Sequence[float], scores: np.ndarray | None = None,
                       points: np.ndarray | None = None) -> None:
        """Count the boxes a detector put in this frame and the false ones, and pair its boxes (K, 7) of class
        ``names`` (K,) with the labelled objects centred in its ``point_cloud_range`` (module docstring);
        ``scores`` (K,), when given, are kept for the false and the matched boxes' medians; with the frame's
        ``points``, false pedestrians and cyclists are checked for returns over the head and their returns'
        thickness is measured."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
        self.boxes_per_frame.append(len(boxes))
        false = false_boxes(info, boxes)
        self.false_per_frame.append(int(false.sum()))
        r = point_cloud_range
        names = np.asarray(names)
        scores = None if scores is None else np.asarray(scores, np.float64).reshape(-1)
        a = info.annos
        for c in CLASSES:
            mine = names == c
            false_mine = false & mine
            false_here = boxes[false_mine]
            distance = np.hypot(false_here[:, 0], false_here[:, 1])
            self.false_by_class.setdefault(c, []).append(int(false_mine.sum()))
            self.false_distance.setdefault(c, []).extend(distance)
            if points is not None and c in PEOPLE:
                over = overhead_returns(points, false_here) >= MIN_RETURNS
                self.false_overhead.setdefault(c, []).extend(over)
                measured = false_here[(distance >= DEPTH_RANGE[0]) & (distance < DEPTH_RANGE[1])]
                inside = points_in_boxes(points[:, :3], measured)
                for k, box in enumerate(measured):
                    self._add_thickness(self.false_thickness, c, box, points, inside[:, k])
            labelled = a.boxes_lidar[np.asarray(a.names) == c]
            seen = ((labelled[:, 0] >= r[0]) & (labelled[:, 0] < r[3]) & (labelled[:, 1] >= r[1])
                    & (labelled[:, 1] < r[4]))
            truth = labelled[seen]
            self.in_range[c] = self.in_range.get(c, 0) + len(truth)
            hit, nearest = nearest_within(truth, boxes[mine])
            rows = pair_errors(truth[hit], boxes[mine][nearest[hit]])
            self.errors.setdefault(c, []).append(rows)
            if c == "Pedestrian":  # judged among every labelled pedestrian (company counts those out of range)
                for subset, (_, members) in PEDESTRIAN_SUBSETS.items():
                    member = members(labelled)[seen]
                    self.subset_in_range[subset] = self.subset_in_range.get(subset, 0) + int(member.sum())
                    self.subset_errors.setdefault(subset, []).append(rows[member[hit]])
            if scores is not None:
                self.false_scores.setdefault(c, []).extend(scores[false_mine])
                self.matched_scores.setdefault(c, []).extend(scores[mine][nearest[hit]])

    def summary(self) -> dict:
        out: dict = {"name": self.name, "frames": self.frames,
                     "points_per_frame": _mean(self.points_per_frame), "ground_z": _median(self.ground)}
        if self.near_sensor:
            near, ahead, behind = np.array(self.near_sensor, np.float64).T
            out["returns_near_sensor"] = _median(near)
            out["road_from_ahead_behind"] = [_median(ahead), _median(behind)]
        if self.standing:
            per_band = np.array(self.standing, np.float64).T
            out["standing_returns_by_range"] = {f"{lo:g}-{hi:g}": _median(n)
                                                for (lo, hi), n in zip(STANDING_BANDS, per_band)}
        if self.intensity:
            inten = np.concatenate(self.intensity)
            rng = np.concatenate(self.intensity_range)
            out["intensity_percentiles"] = {str(q): float(np.percentile(inten, q)) for q in (10, 25, 50, 75, 90)}
            out["intensity_zero_share"] = float(np.mean(inten == 0))
            out["intensity_median_by_range"] = {f"{lo:g}-{hi:g}": _median(inten[(rng >= lo) & (rng < hi)])
                                                for lo, hi in INTENSITY_BANDS}
        out["sizes"] = {c: {"count": len(v), "mean": np.mean(v, 0).round(3).tolist(),
                            "std": np.std(v, 0).round(3).tolist()}
                        for c, v in sorted(self.sizes.items())}
        out["points_per_visible_object"] = {}
        for c, pairs in sorted(self.points_at.items()):
            d, n = np.array(pairs, np.float64).T
            out["points_per_visible_object"][c] = {
                f"{lo:g}-{hi:g}": {"count": int(((d >= lo) & (d < hi)).sum()),
                                   "median": _median(n[(d >= lo) & (d < hi)])} for lo, hi in RANGE_BANDS}
        out["return_depth"] = {c: _median(v) for c, v in sorted(self.depth.items())}
        out["object_intensity"] = {c: _median(v) for c, v in sorted(self.object_intensity.items())}
        out["zero_intensity_share"] = {c: {"all": float(n[1] / n[0]),
                                           "upper_body": float(n[3] / n[2]) if n[2] else float("nan")}
                                       for c, n in sorted(self.zero_counts.items())}
        out["pedestrian_chest_across_ray"] = {way: {"count": len(v), "median": _median(v)}
                                              for way, v in sorted(self.chest_across.items())}
        riders = np.asarray(self.rider, np.float64).reshape(-1, 2)
        out["cyclist_rider"] = {"count": len(riders), "upper_body_along": _median(riders[:, 0]),
                                "low_share": _median(riders[:, 1])}
        out["standing_beside"] = {c: {"count": len(self.beside.get(c, [])), "median": _median(self.beside.get(c, []))}
                                  for c in PEOPLE}
        out["thickness"] = {c: {"labelled": _thickness_summary(self.thickness.get(c)),
                                "false": _thickness_summary(self.false_thickness.get(c))} for c in PEOPLE}
        out["overhead_share"] = {c: {"labelled": _mean(self.labelled_overhead.get(c, [])),
                                     "false": _mean(self.false_overhead[c]) if c in self.false_overhead else None}
                                 for c in PEOPLE}
        people, company = np.array(self.pedestrians, np.int64).reshape(-1, 2).sum(axis=0)
        out["pedestrians_in_company"] = float(company / people) if people else float("nan")
        if self.boxes_per_frame:
            out["boxes_per_frame"] = _mean(self.boxes_per_frame)
            out["false_boxes_per_frame"] = _mean(self.false_per_frame)
            out["false_boxes_per_frame_by_class"] = {c: _mean(v) for c, v in self.false_by_class.items()}
            frames = len(self.false_per_frame)
            distances = {c: np.asarray(d) for c, d in self.false_distance.items()}
            out["false_boxes_per_frame_by_range"] = {
                c: {f"{lo:g}-{hi:g}": float(np.sum((d >= lo) & (d < hi))) / frames for lo, hi in RANGE_BANDS}
                for c, d in distances.items()}
            if self.matched_scores or self.false_scores:
                out["median_score"] = {c: {"false": _median(self.false_scores.get(c, [])),
                                           "matched": _median(self.matched_scores.get(c, []))} for c in CLASSES}
            out["matched"] = {c: _matched_summary(self.errors.get(c, []), self.in_range.get(c, 0), c) for c in CLASSES}
            for subset in PEDESTRIAN_SUBSETS:
                out["matched"]["Pedestrian"][subset] = _matched_summary(
                    self.subset_errors.get(subset, []), self.subset_in_range.get(subset, 0), "Pedestrian")
        return out


def _matched_summary(errors: list[np.ndarray], in_range: int, cls: str) -> dict:
    """How many of ``in_range`` labelled objects of class ``cls`` got a box, and the medians of their error rows
    (``errors``: arrays of ERROR_FIELDS rows), the share turned by under YAW_WITHIN_DEG and the share whose BEV IoU
    reaches KITTI's threshold for the class, as predicted and had the boxes the label's yaw or the label's size."""
    rows = np.concatenate(errors) if errors else np.zeros((0, len(ERROR_FIELDS)))
    yaw = rows[:, ERROR_FIELDS.index("yaw_deg")]

    def passing(field: str) -> float:
        iou = rows[:, ERROR_FIELDS.index(field)]
        return float(np.mean(iou >= MIN_OVERLAP[cls.lower()])) if len(rows) else float("nan")

    return {"in_range": in_range, "count": len(rows),
            "median_error": {f: _median(rows[:, i]) for i, f in enumerate(ERROR_FIELDS)},
            "yaw_within": float(np.mean(yaw < YAW_WITHIN_DEG)) if len(rows) else float("nan"),
            "bev_iou_passing": passing("bev_iou"), "bev_iou_passing_label_yaw": passing("bev_iou_label_yaw"),
            "bev_iou_passing_label_size": passing("bev_iou_label_size")}


def _thickness_summary(values: list[float] | None) -> dict | None:
    """count, median and share under FLAT of some objects' returns' thickness; None when none was measured."""
    if not values:
        return None
    v = np.asarray(values, np.float64)
    return {"count": len(v), "median": float(np.median(v)), "flat_share": float(np.mean(v < FLAT))}


def _mean(x) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def _median(x) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else float("nan")


def near_sensor(points: np.ndarray, ground_height: float) -> tuple[int, float, float]:
    """What a sensor sees of the vehicle it rides on, in one frame of (N, >=3) points whose road lies at
    ``ground_height``: (returns within NEAR_SENSOR m of it in BEV, OWN_VEHICLE_HALF_WIDTH m of its long axis and
    ABOVE_ROAD m above the road, the distance of the nearest road return ahead, and behind; NaN where the road shows
    nowhere in that direction)."""
    xy = np.hypot(points[:, 0], points[:, 1])
    height = points[:, 2] - ground_height
    near = int(((xy < NEAR_SENSOR) & (np.abs(points[:, 1]) < OWN_VEHICLE_HALF_WIDTH) & (height > ABOVE_ROAD)).sum())
    road = np.abs(height) < 0.2
    heading = np.degrees(np.arctan2(points[:, 1], points[:, 0]))
    nearest = []
    for centre in (0.0, 180.0):
        sector = road & (np.abs((heading - centre + 180.0) % 360.0 - 180.0) < SHADOW_HALF_ANGLE)
        nearest.append(float(xy[sector].min()) if sector.any() else float("nan"))
    return near, nearest[0], nearest[1]


def pedestrians_in_company(boxes: np.ndarray) -> tuple[int, int]:
    """(pedestrians, those with another one's BEV centre within COMPANY_REACH m) of one frame's pedestrian boxes
    (P, >=2)."""
    return len(boxes), int(in_company(boxes).sum())


def in_company(boxes: np.ndarray) -> np.ndarray:
    """(P,) bool: which of one frame's pedestrian boxes (P, >=2) have another one's BEV centre within
    COMPANY_REACH m."""
    boxes = np.asarray(boxes, np.float64)
    if len(boxes) < 2:
        return np.zeros(len(boxes), bool)
    dist = np.hypot(boxes[:, None, 0] - boxes[None, :, 0], boxes[:, None, 1] - boxes[None, :, 1])
    np.fill_diagonal(dist, np.inf)
    return dist.min(axis=1) < COMPANY_REACH


def _folded(angle: np.ndarray) -> np.ndarray:
    """Angles (radians) folded to 0..pi/2: how far one axis is turned from another, as a box's IoU sees it (a half
    turn is the same box)."""
    return np.abs((angle + np.pi / 2) % np.pi - np.pi / 2)


def _rays(xy: np.ndarray) -> np.ndarray:
    """Unit vectors from the sensor towards BEV positions ``xy`` (..., 2)."""
    xy = np.asarray(xy, np.float64)
    return xy / np.maximum(np.hypot(xy[..., 0], xy[..., 1]), 1e-6)[..., None]


def heading_to_ray(boxes: np.ndarray) -> np.ndarray:
    """(N,) degrees, 0-90: how far each box's (N, 7) heading turns from the ray from the sensor to its centre (0:
    moving along the ray, towards or away; 90: crossing it). A box's length and width only, not its front, count."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    turn = boxes[:, 6] - np.arctan2(boxes[:, 1], boxes[:, 0])
    return np.degrees(_folded(turn))


def crossing_the_ray(boxes: np.ndarray) -> np.ndarray:
    """(P,) bool: which of one frame's pedestrian boxes (P, 7) cross the sensor's ray (CROSSING_DEG)."""
    return heading_to_ray(boxes) >= CROSSING_DEG


#: Pedestrians reported on their own besides the whole class, each (how the report names them, which of a frame's
#: pedestrian boxes (P, 7) belong): people close together, where a detector may draw one box across two; people
#: crossing the sensor's view, whom a detector trained on the simulated streets boxes along the ray instead.
PEDESTRIAN_SUBSETS = {"in_company": ("in company", in_company), "crossing": ("crossing the ray", crossing_the_ray)}


def chest_across_ray(points: np.ndarray, box: np.ndarray, inside: np.ndarray) -> float | None:
    """The 5-95% extent (metres) across the sensor's ray of the returns inside ``box`` (7,) that lie in its
    CHEST_BAND above the box floor (``inside``: (N,) bool, the points in the box); None with fewer than
    CHEST_MIN_RETURNS of them. A person seen from the side shows the torso's depth and the swinging arms there,
    one seen from the front the shoulders."""
    box = np.asarray(box, np.float64)
    height = points[:, 2] - (box[2] - box[5] / 2)
    chest = inside & (height >= CHEST_BAND[0]) & (height < CHEST_BAND[1])
    if chest.sum() < CHEST_MIN_RETURNS:
        return None
    ray = _rays(box[:2])
    across = (points[chest, :2] - box[:2]) @ np.array([-ray[1], ray[0]])
    low, high = np.percentile(across, [5, 95])
    return float(high - low)


def returns_thickness(points: np.ndarray, box: np.ndarray, inside: np.ndarray) -> float | None:
    """How flat the returns inside ``box`` (7,) lie (``inside``: (N,) bool, the points in it): the standard deviation
    (metres) of their BEV positions along the horizontal direction they spread least in, over those THICKNESS_FLOOR
    m and more above the box floor; None with fewer than THICKNESS_MIN_RETURNS of them."""
    box = np.asarray(box, np.float64)
    above = inside & (points[:, 2] - (box[2] - box[5] / 2) >= THICKNESS_FLOOR)
    if above.sum() < THICKNESS_MIN_RETURNS:
        return None
    spread = np.linalg.eigvalsh(np.cov(points[above, :2].astype(np.float64).T))  # ascending
    return float(np.sqrt(max(spread[0], 0.0)))


def rider_on_bicycle(points: np.ndarray, box: np.ndarray, inside: np.ndarray) -> tuple[float, float] | None:
    """Where a cyclist's rider sits on the bicycle (``box`` (7,), ``inside``: (N,) bool, the points in it): the median
    position along the box's heading (metres from its centre, positive ahead) of its returns UPPER_BODY m and more
    above the box floor, and the share of all its returns that lie below LOW_PART m; None when the cyclist is seen
    within SIDE_VIEW_DEG of end-on or has fewer than RIDER_MIN_RETURNS returns up there."""
    box = np.asarray(box, np.float64)
    if heading_to_ray(box[None])[0] < SIDE_VIEW_DEG:
        return None
    height = points[inside, 2] - (box[2] - box[5] / 2)
    upper = height >= UPPER_BODY
    if upper.sum() < RIDER_MIN_RETURNS:
        return None
    along = (points[inside, :2] - box[:2]) @ np.array([np.cos(box[6]), np.sin(box[6])])
    return float(np.median(along[upper])), float(np.mean(height < LOW_PART))


def standing_beside(points: np.ndarray, boxes: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """(M,) int: how many of the (N, >=3) ``points`` stand beside each of ``boxes`` (M, 7): STANDING above its box's
    floor (the ground where it stands), within BESIDE_REACH m (BEV) of its centre, and outside every one of the
    frame's ``labelled`` boxes (L, 7), itself among them, grown by BESIDE_MARGIN m."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    labelled = np.asarray(labelled, np.float64).reshape(-1, 7)
    out = np.zeros(len(boxes), np.int64)
    for k, box in enumerate(boxes):
        height = points[:, 2] - (box[2] - box[5] / 2)
        near = ((np.hypot(points[:, 0] - box[0], points[:, 1] - box[1]) < BESIDE_REACH)
                & (height > STANDING[0]) & (height < STANDING[1]))
        around = points[near, :3]
        if len(labelled) and len(around):
            around = around[~points_in_boxes(around, labelled, margin=BESIDE_MARGIN).any(axis=1)]
        out[k] = len(around)
    return out


def return_depth(points: np.ndarray, box: np.ndarray, inside: np.ndarray | None = None) -> float | None:
    """The median offset (metres) of the returns inside ``box`` (7,) from its centre, along the ray from the sensor
    to that centre (negative: nearer the sensor); None with fewer than DEPTH_MIN_RETURNS returns in it.
    inside: (N,) bool, which points lie in the box, when already known."""
    if inside is None:
        inside = points_in_boxes(points[:, :3], np.asarray(box, np.float64)[None])[:, 0].astype(bool)
    if inside.sum() < DEPTH_MIN_RETURNS:
        return None
    ray = _rays(box[:2])
    return float(np.median((points[inside, :2] - box[:2]) @ ray))


def object_intensity(points: np.ndarray, inside: np.ndarray) -> float | None:
    """The median intensity of an object's returns (``inside``: (N,) bool, the points in its box); None with fewer
    than OBJECT_INTENSITY_MIN_RETURNS of them or points without intensity."""
    if points.shape[1] < 4 or inside.sum() < OBJECT_INTENSITY_MIN_RETURNS:
        return None
    return float(np.median(points[inside, 3]))


def zero_intensity_counts(points: np.ndarray, box: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """(4,) int64: an object's returns (``inside``: (N,) bool, the points in its ``box``), those of them reading
    intensity 0, its returns above BELTLINE of the box's height from its floor, and those of them reading 0."""
    p = points[inside]
    upper = p[:, 2] > box[2] - box[5] / 2 + BELTLINE * box[5]
    zero = p[:, 3] == 0
    return np.array([len(p), zero.sum(), upper.sum(), (zero & upper).sum()], np.int64)


def standing_returns(points: np.ndarray, ground_height: float) -> list[int]:
    """How much stands around the road in one frame of (N, >=3) points whose road lies at ``ground_height``: the
    returns STANDING m above it, counted in each of STANDING_BANDS (BEV distance from the sensor)."""
    xy = np.hypot(points[:, 0], points[:, 1])
    height = points[:, 2] - ground_height
    standing = (height > STANDING[0]) & (height < STANDING[1])
    return [int((standing & (xy >= lo) & (xy < hi)).sum()) for lo, hi in STANDING_BANDS]


def nearest_within(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each labelled box of ``truth`` (M, 7): whether a ``predicted`` box (K, 7) has its BEV centre within
    MATCH_REACH m (M,) bool, and the index of the nearest one (M,) (meaningless where there is none)."""
    if not len(truth) or not len(predicted):
        return np.zeros(len(truth), bool), np.zeros(len(truth), np.int64)
    dist = np.hypot(truth[:, None, 0] - predicted[None, :, 0], truth[:, None, 1] - predicted[None, :, 1])
    nearest = dist.argmin(axis=1)
    return dist[np.arange(len(truth)), nearest] < MATCH_REACH, nearest


def matched_errors(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(P, 8) error rows (ERROR_FIELDS) of the labelled boxes ``truth`` (M, 7) that have a ``predicted`` box
    (K, 7) of their class within MATCH_REACH m (BEV centres), each paired with its nearest one."""
    hit, nearest = nearest_within(truth, predicted)
    if not hit.any():
        return np.zeros((0, len(ERROR_FIELDS)))
    return pair_errors(truth[hit], predicted[nearest[hit]])


def pair_errors(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(P, 8) error rows (ERROR_FIELDS) of labelled boxes ``truth`` (P, 7) and the ``predicted`` boxes (P, 7) they
    are paired with, row by row."""
    t, p = np.asarray(truth, np.float64), np.asarray(predicted, np.float64)
    yaw = _folded(p[:, 6] - t[:, 6])
    ray = _rays(t[:, :2])
    radial = ((p[:, :2] - t[:, :2]) * ray).sum(axis=1)
    label_yaw, label_size = p.copy(), p.copy()
    label_yaw[:, 6], label_size[:, 3:6] = t[:, 6], t[:, 3:6]
    ious = [np.asarray(iou_bev_aligned(t, q), np.float64).reshape(len(t)) if len(t) else np.zeros(0)
            for q in (p, label_yaw, label_size)]
    return np.column_stack([np.hypot(p[:, 0] - t[:, 0], p[:, 1] - t[:, 1]), radial, p[:, 2] - t[:, 2],
                            p[:, 3] - t[:, 3], p[:, 4] - t[:, 4], p[:, 5] - t[:, 5], np.degrees(yaw), *ious])


def false_boxes(info: FrameInfo, boxes: np.ndarray) -> np.ndarray:
    """(K,) bool: which predicted LiDAR-frame boxes (K, 7) are false (see the module docstring).

    Only boxes the camera sees are judged (KITTI labels nothing else); a box whose centre falls inside a
    DontCare region's 2D box is not false either (KITTI's metric ignores those too). Without a calibration
    (non-KITTI data), every box is judged.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    if len(boxes) == 0:
        return np.zeros(0, bool)
    a = info.annos
    judged = np.ones(len(boxes), bool)
    centre_px = None
    if info.calib is not None:
        size = None if info.image_shape is None else (int(info.image_shape[1]), int(info.image_shape[0]))
        bbox, valid = boxes_to_image_bbox(boxes, info.calib, **({} if size is None else {"image_size": size}))
        judged = valid & ((bbox[:, 3] - bbox[:, 1]) > 0)
        centre_px = np.column_stack([(bbox[:, 0] + bbox[:, 2]) / 2, (bbox[:, 1] + bbox[:, 3]) / 2])
    labelled = np.array([n != "DontCare" for n in a.names], bool)
    objects = a.boxes_lidar[labelled].astype(np.float64)
    near_any = np.zeros(len(boxes), bool)
    if len(objects):
        dist = np.hypot(boxes[:, None, 0] - objects[None, :, 0], boxes[:, None, 1] - objects[None, :, 1])
        reach = np.hypot(objects[:, 3], objects[:, 4]) / 2 + FALSE_BOX_REACH
        near_any = (dist <= reach[None, :]).any(axis=1)
    in_dontcare = np.zeros(len(boxes), bool)
    if centre_px is not None and a.bbox is not None:
        for box2d in a.bbox[~labelled]:
            in_dontcare |= ((centre_px[:, 0] >= box2d[0]) & (centre_px[:, 0] <= box2d[2])
                            & (centre_px[:, 1] >= box2d[1]) & (centre_px[:, 1] <= box2d[3]))
    return judged & ~near_any & ~in_dontcare


def camera_image_path(info: FrameInfo, root: str | Path) -> Path:
    """Where a KITTI frame's colour image lies: ``image_2/<frame>.png`` beside its ``velodyne`` folder."""
    return Path(root) / Path(info.lidar_path).parent.parent / "image_2" / f"{info.frame_id}.png"


def camera_view(info: FrameInfo, image: str | Path, out: str | Path, points: np.ndarray, boxes: np.ndarray,
                names: Sequence[str], scores: np.ndarray) -> Path:
    """Draw a KITTI frame's labels and a detector's LiDAR boxes (K, 7) on its camera ``image``, write ``out``: the
    false boxes (:func:`false_boxes`) thick and captioned with class, score, BEV distance and returns inside."""
    if info.calib is None:
        raise ValueError(f"frame {info.frame_id} has no calibration: its boxes cannot be drawn on the image")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    names = list(names)
    false = false_boxes(info, boxes)
    bbox, valid = boxes_to_image_bbox(boxes, info.calib, image_size=None if info.image_shape is None else
                                      (int(info.image_shape[1]), int(info.image_shape[0])))
    seen = valid & ((bbox[:, 3] - bbox[:, 1]) > 0)
    support = points_in_boxes(points[:, :3], boxes).sum(axis=0) if len(boxes) else np.zeros(0, np.int64)
    captions = [f"{n} {s:.2f} {np.hypot(b[0], b[1]):.0f} m {k} pts"
                for n, s, b, k in zip(names, scores, boxes, support)]
    a = info.annos
    keep = np.flatnonzero(seen)
    return draw_camera_boxes(image, out, list(a.names), a.bbox if a.bbox is not None else np.zeros((0, 4)),
                             [names[i] for i in keep], bbox[keep], false[keep], [captions[i] for i in keep])


def measure(name: str, infos: Sequence[FrameInfo], root: str | Path, detector=None, max_frames: int | None = None,
            progress: bool = True, images_dir: str | Path | None = None) -> SideStats:
    """The figures of one dataset split; with ``detector`` (an inference.Detector) also boxes per frame, and with
    ``images_dir`` too each frame that has a camera image drawn into it (:func:`camera_view`, ``<frame>.png``)."""
    stats = SideStats(name)
    rng = np.random.default_rng(0)
    chosen = list(infos)[: max_frames or None]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(chosen), desc=f"gap: {name}", unit="frame")
    for info in chosen:
        points = load_points(info, root)
        stats.add_frame(info, points, rng)
        if detector is not None:
            model_input, missing, _ = model_points(points, info.point_features, detector.point_features, scale=1.0)
            if missing:
                raise ValueError(f"{name}: the frames of {root} have no {', '.join(missing)} column, which the "
                                 f"detector reads (its features: {', '.join(detector.point_features)}); measure "
                                 "it on a dataset that has them")
            det = detector(model_input)
            stats.add_detections(info, det.boxes, det.names, detector.point_cloud_range, det.scores, model_input)
            image = camera_image_path(info, root)
            if images_dir is not None and image.is_file():
                camera_view(info, image, Path(images_dir) / f"{info.frame_id}.png", points, det.boxes, det.names,
                            det.scores)
                stats.images += 1
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return stats


def _thickness_cell(entry: dict | None) -> str:
    return "-" if not entry else f"{entry['median']:.3f} / {100 * entry['flat_share']:.0f}% (n={entry['count']})"


def format_report(sides: Sequence[dict]) -> str:
    """A plain-text table with one column per side."""
    rows: list[tuple[str, list[str]]] = []

    def row(label, fn):
        rows.append((label, [fn(s) for s in sides]))

    def num(v, fmt="{:.2f}"):
        return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)

    row("frames", lambda s: str(s["frames"]))
    row("points per frame", lambda s: num(s["points_per_frame"], "{:,.0f}"))
    row("ground z (m)", lambda s: num(s["ground_z"]))
    row(f"returns on the own vehicle (within {NEAR_SENSOR:g} m)", lambda s: num(s.get("returns_near_sensor"), "{:.0f}"))
    row("road from (m) ahead / behind", lambda s: "/".join(num(v) for v in s["road_from_ahead_behind"])
        if "road_from_ahead_behind" in s else "-")
    for lo, hi in STANDING_BANDS:
        band = f"{lo:g}-{hi:g}"
        row(f"returns {STANDING[0]:g}-{STANDING[1]:g} m above the road, {band} m", lambda s, b=band: num(
            s.get("standing_returns_by_range", {}).get(b), "{:,.0f}"))
    if all("intensity_percentiles" in s for s in sides):
        row("intensity p25 / p50 / p75", lambda s: " / ".join(num(s["intensity_percentiles"][q]) for q in
                                                                  ("25", "50", "75")))
        row("intensity = 0 share", lambda s: num(s["intensity_zero_share"]))
        for band in (f"{lo:g}-{hi:g}" for lo, hi in INTENSITY_BANDS):
            row(f"intensity median {band} m", lambda s, b=band: num(s["intensity_median_by_range"][b]))
    for c in CLASSES:
        row(f"{c} boxes", lambda s, c=c: str(s["sizes"].get(c, {}).get("count", 0)))
        row(f"{c} size l/w/h mean", lambda s, c=c: "/".join(num(v) for v in s["sizes"][c]["mean"])
            if c in s["sizes"] else "-")
        row(f"{c} size l/w/h std", lambda s, c=c: "/".join(num(v) for v in s["sizes"][c]["std"])
            if c in s["sizes"] else "-")
        for lo, hi in RANGE_BANDS:
            band = f"{lo:g}-{hi:g}"

            def cell(s, c=c, band=band):
                entry = s["points_per_visible_object"].get(c, {}).get(band)
                return ("-" if not entry or not entry["count"]
                        else f"{num(entry['median'], '{:.0f}')} (n={entry['count']})")

            row(f"{c} points, visible, {band} m", cell)
        row(f"{c} returns' depth from the box centre (m)", lambda s, c=c: num(s.get("return_depth", {}).get(c),
                                                                              "{:+.2f}"))
        row(f"{c} returns' intensity (median, {DEPTH_RANGE[0]:g}-{DEPTH_RANGE[1]:g} m)",
            lambda s, c=c: num(s.get("object_intensity", {}).get(c)))
        row(f"{c} returns reading 0, all / above {BELTLINE:g} of the height",
            lambda s, c=c: " / ".join(num(s.get("zero_intensity_share", {}).get(c, {}).get(k))
                                      for k in ("all", "upper_body")))
    row(f"Pedestrian chest ({CHEST_BAND[0]:g}-{CHEST_BAND[1]:g} m) across the ray, crossing / along it (m)",
        lambda s: " / ".join(num(s.get("pedestrian_chest_across_ray", {}).get(way, {}).get("median"))
                             for way in ("crossing", "along")))
    for c in PEOPLE:
        row(f"{c} returns' thickness (m, median) / share under {FLAT:g} m, labelled",
            lambda s, c=c: _thickness_cell(s.get("thickness", {}).get(c, {}).get("labelled")))
    row(f"Cyclist head and shoulders along the heading (m) / returns below {LOW_PART:g} m, seen from the side",
        lambda s: "-" if not s.get("cyclist_rider", {}).get("count") else
        f"{num(s['cyclist_rider']['upper_body_along'], '{:+.2f}')} / {num(s['cyclist_rider']['low_share'])} "
        f"(n={s['cyclist_rider']['count']})")

    def beside(s, c):
        entry = s.get("standing_beside", {}).get(c, {})
        return "-" if not entry.get("count") else f"{num(entry['median'], '{:.0f}')} (n={entry['count']})"

    row(f"Pedestrian / Cyclist: returns standing within {BESIDE_REACH:g} m, on no road user (median)",
        lambda s: " / ".join(beside(s, c) for c in PEOPLE))
    row(f"pedestrians with another within {COMPANY_REACH:g} m", lambda s: "-" if not np.isfinite(
        s.get("pedestrians_in_company", float("nan"))) else f"{100 * s['pedestrians_in_company']:.0f}%")
    if any("boxes_per_frame" in s for s in sides):
        row("detector boxes per frame", lambda s: num(s.get("boxes_per_frame")))
        row("false boxes per frame (camera view)", lambda s: num(s.get("false_boxes_per_frame")))
        for c in CLASSES:
            row(f"  of them {c}", lambda s, c=c: num(s.get("false_boxes_per_frame_by_class", {}).get(c)))
        bands = "/".join(f"{lo:g}-{hi:g}" for lo, hi in RANGE_BANDS)
        for c in CLASSES:
            row(f"  {c} by distance, {bands} m", lambda s, c=c: "/".join(
                num(v) for v in s["false_boxes_per_frame_by_range"][c].values())
                if c in s.get("false_boxes_per_frame_by_range", {}) else "-")
        for c in PEOPLE:
            row(f"{c} with {MIN_RETURNS}+ returns over the head, false boxes / labelled", lambda s, c=c: "/".join(
                "-" if v is None or not np.isfinite(v) else f"{100 * v:.0f}%"
                for v in (s["overhead_share"][c]["false"], s["overhead_share"][c]["labelled"]))
                if "overhead_share" in s else "-")
        for c in PEOPLE:
            row(f"{c} returns' thickness (m, median) / share under {FLAT:g} m, false boxes",
                lambda s, c=c: _thickness_cell(s.get("thickness", {}).get(c, {}).get("false")))
        for c in CLASSES:
            row(f"{c} median score, false / on a labelled object", lambda s, c=c: "/".join(
                num(s["median_score"][c][k]) for k in ("false", "matched")) if "median_score" in s else "-")
        def matched(s, c, subset=None):
            """A side's matched figures of class ``c`` (of its PEDESTRIAN_SUBSETS ``subset``), or None."""
            m = s.get("matched", {}).get(c)
            return m.get(subset) if m is not None and subset else m

        def if_any(cell):
            """``cell(m, ...)`` for matched figures ``m`` of at least one object, "-" for none."""
            return lambda m, *args, **kwargs: "-" if not m or not m["count"] else cell(m, *args, **kwargs)

        @if_any
        def errors(m, fields, fmt="{:+.2f}"):
            return "/".join(num(m["median_error"][f], fmt) for f in fields)

        def found(m):
            return "-" if m is None else f"{m['count']}/{m['in_range']}"

        @if_any
        def yaw_within(m):
            return f"{100 * m['yaw_within']:.0f}%"

        @if_any
        def iou(m):
            return f"{errors(m, ('bev_iou',), fmt='{:.2f}')} / {100 * m['bev_iou_passing']:.0f}%"

        @if_any
        def iou_fixed(m):
            return f"{100 * m['bev_iou_passing_label_yaw']:.0f}% / {100 * m['bev_iou_passing_label_size']:.0f}%"

        for c in CLASSES:
            row(f"{c} with a box within {MATCH_REACH:g} m", lambda s, c=c: found(matched(s, c)))
            row(f"{c} median centre error / along ray / dz (m)",
                lambda s, c=c: errors(matched(s, c), ("centre", "radial", "dz")))
            row(f"{c} median size error l/w/h (m)", lambda s, c=c: errors(matched(s, c), ("dl", "dw", "dh")))
            row(f"{c} median yaw error (deg)", lambda s, c=c: errors(matched(s, c), ("yaw_deg",), fmt="{:.1f}"))
            row(f"{c} yaw within {YAW_WITHIN_DEG:g} deg", lambda s, c=c: yaw_within(matched(s, c)))
            row(f"{c} BEV IoU, median / share >= {MIN_OVERLAP[c.lower()]:g}", lambda s, c=c: iou(matched(s, c)))
            row("  the share had the box the label's yaw / size", lambda s, c=c: iou_fixed(matched(s, c)))
        for subset, (named, _) in PEDESTRIAN_SUBSETS.items():
            row(f"Pedestrian {named} with a box within {MATCH_REACH:g} m",
                lambda s, k=subset: found(matched(s, "Pedestrian", k)))
            row(f"Pedestrian {named} median size error l/w/h (m)",
                lambda s, k=subset: errors(matched(s, "Pedestrian", k), ("dl", "dw", "dh")))
            row(f"Pedestrian {named} median yaw error (deg)",
                lambda s, k=subset: errors(matched(s, "Pedestrian", k), ("yaw_deg",), fmt="{:.1f}"))
            row(f"Pedestrian {named} BEV IoU, median / share >= {MIN_OVERLAP['pedestrian']:g}",
                lambda s, k=subset: iou(matched(s, "Pedestrian", k)))
            row("  the share had the box the label's yaw / size",
                lambda s, k=subset: iou_fixed(matched(s, "Pedestrian", k)))
    width = max(len(label) for label, _ in rows) + 2
    cols = [max(len(s["name"]), *(len(v[i]) for _, v in rows)) + 2 for i, s in enumerate(sides)]
    lines = ["".ljust(width) + "".join(s["name"].rjust(w) for s, w in zip(sides, cols))]
    lines += [label.ljust(width) + "".join(v.rjust(w) for v, w in zip(values, cols)) for label, values in rows]
    return "\n".join(lines)

