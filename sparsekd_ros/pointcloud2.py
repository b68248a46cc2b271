"""Vectorised sensor_msgs/PointCloud2 codec: message bytes <-> numpy, no per-point Python.

Same semantics as ``sensor_msgs_py.point_cloud2`` (``read_points``, ``read_points_numpy``,
``create_cloud``, ``create_cloud_xyz32``), which is not always installed (it is not on PyPI), plus
what sensor_msgs_py leaves out: ``row_step`` padding of organised clouds (height > 1), validation
that names the problem (:class:`MalformedCloud`), and :func:`cloud_to_points`, which maps a
sensor's fields onto a model's input columns: one gather over a 2-D view of the buffer when the fields
share a dtype, else one strided copy per feature.

Why hand-written: sensor_msgs_py is the only library for this and it is an optional ROS package;
numpy's strided views do the actual work here (``np.ndarray(buffer=..., strides=...)`` reads the
message bytes in place, any field order, either byte order).
"""
from __future__ import annotations

import array
import sys
from typing import Iterable, Sequence

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

__all__ = [
    "MalformedCloud",
    "DATATYPES",
    "dtype_from_fields",
    "check_cloud",
    "read_points",
    "read_points_numpy",
    "create_cloud",
    "create_cloud_xyz32",
    "make_fields",
    "cloud_to_points",
    "points_to_cloud",
]

#: PointField datatype constant -> numpy scalar type (sensor_msgs/PointField.msg).
DATATYPES: dict[int, type] = {
    PointField.INT8: np.int8,
    PointField.UINT8: np.uint8,
    PointField.INT16: np.int16,
    PointField.UINT16: np.uint16,
    PointField.INT32: np.int32,
    PointField.UINT32: np.uint32,
    PointField.FLOAT32: np.float32,
    PointField.FLOAT64: np.float64,
}
_NUMPY_TO_DATATYPE = {np.dtype(t): code for code, t in DATATYPES.items()}
_NATIVE_BIG_ENDIAN = sys.byteorder == "big"
# Placeholder for fields with an empty name (sensor_msgs_py does the same, so names stay unique).
_UNNAMED_PREFIX = "_unnamed_field_"
_XYZ = ("x", "y", "z")


class MalformedCloud(ValueError):
    """A PointCloud2 whose layout cannot be decoded; the message says what is wrong and how to fix it."""


def _field_dtype(field: PointField, big_endian: bool) -> np.dtype:
    if field.datatype not in DATATYPES:
        raise MalformedCloud(
            f"field '{field.name}' has unknown datatype {field.datatype}; sensor_msgs/PointField "
            f"defines 1..8 (INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64)"
        )
    return np.dtype(DATATYPES[field.datatype]).newbyteorder(">" if big_endian else "<")


def _field_names(fields: Sequence[PointField]) -> list[str]:
    return [f.name if f.name else f"{_UNNAMED_PREFIX}{i}" for i, f in enumerate(fields)]


def dtype_from_fields(
    fields: Sequence[PointField], point_step: int | None = None, big_endian: bool = _NATIVE_BIG_ENDIAN
) -> np.dtype:
    """Structured numpy dtype of one point: names, offsets and ``itemsize = point_step``.

    Fields with ``count > 1`` become sub-arrays of shape ``(count,)``. ``point_step`` defaults to the
    end of the last field. Raises :class:`MalformedCloud` for unknown datatypes, duplicate names
    and fields that end beyond ``point_step``.
    """
    names = _field_names(fields)
    if len(set(names)) != len(names):
        raise MalformedCloud(f"duplicate field names {names}: each PointField needs a unique name")
    formats, offsets = [], []
    end = 0
    for name, field in zip(names, fields):
        base = _field_dtype(field, big_endian)
        count = max(int(field.count), 1)
        formats.append(base if count == 1 else np.dtype((base, (count,))))
        offsets.append(int(field.offset))
        field_end = int(field.offset) + base.itemsize * count
        end = max(end, field_end)
        if point_step is not None and field_end > point_step:
            raise MalformedCloud(
                f"field '{name}' (offset {field.offset}, {base.itemsize * count} bytes) ends at byte "
                f"{field_end}, beyond point_step {point_step}: point_step must cover every field"
            )
    return np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": end if point_step is None else point_step}
    )


def check_cloud(msg: PointCloud2) -> None:
    """Raise :class:`MalformedCloud` unless ``msg``'s layout is consistent with its data.

    Checks: known datatypes, unique names, every field inside ``point_step``, ``row_step >=
    width * point_step`` and ``len(data) == row_step * height``. An empty cloud (width * height = 0)
    with consistent sizes passes.
    """
    n_points = int(msg.width) * int(msg.height)
    dtype_from_fields(msg.fields, point_step=int(msg.point_step), big_endian=bool(msg.is_bigendian))
    if n_points == 0:
        if len(msg.data) != 0:
            raise MalformedCloud(
                f"width*height is 0 but data holds {len(msg.data)} bytes: set width and height to the point count"
            )
        return
    if msg.point_step == 0:
        raise MalformedCloud("point_step is 0: set it to the size of one point in bytes")
    min_row = int(msg.width) * int(msg.point_step)
    if msg.row_step < min_row:
        raise MalformedCloud(
            f"row_step {msg.row_step} is smaller than width*point_step = {msg.width}*{msg.point_step} "
            f"= {min_row}: row_step is the length of one row in bytes"
        )
    expected = int(msg.row_step) * int(msg.height)
    if len(msg.data) != expected:
        raise MalformedCloud(
            f"data holds {len(msg.data)} bytes but row_step*height = {msg.row_step}*{msg.height} = {expected} "
            f"(width {msg.width}, height {msg.height}, point_step {msg.point_step}): the message is truncated "
            f"or its sizes are wrong"
        )


def _buffer(msg: PointCloud2) -> np.ndarray:
    """The message bytes as a uint8 array, zero-copy (array.array from rclpy, ndarray from rosbags, bytes)."""
    return np.frombuffer(msg.data, dtype=np.uint8) if len(msg.data) else np.zeros(0, np.uint8)


def _grid_view(buf: np.ndarray, msg: PointCloud2, dtype: np.dtype, offset: int, extra: tuple = ()) -> np.ndarray:
    """Zero-copy (height, width, *extra) view of one value per point at byte ``offset``."""
    shape = (int(msg.height), int(msg.width)) + tuple(e[0] for e in extra)
    strides = (int(msg.row_step), int(msg.point_step)) + tuple(e[1] for e in extra)
    return np.ndarray(shape=shape, dtype=dtype, buffer=buf, offset=offset, strides=strides)


def read_points(
    cloud: PointCloud2,
    field_names: Iterable[str] | None = None,
    skip_nans: bool = False,
    reshape_organized_cloud: bool = False,
) -> np.ndarray:
    """Structured array of the cloud's points in native byte order, like ``sensor_msgs_py.read_points``.

    Returns shape (width*height,), or (height, width) with ``reshape_organized_cloud``. With
    ``skip_nans`` on a non-dense cloud, points with a NaN in any selected field are dropped (the
    result is then 1-D). Row padding (``row_step > width * point_step``) is skipped.
    """
    check_cloud(cloud)
    big = bool(cloud.is_bigendian)
    dtype = dtype_from_fields(cloud.fields, point_step=int(cloud.point_step), big_endian=big)
    if field_names is not None:
        field_names = list(field_names)
        missing = [n for n in field_names if n not in dtype.names]
        if missing:
            raise MalformedCloud(f"cloud has no field(s) {missing}; it has {list(dtype.names)}")
        dtype = _subset(dtype, field_names)
    native = _subset(
        dtype_from_fields(cloud.fields, big_endian=_NATIVE_BIG_ENDIAN), list(dtype.names), packed=True
    )
    n = int(cloud.width) * int(cloud.height)
    if n == 0:
        out = np.zeros(0, dtype=native)
    else:
        view = _grid_view(_buffer(cloud), cloud, dtype, 0)
        out = view.astype(native)  # one copy: drops padding and unselected fields, fixes byte order
    if skip_nans and not cloud.is_dense:
        keep = np.ones(out.shape, dtype=bool)
        for name in out.dtype.names:
            col = out[name]
            if col.dtype.kind == "f":
                keep &= ~np.isnan(col).reshape(col.shape[: out.ndim] + (-1,)).any(axis=-1)
        return out[keep]
    return out.reshape(int(cloud.height), int(cloud.width)) if reshape_organized_cloud else out.reshape(-1)


def _subset(dtype: np.dtype, names: list[str], packed: bool = False) -> np.dtype:
    """``dtype`` restricted to ``names`` (in that order); packed = consecutive offsets, else kept offsets."""
    formats = [dtype.fields[n][0] for n in names]
    if packed:
        return np.dtype({"names": names, "formats": formats})
    offsets = [dtype.fields[n][1] for n in names]
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": dtype.itemsize})


def read_points_numpy(
    cloud: PointCloud2,
    field_names: Iterable[str] | None = None,
    skip_nans: bool = False,
    reshape_organized_cloud: bool = False,
) -> np.ndarray:
    """Plain (N, F) array of the selected fields, like ``sensor_msgs_py.read_points_numpy``.

    All selected fields must share one datatype (else :class:`MalformedCloud` says which differ);
    use :func:`cloud_to_points` to get float32 columns from mixed types.
    """
    points = read_points(cloud, field_names, skip_nans, reshape_organized_cloud)
    kinds = {points.dtype.fields[n][0].base for n in points.dtype.names}
    if len(kinds) != 1:
        raise MalformedCloud(
            f"read_points_numpy needs fields of one datatype, got {sorted(str(k) for k in kinds)}: "
            f"select fields with field_names or use cloud_to_points"
        )
    from numpy.lib.recfunctions import structured_to_unstructured

    return structured_to_unstructured(points)


def make_fields(names: Sequence[str], datatype: int = PointField.FLOAT32) -> list[PointField]:
    """Packed PointFields, one per name, all of ``datatype``, at consecutive offsets."""
    size = np.dtype(DATATYPES[datatype]).itemsize
    return [PointField(name=n, offset=i * size, datatype=datatype, count=1) for i, n in enumerate(names)]


def create_cloud(
    header: Header, fields: Sequence[PointField], points: np.ndarray, point_step: int | None = None
) -> PointCloud2:
    """PointCloud2 from points, like ``sensor_msgs_py.create_cloud``.

    ``points``: a structured array (fields copied by name), or a plain (N, F) / organised (H, W, F)
    array with one column per field (cast to each field's datatype, so mixed types work).
    ``point_step``: bytes per point; default: a structured input's itemsize, else the end of the
    last field. Written in native byte order with ``is_dense=False``; padding bytes are zero.
    """
    fields = list(fields)
    points = np.asarray(points)
    if point_step is None and points.dtype.names is not None:
        point_step = max(points.dtype.itemsize, dtype_from_fields(fields).itemsize)
    dtype = dtype_from_fields(fields, point_step=point_step)
    if points.dtype.names is None:
        if points.ndim not in (2, 3) or points.shape[-1] != len(fields):
            raise ValueError(
                f"points of shape {points.shape} do not fit {len(fields)} fields "
                f"{[f.name for f in fields]}: pass (N, {len(fields)}) or (H, W, {len(fields)})"
            )
        structured = np.zeros(points.shape[:-1], dtype=dtype)
        for j, name in enumerate(dtype.names):
            structured[name] = points[..., j] if structured[name].ndim == points.ndim - 1 else points[..., j, None]
        points = structured
    elif points.dtype != dtype:
        structured = np.zeros(points.shape, dtype=dtype)
        for name in dtype.names:
            structured[name] = points[name]
        points = structured
    if points.ndim not in (1, 2):
        raise ValueError(f"points must be 1-D (N,) or organised (H, W), got shape {points.shape}")
    height, width = (1, points.shape[0]) if points.ndim == 1 else points.shape
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(points).tobytes())
    return PointCloud2(
        header=header,
        height=height,
        width=width,
        fields=fields,
        is_bigendian=_NATIVE_BIG_ENDIAN,
        point_step=dtype.itemsize,
        row_step=dtype.itemsize * width,
        data=data,
        is_dense=False,
    )


def create_cloud_xyz32(header: Header, points: np.ndarray) -> PointCloud2:
    """PointCloud2 with float32 x, y, z from an (N, 3) array, like ``sensor_msgs_py.create_cloud_xyz32``."""
    return create_cloud(header, make_fields(_XYZ), np.asarray(points, dtype=np.float32))


def _feature_sources(
    msg: PointCloud2, features: Sequence[str], intensity_field: str
) -> list[tuple[int, np.dtype] | None]:
    """For each feature, (byte offset, field dtype) of the field it reads, or None if absent (zeros)."""
    big = bool(msg.is_bigendian)
    by_name = {f.name: f for f in msg.fields}
    sources: list[tuple[int, np.dtype] | None] = []
    for feature in features:
        name = intensity_field if feature == "intensity" else feature
        field = by_name.get(name)
        if field is None:
            if feature in _XYZ:
                raise MalformedCloud(
                    f"cloud has no '{feature}' field (fields: {[f.name for f in msg.fields]}): "
                    f"x, y and z are required"
                )
            sources.append(None)
            continue
        if field.count > 1:
            raise MalformedCloud(f"field '{name}' has count {field.count}; a model feature needs a scalar field")
        sources.append((int(field.offset), _field_dtype(field, big)))
    return sources


def _uniform_columns(msg: PointCloud2, sources: list[tuple[int, np.dtype] | None]) -> np.ndarray | None:
    """Column indices when every feature is present, all share one dtype, the fields are aligned to it
    and rows are unpadded: the cloud is then an (N, point_step / itemsize) matrix (the common case)."""
    if any(s is None for s in sources):
        return None
    dtype = sources[0][1]
    size = dtype.itemsize
    unpadded = msg.height == 1 or msg.row_step == msg.width * msg.point_step
    if not unpadded or msg.point_step % size or any(s[1] != dtype or s[0] % size for s in sources):
        return None
    return np.array([s[0] // size for s in sources])


def cloud_to_points(
    msg: PointCloud2,
    features: Sequence[str] = ("x", "y", "z", "intensity"),
    intensity_field: str = "intensity",
    intensity_scale: float = 1.0,
    drop_nonfinite: bool = True,
) -> np.ndarray:
    """Decode a cloud into a model's input: (N, len(features)) float32, one row per valid point.

    features:        the model's input columns in order, e.g. ``det.point_features``. Each reads the
                     cloud field of the same name, except ``"intensity"``, which reads
                     ``intensity_field`` (e.g. "reflectance", "i") and is multiplied by ``intensity_scale``
                     (e.g. 1/255 for 0..255 sensors). Missing x/y/z -> :class:`MalformedCloud`;
                     any other missing feature -> a column of zeros.
    drop_nonfinite:  drop points whose x, y or z is NaN or inf. Done whatever ``is_dense`` says,
                     because drivers often mark clouds dense that carry NaN returns.
    The message bytes are read in place through strided views (any field order and datatype,
    either byte order, padded organised rows); the result is a new array that owns its memory.
    """
    features = tuple(features)
    if not set(_XYZ) <= set(features):
        raise ValueError(f"features {features} must include x, y and z")
    check_cloud(msg)
    sources = _feature_sources(msg, features, intensity_field)
    height, width = int(msg.height), int(msg.width)
    n = height * width
    if n == 0:
        return np.zeros((0, len(features)), dtype=np.float32)
    buf = _buffer(msg)
    cols = _uniform_columns(msg, sources)
    if cols is not None:
        # Fast path: one gather over a 2-D view (a plain memcpy when the columns are the whole point).
        dtype = sources[0][1]
        matrix = np.ndarray((n, int(msg.point_step) // dtype.itemsize), dtype=dtype, buffer=buf)
        if np.array_equal(cols, np.arange(cols[0], cols[0] + len(cols))):
            out = np.array(matrix[:, cols[0] : cols[0] + len(cols)], dtype=np.float32, order="C")
        else:
            out = matrix[:, cols].astype(np.float32, copy=False)
    else:
        # General path: one strided copy per feature; rows are (height, width) so padding is skipped.
        out = np.zeros((n, len(features)), dtype=np.float32)
        grid = out.reshape(height, width, len(features))
        for j, src in enumerate(sources):
            if src is not None:
                grid[:, :, j] = _grid_view(buf, msg, src[1], src[0])
    if intensity_scale != 1.0 and "intensity" in features:
        out[:, features.index("intensity")] *= np.float32(intensity_scale)
    if drop_nonfinite and not np.isfinite(out).all():
        ix, iy, iz = (features.index(a) for a in _XYZ)
        # x + y + z is finite exactly when all three are (NaN and inf propagate; only sums beyond
        # 3.4e38 m overflow, which no sensor reports): one pass instead of an (N, 3) mask.
        finite = np.isfinite(out[:, ix] + out[:, iy] + out[:, iz])
        if not finite.all():
            out = out[finite]
    return out


def points_to_cloud(
    points: np.ndarray,
    fields: Sequence[str] | Sequence[PointField] = ("x", "y", "z", "intensity"),
    header: Header | None = None,
) -> PointCloud2:
    """Encode (N, F) points (or organised (H, W, F)) as a PointCloud2.

    ``fields``: F names (written as packed float32), or F PointFields (any datatypes and offsets).
    ``header``: frame and stamp; an empty Header when None.
    """
    fields = list(fields)
    if fields and isinstance(fields[0], str):
        fields = make_fields(fields)
    return create_cloud(header if header is not None else Header(), fields, points)
