"""Launch the sparsekd_ros detector node (and optionally RViz2).

    ros2 launch sparsekd_ros detector.launch.py model:=cp_voxel_s
    ros2 launch sparsekd_ros detector.launch.py checkpoint:=/path/to/student.pth device:=cuda rviz:=true
    ros2 launch sparsekd_ros detector.launch.py use_sim_time:=true   # with ros2 bag play --clock
    ros2 launch sparsekd_ros detector.launch.py target_frame:=base_link   # boxes in base_link (tf2)
    ros2 launch sparsekd_ros detector.launch.py checkpoint:=nus.pth odometry_topic:=/odom   # multi-sweep, no tf2
    ros2 launch sparsekd_ros detector.launch.py class_score_thresholds:=none score_threshold:=0.4   # one threshold

Parameters come from params_file (default: the package's config/detector.yaml); the arguments
below override the matching parameters. Imports only launch and launch_ros.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "sparsekd_ros"
NODE_NAME = "sparsekd_detector"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("model", default_value="cp_pillar_s",
                              description="Zoo model name (bundled weights) or a .pth checkpoint path"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="A .pth checkpoint; when set it is used instead of model"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cuda | cuda:N | cpu"),
        DeclareLaunchArgument("backend", default_value="torch", description="torch | onnxruntime | tensorrt"),
        DeclareLaunchArgument("input_topic", default_value="/points",
                              description="sensor_msgs/PointCloud2 input topic"),
        DeclareLaunchArgument("score_threshold", default_value="0.3", description="Minimum score of a published box"),
        DeclareLaunchArgument("class_score_thresholds", default_value="",
                              description="Per-class minimum scores, e.g. Pedestrian:0.25,Cyclist:0.4; empty: the "
                                          "model's operating point; none: score_threshold for every class"),
        DeclareLaunchArgument("target_frame", default_value="",
                              description="Frame of the boxes (tf2), e.g. base_link; empty: the cloud's frame"),
        DeclareLaunchArgument("odometry_topic", default_value="",
                              description="nav_msgs/Odometry: sensor motion for multi-sweep models without tf2"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true: use /clock (ros2 bag play --clock, sparsekd-replay --clock)"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="true: also start RViz2 with rviz/sparsekd.rviz"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "detector.yaml"]),
                              description="YAML with the node's ros__parameters"),
    ]
    detector = Node(
        package=PACKAGE,
        executable="detector_node",
        name=NODE_NAME,
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model": ParameterValue(LaunchConfiguration("model"), value_type=str),
                "checkpoint": ParameterValue(LaunchConfiguration("checkpoint"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                "input_topic": ParameterValue(LaunchConfiguration("input_topic"), value_type=str),
                "score_threshold": ParameterValue(LaunchConfiguration("score_threshold"), value_type=float),
                "class_score_thresholds": ParameterValue(LaunchConfiguration("class_score_thresholds"), value_type=str),
                "target_frame": ParameterValue(LaunchConfiguration("target_frame"), value_type=str),
                "odometry_topic": ParameterValue(LaunchConfiguration("odometry_topic"), value_type=str),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
            },
        ],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="sparsekd_rviz",
        arguments=["-d", PathJoinSubstitution([share, "rviz", "sparsekd.rviz"])],
        parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, detector, rviz])
