"""Write a small Waymo tfrecord with the official package's own protos (run by the Waymo Python).

Usage: ``python waymo_tfrecord_writer.py SPEC.json OUT.tfrecord [SPEC.json OUT.tfrecord ...]``. Each JSON
(written by the tests) holds the segment name and its frames: pose (4x4), LiDARs (calibration, range images
per return as (H, W, 4) range/intensity/elongation/NLZ, TOP's per-pixel pose (H, W, 6) roll pitch yaw x y z)
and labels. Range images are stored as Waymo stores them: zlib-compressed serialised MatrixFloat.
"""
import json
import sys
import zlib

import numpy as np
import tensorflow as tf
from waymo_open_dataset import dataset_pb2, label_pb2


def compressed(cls, array) -> bytes:
    matrix = cls()
    array = np.asarray(array)
    matrix.shape.dims.extend(array.shape)
    matrix.data.extend(array.ravel().tolist())
    return zlib.compress(matrix.SerializeToString())


def build_frame(context: str, spec: dict) -> dataset_pb2.Frame:
    frame = dataset_pb2.Frame()
    frame.context.name = context
    frame.timestamp_micros = spec["timestamp"]
    frame.pose.transform.extend(np.asarray(spec["pose"], np.float64).ravel().tolist())
    for lidar in spec["lidars"]:
        calib = frame.context.laser_calibrations.add()
        calib.name = lidar["name"]
        calib.extrinsic.transform.extend(np.asarray(lidar["extrinsic"], np.float64).ravel().tolist())
        calib.beam_inclination_min, calib.beam_inclination_max = lidar["inclination_range"]
        calib.beam_inclinations.extend(lidar.get("beam_inclinations") or [])
        laser = frame.lasers.add()
        laser.name = lidar["name"]
        for ret, image in zip((laser.ri_return1, laser.ri_return2), lidar["returns"]):
            image = np.asarray(image, np.float32)
            ret.range_image_compressed = compressed(dataset_pb2.MatrixFloat, image)
            ret.camera_projection_compressed = compressed(dataset_pb2.MatrixInt32,
                                                          np.zeros(image.shape[:2] + (6,), np.int32))
        if lidar.get("pixel_pose") is not None:
            laser.ri_return1.range_image_pose_compressed = compressed(dataset_pb2.MatrixFloat, lidar["pixel_pose"])
    for obj in spec["labels"]:
        label = frame.laser_labels.add()
        label.box.CopyFrom(label_pb2.Label.Box(**dict(zip(
            ("center_x", "center_y", "center_z", "length", "width", "height", "heading"), obj["box"]))))
        label.type = obj["type"]
        label.id = obj["id"]
        label.detection_difficulty_level = obj["difficulty"]
        label.tracking_difficulty_level = obj["tracking_difficulty"]
        label.num_lidar_points_in_box = obj["num_points"]
    return frame


def main(spec_path: str, out_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    with tf.io.TFRecordWriter(out_path) as writer:
        for frame in spec["frames"]:
            writer.write(build_frame(spec["context"], frame).SerializeToString())


if __name__ == "__main__":
    for spec_path, out_path in zip(sys.argv[1::2], sys.argv[2::2]):
        main(spec_path, out_path)
