"""The parameter files Autoware's lidar_centerpoint launch reads beside the two ONNX files.

launch/lidar_centerpoint.launch.xml (autoware_universe 0.43.0) loads ``model_param_path`` (default
``config/<model_name>.param.yaml`` in the package), ``$(var model_path)/<model_name>_ml_package.param.yaml``
and ``$(var model_path)/detection_class_remapper.param.yaml``; the node declares every key written here
without a default, so all must be present. Post-processing values are Autoware's own defaults (its
circle NMS and IoU NMS differ from ours); edit them for your robot.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .autoware import AUTOWARE_REF, ENCODER_IN_FEATURES, POINT_FEATURE_SIZE, AutowareLayout, encoder_file, head_file

#: Label order of the class remapper matrices (autoware_perception_msgs ObjectClassification).
REMAPPER_LABELS = ("UNKNOWN", "CAR", "TRUCK", "BUS", "TRAILER", "MOTORBIKE", "BICYCLE", "PEDESTRIAN")


class _ParamDumper(yaml.SafeDumper):
    """Lists on one line, mappings as blocks, launch substitutions "$(var ...)" quoted: Autoware's own style."""


_ParamDumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_ParamDumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v,
                                                                   style='"' if "$(" in v else None))


def _write(path: Path, params: dict, comment: str) -> Path:
    body = yaml.dump({"/**": {"ros__parameters": params}}, Dumper=_ParamDumper, sort_keys=False, width=120)
    header = "".join(f"# {line}\n" for line in comment.strip().splitlines())
    path.write_text(header + body)
    return path


def ml_package_params(layout: AutowareLayout) -> dict:
    return {"model_params": {
        "class_names": list(layout.class_names),
        "point_feature_size": POINT_FEATURE_SIZE,
        "max_voxel_size": layout.max_voxels,
        "point_cloud_range": list(layout.point_cloud_range),
        "voxel_size": list(layout.voxel_size),
        "downsample_factor": layout.downsample_factor,
        "encoder_in_feature_size": ENCODER_IN_FEATURES,
        "has_variance": False,
        "has_twist": layout.has_twist,
    }}


def node_params(layout: AutowareLayout, score_threshold: float, trt_precision: str) -> dict:
    # yaw_norm_thresholds is indexed by class; Autoware's defaults: 0.3, and 0 for pedestrians
    yaw_norm = [0.0 if name == "PEDESTRIAN" else 0.3 for name in layout.class_names]
    return {
        "encoder_onnx_path": "$(var model_path)/" + encoder_file("$(var model_name)"),
        "encoder_engine_path": "$(var model_path)/" + encoder_file("$(var model_name)")[:-5] + ".engine",
        "head_onnx_path": "$(var model_path)/" + head_file("$(var model_name)"),
        "head_engine_path": "$(var model_path)/" + head_file("$(var model_name)")[:-5] + ".engine",
        "trt_precision": trt_precision,
        "cloud_capacity": 2000000,
        "post_process_params": {
            "score_threshold": float(score_threshold),
            "circle_nms_dist_threshold": 0.5,
            "iou_nms_search_distance_2d": 10.0,
            "iou_nms_threshold": 0.1,
            "yaw_norm_thresholds": yaw_norm,
        },
        # the node merges num_past_frames earlier sweeps with the current one (its cache holds num_past_frames + 1):
        # as many as the model was trained with, so 0 for single-sweep models (Autoware's own default is 1)
        "densification_params": {"world_frame_id": "map", "num_past_frames": layout.past_frames},
    }


def remapper_params() -> dict:
    zeros = [0] * (len(REMAPPER_LABELS) ** 2)
    return {"allow_remapping_by_area_matrix": zeros, "min_area_matrix": [0.0] * len(zeros),
            "max_area_matrix": [0.0] * len(zeros)}


def write_param_files(out_dir: Path, model_name: str, layout: AutowareLayout, score_threshold: float,
                      trt_precision: str) -> list[Path]:
    """Write <model_name>.param.yaml, <model_name>_ml_package.param.yaml and detection_class_remapper.param.yaml."""
    ref = f"for autoware_lidar_centerpoint, checked against {AUTOWARE_REF}"
    return [
        _write(out_dir / f"{model_name}.param.yaml", node_params(layout, score_threshold, trt_precision),
               f"Node parameters of model {model_name}, written by sparsekd-export {ref}.\n"
               "Pass it as model_param_path:=<this file>; post-processing values are Autoware's defaults."),
        _write(out_dir / f"{model_name}_ml_package.param.yaml", ml_package_params(layout),
               f"Model parameters of {model_name} (fixed by the ONNX files), written by sparsekd-export {ref}."),
        _write(out_dir / "detection_class_remapper.param.yaml", remapper_params(),
               "No class remapping (all-zero matrices, rows/columns "
               f"{', '.join(REMAPPER_LABELS)}), written by sparsekd-export {ref}."),
    ]
