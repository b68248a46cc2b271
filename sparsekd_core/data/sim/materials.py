"""Reflectivity (0..1) of the static world's materials on KITTI's HDL-64E intensity scale (sensor.py): asphalt
reads about 0.2-0.33 there, concrete and foliage a little more, retro-reflective signs near 1. A pair is a range a
scene or an object draws its shade from; a single value is fixed."""

ASPHALT = (0.24, 0.4)
CONCRETE = (0.24, 0.42)
MARKING = 0.6
GRASS = (0.28, 0.48)
FOLIAGE = (0.3, 0.55)
BARK = 0.2
FACADE = (0.15, 0.45)
METAL = 0.3
PAINT = (0.1, 0.5)  # painted street furniture: cabinets, post boxes, containers, pillars, hydrants, meter heads
SIGN_FACE = 0.95  # retro-reflective sheeting
