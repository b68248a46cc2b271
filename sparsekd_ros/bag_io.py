"""rosbag2 (sqlite3 or mcap) reading and writing with rosbags, for rclpy messages.

The one place where rclpy messages meet bags: bags hold CDR bytes, which is exactly what
``rclpy.serialization.serialize_message`` produces and ``deserialize_message`` reads, so messages
cross without conversion. rosbags' typestore only supplies the message definitions stored in the
bag's metadata; types it does not ship (vision_msgs) are registered from the installed ``.msg`` files.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import TypesysError

__all__ = [
    "CLOUD_TYPE",
    "BagError",
    "BagMessage",
    "msg_class",
    "to_rclpy",
    "open_bag",
    "cloud_topics",
    "pick_cloud_topic",
    "iter_messages",
    "storage_of",
    "BagWriter",
    "ensure_type",
]

CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


class BagError(ValueError):
    """A bag cannot be used as asked (missing, no such topic, ...); the message says what to do."""


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str  #: e.g. "sensor_msgs/msg/PointCloud2"
    timestamp_ns: int  #: receive time recorded in the bag
    raw: bytes  #: CDR bytes
    connection: Connection


def msg_class(msgtype: str) -> type:
    """"pkg/msg/Name" -> the rclpy message class (ImportError if the package is not installed)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def to_rclpy(raw: bytes, msgtype: str) -> Any:
    """CDR bytes from a bag -> rclpy message."""
    return deserialize_message(bytes(raw), msg_class(msgtype))


def open_bag(path: str | Path) -> Reader:
    """An opened rosbag2 Reader (directory with metadata.yaml, sqlite3 or mcap); close it when done."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist (a rosbag2 directory with metadata.yaml is expected)")
    if path.is_file() and path.suffix in (".db3", ".mcap"):
        path = path.parent  # rosbag2 bags are directories; accept their storage file too
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises its own error types per storage
        raise BagError(f"cannot open {path} as a rosbag2 bag: {exc}") from exc
    return reader


def storage_of(reader: Reader) -> str:
    """"sqlite3" or "mcap"."""
    return "mcap" if any(Path(reader.path).glob("*.mcap")) else "sqlite3"


def cloud_topics(reader: Reader) -> list[str]:
    """PointCloud2 topics of the bag, sorted."""
    return sorted({c.topic for c in reader.connections if c.msgtype == CLOUD_TYPE})


def pick_cloud_topic(reader: Reader, topic: str | None) -> str:
    """``topic`` if the bag has it as PointCloud2, else the bag's only cloud topic; BagError otherwise."""
    clouds = cloud_topics(reader)
    if topic is not None:
        if topic not in clouds:
            raise BagError(f"bag has no PointCloud2 topic {topic}; its cloud topics are {clouds or 'none'}")
        return topic
    if len(clouds) != 1:
        raise BagError(
            f"bag has {len(clouds)} PointCloud2 topics {clouds}: choose one with --topic" if clouds
            else "bag has no sensor_msgs/msg/PointCloud2 topic"
        )
    return clouds[0]


def iter_messages(reader: Reader, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """Messages of ``topics`` (all when None) in time order."""
    wanted = None if topics is None else set(topics)
    conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
    for conn, timestamp, raw in reader.messages(connections=conns):
        yield BagMessage(conn.topic, conn.msgtype, int(timestamp), raw, conn)


def _msg_search_roots() -> list[Path]:
    roots = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    roots.append(Path(sys.prefix))  # ROS from PyPI installs share/<pkg>/msg into the environment
    return roots


def _register_from_msg_file(typestore: Any, msgtype: str) -> None:
    pkg, kind, name = msgtype.split("/")
    for root in _msg_search_roots():
        path = root / "share" / pkg / kind / f"{name}.msg"
        if path.is_file():
            typestore.register(get_types_from_msg(path.read_text(), msgtype))
            return
    raise BagError(f"message type {msgtype} is unknown to rosbags and no {pkg}/{kind}/{name}.msg is installed")


def ensure_type(typestore: Any, msgtype: str) -> None:
    """Make ``typestore`` know ``msgtype`` and everything it uses, from installed .msg files if needed."""
    for _ in range(500):  # one registration per missing type; the bound only guards against a loop
        if msgtype not in typestore.fielddefs:
            _register_from_msg_file(typestore, msgtype)
            continue
        try:
            typestore.generate_msgdef(msgtype, ros_version=2)
            return
        except TypesysError as exc:
            missing = re.search(r"Type '([^']+)' is unknown", str(exc))
            if not missing:
                raise
            _register_from_msg_file(typestore, missing.group(1))
    raise BagError(f"could not resolve the definition of {msgtype}")


class BagWriter:
    """Write rclpy messages (or raw CDR) into a new rosbag2. Use as a context manager.

    storage: "sqlite3" or "mcap". Topics are added on first write, with the definition of their type.
    """

    def __init__(self, path: str | Path, storage: str = "sqlite3") -> None:
        if storage not in STORAGES:
            raise BagError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        path = Path(path)
        if path.exists():
            raise BagError(f"output {path} already exists: choose a new path (rosbag2 writes a new directory)")
        self.path = path
        self._typestore = get_typestore(Stores.LATEST)
        self._writer = Writer(path, version=8, storage_plugin=STORAGES[storage])
        self._connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()

    def add_topic(self, topic: str, msgtype: str, like: Connection | None = None) -> Connection:
        """Register ``topic``; ``like``: copy definition and hash from an input bag's connection."""
        if topic in self._connections:
            return self._connections[topic]
        if like is not None and like.msgdef and like.msgdef.data and like.digest:
            conn = self._writer.add_connection(topic, msgtype, msgdef=like.msgdef.data, rihs01=like.digest)
        else:
            ensure_type(self._typestore, msgtype)
            conn = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
        self._connections[topic] = conn
        self.counts[topic] = 0
        return conn

    def write(self, topic: str, timestamp_ns: int, msg: Any, msgtype: str | None = None,
              like: Connection | None = None) -> None:
        """Write an rclpy message, or CDR ``bytes`` together with their ``msgtype``."""
        if isinstance(msg, (bytes, bytearray, memoryview)):
            if msgtype is None:
                raise ValueError("raw bytes need their msgtype")
            raw = bytes(msg)
        else:
            msgtype = msgtype or _msgtype_of(msg)
            raw = serialize_message(msg)
        conn = self.add_topic(topic, msgtype, like)
        self._writer.write(conn, int(timestamp_ns), raw)
        self.counts[topic] += 1


def _msgtype_of(msg: Any) -> str:
    """rclpy message -> "pkg/msg/Name"."""
    module = type(msg).__module__.split(".")  # e.g. sensor_msgs.msg._point_cloud2
    return f"{module[0]}/msg/{type(msg).__name__}"
