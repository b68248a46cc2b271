"""Spinning LiDAR presets, how a sensor is mounted, and the scan: rays cast with a ray caster (raycast.py: open3d or
torch), then the sensor's physics (range limits, return probability, range noise, intensity, elongation).

Presets follow the real sensors' published geometry (beam elevations, columns per revolution at 10 Hz, range):
- ``hdl64``: Velodyne HDL-64E as on KITTI's car: 64 beams from +2.0 to -24.8 deg (upper block of 32 at ~1/3 deg
  down to -8.33 deg, lower block of 32 at ~1/2 deg), 0.17 deg azimuth steps, 120 m, 1.73 m above the road.
- ``hdl32``: Velodyne HDL-32E (nuScenes): 32 beams from +10.67 to -30.67 deg (4/3 deg apart), 0.16 deg, 100 m.
- ``vlp16``: Velodyne VLP-16 (Puck), common on small robots: 16 beams from +15 to -15 deg (2 deg), 0.2 deg, 100 m.
- ``os1_64`` / ``os1_128``: Ouster OS1 (rev 6), 64 / 128 beams evenly over +-22.5 deg, 1024 columns, 120 m.
- ``waymo_top``: Waymo's top LiDAR: 64 beams from +2.4 to -17.6 deg, denser near the horizon, 2650 columns, 75 m,
  mounted about 2.2 m up. Its points are written in the vehicle frame (origin on the ground below the sensor), as
  Waymo's are; an elongation column is filled.
Every other preset writes points in its sensor frame (origin at the sensor), as KITTI's velodyne files are.

Mounting (:class:`Mounting`): the height of the sensor above the road and its tilt (roll, pitch). The scan is
cast from where the sensor really is; its points are then written in the dataset's frame (level, at the sensor's
x, y, at the main preset's nominal height or ``--frame-height``), which is what the detector node's
``sensor_to_model`` transform does on a robot. So a VLP-16
mounted 0.6 m up and tilted 2 degrees still gives points whose road lies at z = -1.73 when written for a KITTI
model: only the view (occlusion, beam spacing, what is seen) changes, not the frame.

Materials carry a reflectivity on KITTI's intensity scale and a chance of returning at all (glass rarely does).
A return is kept with a probability that falls with range, darkness and grazing incidence (the received power
against the detector's threshold) times a random dropout; range noise is Gaussian, clipped at 3 sigma. Intensity
follows KITTI's HDL-64E: about the material's reflectivity, a little lower at grazing incidence, and 0 for weak
returns (dark paint, far ground), as half of real KITTI car points and most points beyond 40 m read 0. A glossy
surface (Mesh.gloss: a car's clear coat) sends its mirror-like share back only near normal incidence
(GLOSS_EXPONENT), which both the chance of a return and its intensity follow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparsekd_core.data.sim.edge_returns import mix_edge_returns
from sparsekd_core.data.sim.meshes import Mesh
from sparsekd_core.data.sim.raycast import RayCaster, RayCasterChoice


#: Intensity below which a return reads 0 (dark paint, tyres, dark clothes), on KITTI's scale.
DARK_INTENSITY = 0.05
#: The mirror-like share of a surface's reflectance (Mesh.gloss: a car's clear coat) comes back as the cosine of the
#: incidence to this power: set by comparing simulated and real KITTI car returns' intensity against how squarely
#: the box face they lie on faces the sensor (the nine sweeps of ../shared, below the beltline: a median 0.41 within
#: 18 degrees of head-on, 0.33 at 18-32, 0.20 at 32-45; docs/results.md "Car paint that glints").
GLOSS_EXPONENT = 6.0


@dataclass(frozen=True)
class SensorPreset:
    """A spinning LiDAR. Angles in degrees, lengths in metres.

    elevations: (B,) beam elevations, top beam first. columns: firings per revolution.
    frame_z_offset: z of the sensor origin in the frame points are written in (0: the sensor frame;
    mount_height: a vehicle frame whose origin is on the ground below the sensor).
    mount_heights: the (low, high) heights above the road a random mounting draws from (scene.sample_mounting).
    """

    name: str
    elevations: tuple[float, ...]
    columns: int
    max_range: float
    min_range: float
    mount_height: float
    frame_z_offset: float
    range_noise: float
    dropout: float
    rate_hz: float = 10.0
    mount_heights: tuple[float, float] = (0.5, 2.3)
    detection_threshold: float = 0.04
    #: Received power below which a return's intensity reads 0 (weak returns; see the module docstring).
    zero_intensity_power: float = 1.0

    @property
    def num_beams(self) -> int:
        return len(self.elevations)

    @property
    def azimuth_resolution(self) -> float:
        return 360.0 / self.columns

    @property
    def num_rays(self) -> int:
        return self.num_beams * self.columns

    @property
    def nominal_frame_height(self) -> float:
        """Height above the road of the frame this preset's points are written in by default (hdl64: 1.73 m,
        its sensor frame; waymo_top: 0, the vehicle frame)."""
        return self.mount_height - self.frame_z_offset


def _hdl64_elevations() -> tuple[float, ...]:
    upper = np.linspace(2.0, -8.33, 32)
    lower = np.linspace(-8.83, -24.8, 32)
    return tuple(np.concatenate([upper, lower]).round(4))


def _waymo_elevations() -> tuple[float, ...]:
    u = np.linspace(0.0, 1.0, 64)
    return tuple((2.4 - 20.0 * u ** 1.35).round(4))  # +2.4 .. -17.6, finer spacing near the horizon


def _even(top: float, bottom: float, beams: int) -> tuple[float, ...]:
    return tuple(np.linspace(top, bottom, beams).round(4))


#: Where a sensor whose top beam looks barely above the horizon (HDL-64E +2 deg, Waymo's top LiDAR +2.4 deg) can be
#: mounted: on a vehicle's roof, as it is built for. Lower, it would not see a person's head beyond a few metres (from
#: 1.0 m up its top beam passes 1.35 m at 10 m), and every person in its scan would read as a 1 m stump under a 1.75 m
#: label: with such mountings drawn from 0.5 m, 42% of the labelled cyclists within 15 m of a simulated HDL-64E had
#: no return in the top 0.3 m of their box (none with the nominal 1.73 m, nor any of the real KITTI sweeps' people),
#: which can teach a detector that knee-high posts and signs are cyclists (docs/results.md "Heads a roof sensor
#: sees"). From 1.5 m its top beam meets a 1.7 m head from 6 m on.
ROOF_MOUNT_HEIGHTS = (1.5, 2.3)

PRESETS: dict[str, SensorPreset] = {
    "hdl64": SensorPreset("hdl64", _hdl64_elevations(), columns=2118, max_range=120.0, min_range=1.45,
                          mount_height=1.73, frame_z_offset=0.0, range_noise=0.015, dropout=0.02,
                          mount_heights=ROOF_MOUNT_HEIGHTS),
    "hdl32": SensorPreset("hdl32", _even(10.67, -30.67, 32), columns=2250, max_range=100.0, min_range=1.0,
                          mount_height=1.84, frame_z_offset=0.0, range_noise=0.02, dropout=0.02),
    "vlp16": SensorPreset("vlp16", _even(15.0, -15.0, 16), columns=1800, max_range=100.0, min_range=0.5,
                          mount_height=0.7, frame_z_offset=0.0, range_noise=0.02, dropout=0.02),
    "os1_64": SensorPreset("os1_64", _even(22.5, -22.5, 64), columns=1024, max_range=120.0, min_range=0.5,
                           mount_height=1.2, frame_z_offset=0.0, range_noise=0.02, dropout=0.015),
    "os1_128": SensorPreset("os1_128", _even(22.5, -22.5, 128), columns=1024, max_range=120.0, min_range=0.5,
                            mount_height=1.2, frame_z_offset=0.0, range_noise=0.02, dropout=0.015),
    "waymo_top": SensorPreset("waymo_top", _waymo_elevations(), columns=2650, max_range=75.0, min_range=2.0,
                              mount_height=2.18, frame_z_offset=2.18, range_noise=0.015, dropout=0.01,
                              mount_heights=ROOF_MOUNT_HEIGHTS),
}


@dataclass(frozen=True)
class Mounting:
    """Where the sensor sits on the ego vehicle: height of its origin above the road (m), roll and pitch
    (radians, about its x and y axes; pitch > 0 looks down at the front)."""

    height: float
    roll: float = 0.0
    pitch: float = 0.0

    def rotation(self) -> np.ndarray:
        """(3, 3) sensor -> level frame (the ego's heading, z up)."""
        cr, sr, cp, sp = np.cos(self.roll), np.sin(self.roll), np.cos(self.pitch), np.sin(self.pitch)
        rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
        ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        return ry @ rx

    @property
    def level(self) -> bool:
        return self.roll == 0.0 and self.pitch == 0.0


def get_preset(name: str) -> SensorPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown sensor preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass
class Scan:
    """One revolution, already in the output frame.

    points: (N, 5) float32 x y z intensity elongation. ring: (N,) uint8 beam index (0 = top beam).
    actor: (N,) int32 index of the actor hit (into the ``actors`` passed to the scan), -1 for the world.
    expected: (A,) rays that would hit each actor if nothing were in front of it (within range).
    visible: (A,) rays whose first hit is the actor (before dropout); points per actor = bincount(actor).
    """

    points: np.ndarray
    ring: np.ndarray
    actor: np.ndarray
    expected: np.ndarray
    visible: np.ndarray


class Lidar:
    """Casts a preset's rays into a static scene plus this frame's actors (with ``caster``'s backend)."""

    def __init__(self, preset: SensorPreset, caster: RayCasterChoice = RayCasterChoice()):
        self.preset = preset
        self.caster = caster
        el = np.deg2rad(np.asarray(preset.elevations, np.float64))
        self._cos_el, self._sin_el = np.cos(el), np.sin(el)
        self._base_az = np.arange(preset.columns) * (2 * np.pi / preset.columns)

    def local_directions(self, azimuth_offset: float) -> tuple[np.ndarray, np.ndarray]:
        """(R, 3) unit ray directions in the sensor frame, column-major (all beams of a firing together),
        and (R,) beam index of each ray."""
        az = self._base_az + azimuth_offset
        ca, sa = np.cos(az), np.sin(az)
        d = np.empty((len(az), len(self._cos_el), 3), np.float32)
        d[..., 0] = ca[:, None] * self._cos_el[None]
        d[..., 1] = sa[:, None] * self._cos_el[None]
        d[..., 2] = self._sin_el[None]
        ring = np.broadcast_to(np.arange(len(self._cos_el), dtype=np.uint8), (len(az), len(self._cos_el)))
        return d.reshape(-1, 3), ring.reshape(-1)

    def scan(self, static_caster: RayCaster, static_mesh: Mesh, actor_mesh: Mesh, actor_owner: np.ndarray,
             actor_boxes: np.ndarray, sensor_position: np.ndarray, sensor_yaw: float,
             rng: np.random.Generator, mounting: Mounting | None = None, frame_height: float | None = None,
             reach_boxes: np.ndarray | None = None, body_mesh: Mesh | None = None,
             edge_returns: float = 0.0) -> Scan:
        """Cast one revolution from ``sensor_position`` (world, (3,)) turned by ``sensor_yaw``.

        static_caster: the world's ray caster; static_mesh: its Mesh (materials per triangle).
        actor_mesh: all actors of the frame in world coordinates; actor_owner: (T_a,) actor index of each
        of its triangles; actor_boxes: (A, 7) world boxes of the actors (their meshes lie inside them, but for
        parts that stick out, which ``reach_boxes`` (A, 7), when given, enclose).
        mounting: the sensor's height and tilt (default: the preset's height, level); sensor_position is where
        the sensor is. frame_height: height above the road of the origin of the frame the points are written
        in (level, at the sensor's x, y; default: the preset's nominal_frame_height).
        body_mesh: the ego vehicle's own body under the sensor (world coordinates; ego_body.py): its returns are world
        points (actor -1) and it hides what lies behind it.
        edge_returns: the share of the rays on a silhouette's edge whose return lies between the object and what is
        behind it (edge_returns.py; 0: ideal rays, as the version-4 streets).
        Hits beyond the sensor's range are not needed exactly (they give no point), so the casts may skip them.
        """
        p = self.preset
        mounting = mounting or Mounting(p.mount_height)
        frame_height = p.nominal_frame_height if frame_height is None else frame_height
        num_actors = len(actor_boxes)
        actor_boxes = np.asarray(actor_boxes, np.float64).reshape(-1, 7)
        offset = float(rng.uniform(0, 2 * np.pi / p.columns))  # where this revolution's first firing points
        local, ring = self.local_directions(offset)
        tilt = mounting.rotation().astype(np.float32)
        level = local if mounting.level else local @ tilt.T  # sensor -> level frame
        c, s = np.float32(np.cos(sensor_yaw)), np.float32(np.sin(sensor_yaw))
        rays = np.empty((len(local), 6), np.float32)
        rays[:, :3] = np.asarray(sensor_position, np.float32)
        rays[:, 3] = c * level[:, 0] - s * level[:, 1]
        rays[:, 4] = s * level[:, 0] + c * level[:, 1]
        rays[:, 5] = level[:, 2]

        hit_s = static_caster.cast_rays(rays, max_distance=p.max_range)
        t_s = hit_s.t_hit
        d = rays[:, 3:]
        n = hit_s.primitive_normals
        cos_inc = np.abs(n[:, 0] * d[:, 0] + n[:, 1] * d[:, 1] + n[:, 2] * d[:, 2])
        prim = np.minimum(hit_s.primitive_ids, static_mesh.num_triangles - 1)
        refl = static_mesh.reflectivity[prim]
        returns = static_mesh.returns[prim]
        gloss = static_mesh.gloss[prim]
        actor = np.full(len(t_s), -1, np.int32)
        t = t_s.copy()

        def take_nearer(rows: np.ndarray, hit, mesh: Mesh, owner: np.ndarray | None) -> None:
            """Where ``hit`` (a cast of ``rays[rows]`` into ``mesh``) is nearer than what the ray met so far, the
            ray returns off ``mesh`` instead, as the actor ``owner`` gives for each of its triangles (None: world
            geometry, actor -1)."""
            closer = np.flatnonzero(hit.t_hit < t[rows])
            w, prim = rows[closer], hit.primitive_ids[closer]
            t[w] = hit.t_hit[closer]
            refl[w] = mesh.reflectivity[prim]
            returns[w] = mesh.returns[prim]
            gloss[w] = mesh.gloss[prim]
            actor[w] = -1 if owner is None else owner[prim]
            normal, dw = hit.primitive_normals[closer], d[w]
            cos_inc[w] = np.abs(normal[:, 0] * dw[:, 0] + normal[:, 1] * dw[:, 1] + normal[:, 2] * dw[:, 2])

        frames = _BoxFrames(actor_boxes)
        expected = np.zeros(num_actors, np.int64)
        if actor_mesh.num_triangles:
            dyn = self.caster.build(actor_mesh.vertices, actor_mesh.triangles)
            reach = frames if reach_boxes is None else _BoxFrames(reach_boxes)
            if mounting.level:
                # Only rays whose direction falls within some actor's angular extent can hit an actor.
                coverage = self._coverage(reach, np.asarray(sensor_position, np.float64), sensor_yaw, offset)
            else:  # a tilted sensor's beams leave the level beam table: cast every ray
                coverage = np.full(len(rays), 2, np.uint8)
            cand = np.flatnonzero(coverage)
            hit_d = dyn.cast_rays(rays[cand], max_distance=p.max_range)
            t_c = hit_d.t_hit
            prim_c = hit_d.primitive_ids
            expected = self._expected_hits(dyn, rays[cand], t_c, prim_c, coverage[cand], actor_owner, reach)
            take_nearer(cand, hit_d, actor_mesh, actor_owner)
        if body_mesh is not None and body_mesh.num_triangles:
            down = np.flatnonzero(rays[:, 5] < 0)  # the body lies below the sensor
            hit_b = self.caster.build(body_mesh.vertices, body_mesh.triangles).cast_rays(rays[down],
                                                                                        max_distance=p.max_range)
            take_nearer(down, hit_b, body_mesh, None)  # world points: nobody labels the ego vehicle
        valid = (t >= p.min_range) & (t <= p.max_range)
        visible = np.bincount(actor[valid & (actor >= 0)], minlength=num_actors)[:num_actors]
        if edge_returns > 0:  # after `visible`: what is labelled seen stays what the geometry sees
            t, mixed = mix_edge_returns(t, valid, p.num_beams, edge_returns, rng)
            actor = np.where(mixed, -1, actor)  # a mixed return is neither the object nor what lies behind it

        glossy = np.flatnonzero(gloss > 0)  # their mirror-like share comes back only near normal incidence
        refl[glossy] *= 1.0 - gloss[glossy] * (1.0 - cos_inc[glossy] ** np.float32(GLOSS_EXPONENT))
        # Return probability: received power ~ reflectivity x incidence / range^2 against a threshold, times
        # the surface's own chance of sending the pulse back (glass) and a random dropout.
        with np.errstate(over="ignore", invalid="ignore"):
            power = refl * (0.2 + 0.8 * cos_inc) / np.maximum(t / p.max_range, 1e-3) ** 2
            keep_prob = returns * (1.0 - p.dropout) / (1.0 + np.exp(-(power - p.detection_threshold) / 0.01))
        idx = np.flatnonzero(valid & (rng.random(len(t), dtype=np.float32) < keep_prob))
        t, refl, cos_inc, actor, local_hit = t[idx], refl[idx], cos_inc[idx], actor[idx], local[idx]
        power = power[idx]

        sigma = p.range_noise
        t_noisy = t + np.clip(rng.standard_normal(len(t), dtype=np.float32) * sigma, -3 * sigma, 3 * sigma)
        if num_actors:
            self._keep_inside(actor, t, t_noisy, rays[idx, 3:], np.asarray(sensor_position, np.float64), frames)

        n = len(t)
        points = np.empty((n, 5), np.float32)
        xyz = local_hit * t_noisy[:, None]
        points[:, :3] = xyz if mounting.level else xyz @ tilt.T
        points[:, 2] += mounting.height - frame_height
        intensity = refl * (0.8 + 0.2 * cos_inc) * (1.0 + 0.15 * rng.standard_normal(n, dtype=np.float32))
        # KITTI's HDL-64E reports intensity in steps of 0.01 and reads 0, not a small value, for weak returns
        # (far, grazing) and dark surfaces (below about 0.05): 11% of a real KITTI sweep is exactly 0, and
        # almost nothing lies between 0 and 0.03.
        weak = (power < p.zero_intensity_power) | (intensity < DARK_INTENSITY)
        points[:, 3] = np.round(np.where(weak, 0.0, np.clip(intensity, 0.0, 1.0)), 2)
        points[:, 4] = np.clip(0.03 + 0.6 * (1.0 - cos_inc) ** 3
                               + 0.02 * np.abs(rng.standard_normal(n, dtype=np.float32)), 0.0, 1.5)
        return Scan(points, ring[idx], actor, expected, visible)

    def _coverage(self, frames: "_BoxFrames", sensor: np.ndarray, yaw: float, offset: float) -> np.ndarray:
        """(R,) uint8: how many actors' angular extents each ray lies in. Each box covers an interval of
        azimuth columns and of beams seen from the sensor; rays outside all of them cannot hit an actor,
        and only rays inside two or more can meet one actor behind another."""
        p = self.preset
        cols, beams = p.columns, p.num_beams
        grid = np.zeros((cols, beams), dtype=np.uint16)
        if frames.count == 0:
            return grid.ravel().astype(np.uint8)
        corners = frames.corners() - sensor  # (A, 8, 3) world offsets from the sensor
        c, s = np.cos(yaw), np.sin(yaw)
        x = c * corners[..., 0] + s * corners[..., 1]
        y = -s * corners[..., 0] + c * corners[..., 1]
        dist = np.hypot(x, y)
        az = np.arctan2(y, x)
        centre = np.arctan2(y.mean(1), x.mean(1))
        dev = (az - centre[:, None] + np.pi) % (2 * np.pi) - np.pi
        res = 2 * np.pi / cols
        lo = np.floor((centre + dev.min(1) - offset) / res).astype(np.int64) - 1
        hi = np.ceil((centre + dev.max(1) - offset) / res).astype(np.int64) + 2
        # Elevation extremes: the top and bottom faces seen at the nearest and farthest horizontal
        # distance of the box's footprint (the nearest point is often mid-side, not a corner).
        rel = sensor - frames.centre
        lx = rel[:, 0] * frames.cos + rel[:, 1] * frames.sin
        ly = -rel[:, 0] * frames.sin + rel[:, 1] * frames.cos
        near = np.maximum(np.hypot(np.maximum(np.abs(lx) - frames.half[:, 0], 0.0),
                                   np.maximum(np.abs(ly) - frames.half[:, 1], 0.0)), 1e-3)
        far = dist.max(axis=1)
        top = frames.centre[:, 2] + frames.half[:, 2] - sensor[2]
        bottom = frames.centre[:, 2] - frames.half[:, 2] - sensor[2]
        el_max = np.arctan2(top, np.where(top > 0, near, far))
        el_min = np.arctan2(bottom, np.where(bottom < 0, near, far))
        el = np.stack([el_min, el_max], axis=1)
        pad = np.deg2rad(0.6)
        elevations = np.deg2rad(np.asarray(p.elevations))  # decreasing with the beam index
        b_lo = np.searchsorted(-elevations, -(el.max(1) + pad))
        b_hi = np.searchsorted(-elevations, -(el.min(1) - pad), side="right")
        # A sensor inside (or nearly inside) a box's footprint sees it all around.
        around = np.hypot(x.mean(1), y.mean(1)) <= 0.5 * np.hypot(frames.half[:, 0], frames.half[:, 1]) * 2 + 0.5
        for a in range(frames.count):
            if b_hi[a] <= b_lo[a]:
                continue
            if around[a] or hi[a] - lo[a] >= cols:
                grid[:, b_lo[a]:b_hi[a]] += 1
                continue
            c0, c1 = lo[a] % cols, hi[a] % cols
            if c0 < c1:
                grid[c0:c1, b_lo[a]:b_hi[a]] += 1
            else:
                grid[c0:, b_lo[a]:b_hi[a]] += 1
                grid[:c1, b_lo[a]:b_hi[a]] += 1
        return np.minimum(grid, 2).astype(np.uint8).ravel()

    @staticmethod
    def _keep_inside(actor: np.ndarray, t: np.ndarray, t_noisy: np.ndarray, directions: np.ndarray,
                     sensor: np.ndarray, frames: "_BoxFrames") -> None:
        """An actor's return must stay inside its labelled box (the box is the truth the labels claim):
        the rare noisy return that would leave it keeps its noise-free range instead (in place)."""
        hit = np.flatnonzero(actor >= 0)
        if len(hit) == 0:
            return
        a = actor[hit]
        tol = 0.002  # stay clear of the faces so float32 output coordinates are inside too
        # Box-frame coordinates of sensor + t * d: the sensor's position in each box frame plus the
        # direction turned into that frame, scaled by the range.
        rel = sensor - frames.centre
        ox = (rel[:, 0] * frames.cos + rel[:, 1] * frames.sin)[a]
        oy = (-rel[:, 0] * frames.sin + rel[:, 1] * frames.cos)[a]
        oz = rel[a, 2]
        c, s = frames.cos[a], frames.sin[a]
        dx, dy, dz = (directions[hit, k].astype(np.float64) for k in range(3))
        tn = t_noisy[hit].astype(np.float64)
        half = frames.half[a] - tol
        inside = ((np.abs(ox + tn * (dx * c + dy * s)) <= half[:, 0])
                  & (np.abs(oy + tn * (-dx * s + dy * c)) <= half[:, 1])
                  & (np.abs(oz + tn * dz) <= half[:, 2]))
        out = hit[~inside]
        t_noisy[out] = t[out]

    def _expected_hits(self, dyn: RayCaster, rays: np.ndarray, t_d: np.ndarray, prim_d: np.ndarray,
                       coverage: np.ndarray, owner: np.ndarray, frames: "_BoxFrames", layers: int = 3) -> np.ndarray:
        """(A,) rays that meet each actor within range, whatever stands in front of it.

        rays, t_d, prim_d, coverage: the rays cast against the actors and their first hits.
        Depth peeling: a ray that hits actor a is continued from where it leaves a's box, up to
        ``layers`` actors deep, if it lies in another actor's angular extent (``coverage`` >= 2).
        Meshes lie inside their boxes and boxes do not overlap, so the next hit is always another
        actor (hand-written: open3d's list_intersections does the same but costs several times
        more on these machines, and the torch caster has no such call).
        """
        num = frames.count
        hit = np.flatnonzero(t_d <= self.preset.max_range)
        counts = np.bincount(owner[prim_d[hit]], minlength=num)[:num].astype(np.int64)
        sel = hit[coverage[hit] >= 2]
        origin, direction = rays[sel, :3].astype(np.float64), rays[sel, 3:].astype(np.float64)
        travelled = np.zeros(len(sel))
        who = owner[prim_d[sel]]
        for layer in range(1, layers):
            if len(who) == 0:
                break
            exit_t = frames.exit_distance(origin, direction, who) + 1e-3
            origin = origin + direction * exit_t[:, None]
            travelled = travelled + exit_t
            nxt = dyn.cast_rays(np.hstack([origin, direction]).astype(np.float32))
            t_next = nxt.t_hit
            ok = np.flatnonzero(travelled + t_next <= self.preset.max_range)
            origin, direction, travelled = origin[ok], direction[ok], travelled[ok]
            who = owner[nxt.primitive_ids[ok]]
            counts += np.bincount(who, minlength=num)[:num]
        return counts


class _BoxFrames:
    """Per-box centre, heading and half extents of (A, 7) boxes, for point and ray tests in box frames."""

    def __init__(self, boxes: np.ndarray):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
        self.boxes = boxes
        self.count = len(boxes)
        self.centre = boxes[:, :3]
        self.cos, self.sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
        self.half = boxes[:, 3:6] / 2

    def corners(self) -> np.ndarray:
        from sparsekd_core.geometry.boxes import corners_3d

        return corners_3d(self.boxes)

    def _rotate_in(self, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        c, s = self.cos[a], self.sin[a]
        return np.stack([v[:, 0] * c + v[:, 1] * s, -v[:, 0] * s + v[:, 1] * c, v[:, 2]], axis=1)

    def exit_distance(self, origin: np.ndarray, direction: np.ndarray, a: np.ndarray) -> np.ndarray:
        """(K,) ray parameter where rays (K, 3) leave boxes ``a`` (slab method in each box's frame)."""
        o = self._rotate_in(origin - self.centre[a], a)
        d = self._rotate_in(direction, a)
        half = self.half[a]
        with np.errstate(divide="ignore", invalid="ignore"):
            far = np.maximum((half - o) / d, (-half - o) / d)
        far = np.where(np.abs(d) < 1e-12, np.inf, far)
        return np.maximum(far.min(axis=1), 0.0)


@dataclass(frozen=True)
class SensorMix:
    """Which sensor each scene of a dataset uses: one preset, or presets with weights.

    Parsed from ``"hdl64"`` or ``"hdl64:0.7,vlp16:0.1,os1_64:0.2"`` (weights need not sum to 1).
    """

    names: tuple[str, ...]
    weights: tuple[float, ...]

    @staticmethod
    def parse(spec: str) -> "SensorMix":
        names, weights = [], []
        for part in str(spec).split(","):
            name, _, weight = part.strip().partition(":")
            get_preset(name)
            try:
                w = float(weight) if weight else 1.0
            except ValueError:
                raise ValueError(f"sensor mix {spec!r}: weight {weight!r} of {name} is not a number") from None
            if w <= 0:
                raise ValueError(f"sensor mix {spec!r}: weight of {name} must be > 0")
            names.append(name)
            weights.append(w)
        if not names:
            raise ValueError("empty sensor mix: give a preset name, e.g. hdl64")
        return SensorMix(tuple(names), tuple(weights))

    def pick(self, rng: np.random.Generator) -> SensorPreset:
        if len(self.names) == 1:
            return get_preset(self.names[0])
        p = np.asarray(self.weights) / sum(self.weights)
        return get_preset(self.names[int(rng.choice(len(self.names), p=p))])

    @property
    def primary(self) -> SensorPreset:
        """The preset with the largest weight (its nominal frame is the dataset's default frame)."""
        return get_preset(self.names[int(np.argmax(self.weights))])

    def __str__(self) -> str:
        return self.names[0] if len(self.names) == 1 else ",".join(f"{n}:{w:g}" for n, w in zip(self.names,
                                                                                              self.weights))
