"""sparsekd_ros: the ROS 2 layer of sparsekd (what needs or drives ROS; docs/architecture.md).

Modules: ``detector_node`` (the node), ``pointcloud2`` (vectorised PointCloud2 codec),
``messages`` (markers, vision_msgs, diagnostics), ``replay`` and ``bag_detect`` (tools),
``bag_io`` (rosbag2 via rosbags), ``bench_node`` (figures), ``demo`` (``make demo``). Nothing
is imported here, so ``import sparsekd_ros`` stays cheap.
"""
