"""Which simulator made a street.

``STREETS_VERSION`` goes up by one whenever the same seed and options give different frames (other shapes, sizes,
placement, clutter or sensor model). Figures measured on simulated frames carry it (``sim_meta.json``, the demo
drive's key that bundled checkpoints record), so that a score measured on one simulator's streets is never shown
beside a score measured on another's.

1: the simulator until issue 11's realism work (box-like vehicles, KITTI-like street furniture).
2: issue 11's realism work: vehicle body types with glass and mirrors, box sizes from KITTI/Waymo/nuScenes
   statistics, varied pedestrians and cyclists, clutter nobody labels, rural and residential streets, more sensor
   presets with random mounting, KITTI's intensity scale, labels all around the sensor.
3: the recording vehicle's own body under a roof sensor (ego_body.py); the HDL-64E returns from 1.45 m, not 2 m.
4: the ego vehicle's rig of small solid fixtures (mirrors, rack feet, antennas: ego_body.Rig), which give the fixed
   clusters of returns real sweeps show around the sensor; the bare body returns half as often as before.
   Since session 59 random mountings (``--random-mount``) of the HDL-64E and Waymo's top LiDAR draw heights from
   1.5 m, not 0.5 m (sensor.ROOF_MOUNT_HEIGHTS). Left at 4: frames without random mounting, which every recorded
   figure (the demo's drive, the frozen test streets) uses, are the same byte for byte; a dataset made with it
   since then differs from one made before, and its sim_meta.json says so (``mount_heights``, absent before).
"""
STREETS_VERSION = 4
