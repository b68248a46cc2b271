"""``make demo`` (``python -m sparsekd_ros.demo``): the whole system on one machine, no sensor, no GPU.

A simulated 10 Hz drive (and the bundled real sample frames) goes as PointCloud2 to the real
``detector_node`` in its own process; the demo prints a line per answered frame and a summary
(frames, drops, latency, rate), scores the student's KITTI-style AP on the drive (and the teacher's,
when one is bundled) and writes ``demo_out/``: a bird's-eye view per frame, a GIF of the drive and a
rosbag2 of clouds and markers for RViz or Foxglove.

Modules: ``models`` (which checkpoints; the untrained stand-in), ``drive`` (the simulated drive and
its ground truth), ``samples`` (the bundled real frames), ``processes`` (the node and the ROS client as
subprocesses), ``client`` (the ROS process that publishes the frames and reads the node's
answers; the only module here that imports rclpy), ``stats`` (latency and drop figures),
``evaluate`` (offline detection and AP), ``outputs`` (PNGs, GIF, summary), ``bundle`` (packs a
trained student as a bundled checkpoint, recording its and its teacher's AP on the demo drive) and
``runner`` (the command).

The demo drives ROS processes, so it belongs to the ROS layer (docs/architecture.md); everything it
computes comes from sparsekd_core.
"""
