"""Facts of the bundled checkpoints that several tests check against what the tools apply: one place to change when
a bundle is replaced (docs/results.md says how each was chosen)."""

# the per-class score thresholds cp_pillar_v0.64 records (chosen on simulated val frames; the node applies them)
PILLAR_STUDENT_OPERATING_POINT = {"Car": 0.55, "Pedestrian": 0.55, "Cyclist": 0.65}
