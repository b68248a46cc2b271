"""The recording vehicle's own body under a roof-mounted LiDAR.

A roof sensor sees its own vehicle. On the real KITTI sweeps the lowest beams of the HDL-64E return off the ego car's
roof edges, bonnet and boot in every frame: a few dozen weak returns (median 40 a frame, intensity 0) 1.46-2.7 m from
the sensor and 0.5-0.9 m below it; and the car hides the road up to 4.1 m ahead and 5.5 m behind the sensor, where the
lowest beam alone would meet it at 3.75 m (``sparsekd-gap`` reports both, "returns within 3 m of the sensor" and "road
from ahead / behind", for real and simulated sides). A model trained on streets without
them reads that small cluster at the sensor's feet as a car, and so puts a confident car box on its own vehicle in
every real frame. The simulator therefore puts a vehicle under the sensor: its returns are world points (nobody labels
the ego vehicle) and it hides what lies under and beside it, as a real car does.

Each scene draws one ego vehicle (body type, length and width from the scene's label style, how often it returns a
pulse, where the sensor sits along the roof and how high the mount lifts it above the roof). A frame whose mount
leaves less than MIN_ROOF_HEIGHT for the roof has no body: every sensor mounted below 1.4 m (a bumper sensor, a
small robot: ``random_mount`` draws heights from 0.5 m for the sensors that look up enough to sit there), and the
scenes whose lift puts a 1.73 m HDL-64E's roof below 1.1 m (about one in six; KITTI's car is in every frame, so models
also see sweeps without a body under the sensor).

A real recording car is not a bare body either: wing mirrors, roof-rack feet and bars, GNSS antennas, camera housings
and trim stick out of it, and these solid parts send back compact clusters of returns at the same spots in every sweep
(KITTI's own car gives clusters of a dozen returns 1.4-1.8 m from the sensor, 1.0-1.2 m above the road). A diffuse
sprinkle of returns off glossy paint does not teach a model that such a fixed cluster is no road user, so each scene
also draws a rig of small solid fixtures (:class:`Rig`): placed broadly at random over the vehicle's edges and roof,
mirrored left and right as most vehicles are, each returning a good share of the pulses that meet it, weakly.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sparsekd_core.data.sim.actors import vehicle_mesh
from sparsekd_core.data.sim.meshes import Mesh, MeshBuilder, pose_meshes
from sparsekd_core.data.sim.sizes import SizeSampler

#: Vehicle types that carry a roof LiDAR (research cars and robotaxis; a van's long flat roof just under the sensor
#: would hide the road for 10 m ahead, which no dataset's sweeps show).
EGO_TYPES = ("hatchback", "sedan", "suv")
#: Lowest roof of an ego vehicle (m above the road); the roof sits the mount's lift below the sensor.
MIN_ROOF_HEIGHT = 1.1
#: How far the mount lifts the sensor's origin above the roof (m).
MOUNT_LIFT_RANGE = (0.3, 0.7)
#: Chance that a ray meeting the body sends a return, and the body's reflectivity: glossy paint seen at the grazing
#: angles a roof sensor sees its own vehicle at mirrors most of the pulse away, and what comes back is weak (KITTI's
#: sweeps hold a few dozen returns off the ego car, not hundreds, and every one reads intensity 0).
RETURN_CHANCE_RANGE = (0.005, 0.03)
BODY_REFLECTIVITY = 0.03
#: Where the sensor sits along the vehicle: its offset ahead of the body's centre, as a share of the length.
SENSOR_ALONG_RANGE = (-0.05, 0.15)

#: How many fixtures (or mirrored pairs of fixtures) a rig has; a scene's vehicle has none with RIG_ABSENT_CHANCE.
RIG_FIXTURES_RANGE = (1, 3)
RIG_ABSENT_CHANCE = 0.15
#: Chance that a fixture has a twin mirrored across the vehicle's centre line.
RIG_MIRROR_CHANCE = 0.7
#: A fixture on the vehicle's edge (mirror, rack foot, trim, light): how far its centre lies from the body's side
#: (negative: inboard) and from the roof (negative: below it), m; its size range (length, width, height), m.
EDGE_OUT_RANGE = (-0.15, 0.3)
EDGE_HEIGHT_RANGE = (-0.45, 0.15)
EDGE_SIZE_RANGE = ((0.04, 0.18), (0.03, 0.12), (0.04, 0.2))
#: A fixture on the roof (antenna, GNSS puck, camera housing, rack bar end): how far ahead of / behind the sensor,
#: m, and its size range; it stands on the roof.
TOP_ALONG_RANGE = (-1.6, 1.6)
TOP_SIZE_RANGE = ((0.04, 0.18), (0.04, 0.18), (0.03, 0.15))
#: Share of the edge fixtures among all (the rest stand on the roof).
EDGE_SHARE = 0.6
#: Fixtures nearer the sensor than this (horizontally, m) sit in the blind cone under it; none is placed there.
RIG_MIN_DISTANCE = 1.2
#: A fixture's chance of returning a pulse (solid plastic and metal at close range) and its reflectivity.
RIG_RETURN_CHANCE_RANGE = (0.01, 0.08)
RIG_REFLECTIVITY_RANGE = (0.0, BODY_REFLECTIVITY)


@dataclass(frozen=True)
class Rig:
    """Small solid fixtures on the ego vehicle, in the sensor's frame: x ahead of the sensor, y to its left, z above
    the roof (the mesh is posed at the sensor's x, y and the roof's height)."""

    mesh: Mesh
    centres: np.ndarray  # (F, 3) every fixture's centre, twins included

    @staticmethod
    def sample(rng: np.random.Generator, size: np.ndarray, sensor_ahead: float) -> "Rig":
        """A rig for a vehicle of ``size`` (length, width, height) whose sensor sits ``sensor_ahead`` metres ahead
        of the body's centre."""
        builder, centres = MeshBuilder(), []
        count = 0 if rng.random() < RIG_ABSENT_CHANCE else int(rng.integers(RIG_FIXTURES_RANGE[0],
                                                                             RIG_FIXTURES_RANGE[1] + 1))
        half_length, half_width = size[0] / 2, size[1] / 2
        for _ in range(count):
            for _attempt in range(20):  # rejection: a fixture the sensor's blind cone hides teaches nothing
                if rng.random() < EDGE_SHARE:
                    centre = np.array([rng.uniform(-half_length, half_length) - sensor_ahead,
                                       half_width + rng.uniform(*EDGE_OUT_RANGE), rng.uniform(*EDGE_HEIGHT_RANGE)])
                    dims = np.array([rng.uniform(*r) for r in EDGE_SIZE_RANGE])
                else:
                    dims = np.array([rng.uniform(*r) for r in TOP_SIZE_RANGE])
                    along = (max(TOP_ALONG_RANGE[0], -half_length - sensor_ahead),
                             min(TOP_ALONG_RANGE[1], half_length - sensor_ahead))  # and over the body
                    centre = np.array([rng.uniform(*along), rng.uniform(0.0, half_width - dims[1] / 2), dims[2] / 2])
                if np.hypot(centre[0], centre[1]) >= RIG_MIN_DISTANCE:
                    break
            else:
                continue
            side = 1.0 if rng.random() < 0.5 else -1.0
            twins = (side, -side) if rng.random() < RIG_MIRROR_CHANCE else (side,)
            reflectivity = float(rng.uniform(*RIG_REFLECTIVITY_RANGE))
            returns = float(rng.uniform(*RIG_RETURN_CHANCE_RANGE))
            for s in twins:
                at = centre * np.array([1.0, s, 1.0])
                builder.box(tuple(at), tuple(dims), reflectivity, returns=returns)
                centres.append(at)
        return Rig(builder.build(), np.asarray(centres, np.float64).reshape(-1, 3))


@dataclass(frozen=True)
class EgoBody:
    """One scene's ego vehicle: a local-frame mesh of ``size`` (length, width, nominal height), the sensor
    ``sensor_ahead`` metres ahead of the body's centre and ``lift`` metres above its roof; its surfaces return a ray
    with chance ``returns`` (RETURN_CHANCE_RANGE), weakly (BODY_REFLECTIVITY); ``rig`` its fixtures."""

    kind: str
    size: np.ndarray
    mesh: Mesh
    sensor_ahead: float
    lift: float
    rig: Rig

    @staticmethod
    def sample(rng: np.random.Generator, sizes: SizeSampler) -> "EgoBody":
        kind = EGO_TYPES[int(rng.integers(len(EGO_TYPES)))]
        size = np.asarray(sizes(kind), np.float64)
        mesh = vehicle_mesh(kind, size, rng)
        mesh = replace(mesh, reflectivity=np.full_like(mesh.reflectivity, BODY_REFLECTIVITY),
                       returns=mesh.returns * np.float32(rng.uniform(*RETURN_CHANCE_RANGE)))
        sensor_ahead = float(rng.uniform(*SENSOR_ALONG_RANGE) * size[0])
        return EgoBody(kind, size, mesh, sensor_ahead=sensor_ahead, lift=float(rng.uniform(*MOUNT_LIFT_RANGE)),
                       rig=Rig.sample(rng, size, sensor_ahead))

    def roof_height(self, mount_height: float) -> float | None:
        """Height of the roof under a sensor mounted ``mount_height`` above the road; None when no vehicle fits
        under it (the sensor is mounted lower than a car's roof plus the mount)."""
        roof = mount_height - self.lift
        return roof if roof >= MIN_ROOF_HEIGHT else None

    def world_mesh(self, sensor_xy: np.ndarray, ground_z: float, yaw: float, mount_height: float) -> Mesh | None:
        """The body and its rig in world coordinates under a sensor at ``sensor_xy`` (2,), ``mount_height`` above
        a road at ``ground_z``, the vehicle heading ``yaw``; None when no vehicle fits under the sensor."""
        roof = self.roof_height(mount_height)
        if roof is None:
            return None
        length, width, height = float(self.size[0]), float(self.size[1]), float(self.size[2])
        mesh = self.mesh.with_vertices(self.mesh.vertices * np.array([1.0, 1.0, roof / height], np.float32))
        centre = np.asarray(sensor_xy, np.float64) - self.sensor_ahead * np.array([np.cos(yaw), np.sin(yaw)])
        boxes = np.array([[centre[0], centre[1], ground_z + roof / 2, length, width, roof, yaw],
                          [sensor_xy[0], sensor_xy[1], ground_z + roof, 0.0, 0.0, 0.0, yaw]])
        return pose_meshes([mesh, self.rig.mesh], boxes)[0]
