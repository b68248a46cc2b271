"""Reflectivity (0..1) of the static world's materials on KITTI's HDL-64E intensity scale (sensor.py): asphalt
reads about 0.2-0.33 there, concrete and foliage a little more, retro-reflective signs near 1. A pair is a range a
scene or an object draws its shade from; a single value is fixed. And the clear coat over road vehicles' paint."""

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

#: Car paint under a clear coat (SimOptions.vehicle_clear_coat). Seen head-on, the coat mirrors CLEAR_COAT_GLINT of
#: a pulse back on top of the paint's shade; seen obliquely, only the share CLEAR_COAT_DIFFUSE of the shade that the
#: pigment scatters under the coat comes back (sensor.GLOSS_EXPONENT: the fall-off between). So a real car's roof,
#: bonnet and slanted flanks read 0 while the panels that face the sensor glint: on the nine KITTI sweeps of
#: ../shared, 54% of car returns 5-40 m away read 0 (83% above 0.55 of the car's height, 45% on the doors), and the
#: rest a median 0.32 (``sparsekd-gap``'s car returns reading 0), where version-4 cars' read 0 38% and 35% of the
#: time, each car alike all over. The two constants and sensor.GLOSS_EXPONENT were set by comparing 60 simulated
#: frames with those sweeps (docs/results.md "Car paint that glints"); simulated cars still read 0 less often above
#: their beltline (about 75%).
CLEAR_COAT_GLINT = 0.3
CLEAR_COAT_DIFFUSE = 0.05
#: The windows of vehicles with clear-coated paint: tinted glass and the dark cabin behind it return weakly (real
#: KITTI car returns above 0.55 of the car's height: 83% read 0, 0.2% read 0.05, where version-4 windows, 0.05
#: here, read 0.05 or 0.06 as often as not).
TINTED_GLASS = 0.02


def clear_coat(shade: float) -> tuple[float, float]:
    """(reflectivity head-on, gloss: Mesh's mirror-like share of it) of a paint of ``shade`` under a clear coat."""
    peak = shade + CLEAR_COAT_GLINT
    return peak, 1.0 - CLEAR_COAT_DIFFUSE * shade / peak
