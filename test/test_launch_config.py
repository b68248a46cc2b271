"""launch/detector.launch.py, config/detector.yaml and rviz/sparsekd.rviz agree with the node.

The launch file is read as source (ast): launch and launch_ros are not installed here. When they
are, the launch description is also built for real.
"""
from __future__ import annotations

import ast

import pytest
import rclpy
import yaml
from rclpy.context import Context

from file_module import load_file_module
from ros_helpers import REPO, StandInDetector, domain_id
from sparsekd_core.checkpoint import read_checkpoint
from sparsekd_core.cli.detect import build_parser as detect_parser
from sparsekd_core.inference import resolve_checkpoint
from sparsekd_ros.bag_detect import MARKERS_TOPIC
from sparsekd_ros.bag_detect import build_parser as bag_parser
from sparsekd_ros.demo.runner import build_parser as demo_parser
from sparsekd_ros.detector_node import DetectorNode
from sparsekd_core.thresholds import ScoreThresholds
from sparsekd_ros.parameters import NODE_NAME, SPECS
from sparsekd_ros.replay import DEFAULT_FRAME_ID

LAUNCH = REPO / "launch" / "detector.launch.py"
CONFIG = REPO / "config" / "detector.yaml"
RVIZ = REPO / "rviz" / "sparsekd.rviz"


def _call_name(node: ast.Call) -> str:
    return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")


_TREE = ast.parse(LAUNCH.read_text())
# Module-level string constants of the launch file (e.g. NODE_NAME), to resolve names used in calls.
_CONSTANTS = {
    t.id: n.value.value
    for n in _TREE.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
    for t in n.targets if isinstance(t, ast.Name)
}


def _literal(node: ast.AST):
    """A constant, or a module constant by name; None for anything computed."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _CONSTANTS.get(node.id)
    return None


def _launch_source() -> tuple[dict[str, object], ast.Call, list[ast.Call]]:
    """Declared arguments (name -> literal default or None), the detector Node call, all Node calls."""
    calls = [n for n in ast.walk(_TREE) if isinstance(n, ast.Call)]
    args = {}
    for call in calls:
        if _call_name(call) == "DeclareLaunchArgument":
            args[_literal(call.args[0])] = _literal(_kw(call, "default_value"))
    nodes = [c for c in calls if _call_name(c) == "Node"]
    detector = next(c for c in nodes if _literal(_kw(c, "executable")) == "detector_node")
    return args, detector, nodes


def _kw(call: ast.Call, name: str):
    return next(k.value for k in call.keywords if k.arg == name)


def test_launch_file_imports_only_launch_and_launch_ros():
    modules = {n.module.split(".")[0] for n in ast.walk(_TREE) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name.split(".")[0] for n in ast.walk(_TREE) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {"launch", "launch_ros"}, modules


def test_launch_arguments_match_node_parameters_and_config():
    args, detector, _ = _launch_source()
    assert {"model", "checkpoint", "device", "input_topic", "score_threshold", "use_sim_time", "rviz",
            "params_file"} <= set(args)
    assert _literal(_kw(detector, "name")) == NODE_NAME
    assert _literal(_kw(detector, "package")) == "sparsekd_ros"
    # The node's parameter overrides: each names a declared parameter, from the argument of the same name,
    # with the parameter's type; each argument's default equals the parameter's default.
    overrides = next(e for e in _kw(detector, "parameters").elts if isinstance(e, ast.Dict))
    value_types = {"str": str, "float": float, "int": int, "bool": bool}
    defaults = {**{name: spec.default for name, spec in SPECS.items()}, "use_sim_time": False}  # rclpy's own
    for key, value in zip(overrides.keys, overrides.values):
        name = _literal(key)
        assert name in defaults, f"launch sets unknown parameter {name}"
        assert _call_name(value) == "ParameterValue"
        assert _literal(value.args[0].args[0]) == name  # LaunchConfiguration(name)
        typ = value_types[_kw(value, "value_type").id]
        assert isinstance(defaults[name], typ)
        got = args[name] == "true" if typ is bool else typ(args[name])
        assert got == defaults[name], (name, args[name], defaults[name])
    assert {_literal(k) for k in overrides.keys} == set(args) - {"rviz", "params_file"}
    assert args["rviz"] == "false"


def test_config_yaml_lists_every_parameter_with_its_default():
    doc = yaml.safe_load(CONFIG.read_text())
    assert list(doc) == [NODE_NAME]
    params = doc[NODE_NAME]["ros__parameters"]
    assert list(params) == list(SPECS)
    for name, value in params.items():
        assert value == SPECS[name].default and type(value) is type(SPECS[name].default), name


def test_the_default_model_is_a_bundled_student_that_every_tool_runs():
    """The node, the demo and the bag tool start from the same model, and it ships with its operating point."""
    default = SPECS["model"].default
    payload = read_checkpoint(resolve_checkpoint(default))
    assert payload["meta"]["bundled_as"] == default and payload["meta"]["kd"] == "sparsekd"  # a student, not a teacher
    assert set(payload["config"]["head"]["post"]["operating_thresholds"]) == {"Car", "Pedestrian", "Cyclist"}
    assert demo_parser().parse_args([]).model == default
    assert bag_parser().parse_args(["in_bag", "out_bag"]).model == default
    assert detect_parser().parse_args(["cloud.bin"]).model == default


def test_node_loads_the_config_file(tmp_path):
    doc = yaml.safe_load(CONFIG.read_text())
    params = doc[NODE_NAME]["ros__parameters"]
    params.update(score_threshold=0.55, class_score_thresholds="Pedestrian:0.2", max_range=60.0,
                  intensity_field="reflectance", target_frame="base_link",
                  sensor_to_model=[0.0, 0.0, 0.77, 0.0, 0.05, 0.0])
    edited = tmp_path / "detector.yaml"
    edited.write_text(yaml.safe_dump(doc))
    ctx = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(edited)], context=ctx, domain_id=domain_id() + 5)
    det = StandInDetector()
    node = DetectorNode(detector=det, context=ctx)
    try:
        p = node.params
        assert (p.score_threshold, p.max_range, p.intensity_field, p.target_frame) == (0.55, 60.0, "reflectance",
                                                                                      "base_link")
        assert p.sensor_to_model == (0.0, 0.0, 0.77, 0.0, 0.05, 0.0)
        assert det.thresholds == ScoreThresholds(0.55, {"Pedestrian": 0.2})
        assert node.markers_pub.topic_name == MARKERS_TOPIC
        assert node.cloud_sub.topic_name == SPECS["input_topic"].default
        descriptors = node.describe_parameters(list(SPECS))
        assert all(d.description for d in descriptors)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def _displays() -> tuple[dict, dict[str, dict]]:
    doc = yaml.safe_load(RVIZ.read_text())
    manager = doc["Visualization Manager"]
    return manager, {d["Class"]: d for d in manager["Displays"]}


def test_rviz_config_matches_node_topics_and_replay_frame():
    manager, displays = _displays()
    cloud = displays["rviz_default_plugins/PointCloud2"]
    assert cloud["Topic"]["Value"] == SPECS["input_topic"].default
    assert cloud["Color Transformer"] == "Intensity" and cloud["Channel Name"] == "intensity"
    assert cloud["Topic"]["Reliability Policy"] == "Best Effort"  # receives best-effort drivers too
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == MARKERS_TOPIC == f"/{NODE_NAME}/markers"
    assert "rviz_default_plugins/Grid" in displays
    assert manager["Global Options"]["Fixed Frame"] == DEFAULT_FRAME_ID
    view = manager["Views"]["Current"]
    assert view["Class"] == "rviz_default_plugins/Orbit" and 20 <= view["Distance"] <= 60
    _, _, nodes = _launch_source()
    rviz_node = next(n for n in nodes if _literal(_kw(n, "executable")) == "rviz2")
    assert "sparsekd.rviz" in ast.unparse(_kw(rviz_node, "arguments"))


def test_installed_files_are_the_ones_setup_py_ships():
    setup = (REPO / "setup.py").read_text()
    assert '"detector_node = sparsekd_ros.detector_node:run"' in setup
    for pattern in ('glob("launch/*.py")', 'glob("config/*.yaml")', 'glob("rviz/*.rviz")'):
        assert pattern in setup
    assert LAUNCH.suffix == ".py" and CONFIG.suffix == ".yaml" and RVIZ.suffix == ".rviz"


def test_launch_description_builds_when_launch_ros_is_installed():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed here (not on PyPI)")
    from launch.actions import DeclareLaunchArgument

    description = load_file_module(LAUNCH, "detector_launch").generate_launch_description()
    declared = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    args, _, _ = _launch_source()
    assert set(declared) == set(args)
    for name, default in args.items():
        if default is not None:
            assert "".join(s.text for s in declared[name].default_value) == default
