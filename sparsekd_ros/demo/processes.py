"""The demo's ROS processes, started from here without importing ROS: the real ``detector_node`` and
the ROS client (``sparsekd_ros.demo.client``) that replays frames to it and reports its answers.

Both get the same environment: a DDS domain of their own (unless the user picks one to watch with
RViz) and Fast DDS's large-data profile (config/fastdds_large_data.xml), without which best-effort
clouds of a few megabytes rarely cross between processes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["PROFILE_NAME", "dds_profile", "dds_profile_env", "ros_env", "LoggedProcess", "NodeProcess", "DEMO_NODE",
           "client_events"]

PROFILE_NAME = "fastdds_large_data.xml"
#: The demo's node name: its topics are /<name>/markers, so it never collides with a robot's node.
DEMO_NODE = "sparsekd_demo_detector"
_REPO = Path(__file__).resolve().parents[2]


def dds_profile() -> Path | None:
    """config/fastdds_large_data.xml of the source tree, else of the installed ROS package share; None if neither."""
    candidates = [_REPO / "config" / PROFILE_NAME,
                  Path(sys.prefix) / "share" / "sparsekd_ros" / "config" / PROFILE_NAME]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "sparsekd_ros" / "config" / PROFILE_NAME)
    return next((c for c in candidates if c.is_file()), None)


def dds_profile_env(profile: Path) -> dict[str, str]:
    """The variable that makes Fast DDS load ``profile``: Fast DDS 2.x (Humble, Iron, Jazzy) reads FASTRTPS_*,
    3.x (Kilted) FASTDDS_* and warns on the old name. Fast DDS reads it once per process, when the
    first participant is created."""
    old = os.environ.get("ROS_DISTRO", "") in ("humble", "iron", "jazzy")
    return {("FASTRTPS" if old else "FASTDDS") + "_DEFAULT_PROFILES_FILE": str(profile)}


def ros_env(domain_id: int | None, profile: Path | None) -> dict[str, str]:
    """The environment of the node and the client.

    domain_id None: a private domain (from this process id) with localhost-only discovery, so the demo
    neither disturbs nor hears a running robot; a number: that domain, with the user's discovery settings.
    """
    env = dict(os.environ)
    if domain_id is None:
        env["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    else:
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    if profile is not None:
        env.update(dds_profile_env(profile))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p)
    env.update(PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    return env


class LoggedProcess:
    """A subprocess whose stdout and stderr go to ``log_path``: read its log, wait for a line, Ctrl-C it.
    Shared by the demo's node and the ROS tests' processes."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path = _REPO):
        self.command = cmd
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float, tick: Callable[[], None] | None = None) -> bool:
        """True once ``text`` is in the log; False on timeout or when the process exits without it."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                return text in self.log()
            if tick:
                tick()
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGINT) -> int:
        """Ctrl-C the process (or send ``sig``; the node exits 0 on SIGINT and SIGTERM) and return its exit
        code; killed if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


class NodeProcess(LoggedProcess):
    """``python -m sparsekd_ros.detector_node`` with the demo's parameters, its output in ``log_path``."""

    READY = "listening on"  # the node logs this once it is subscribed (after loading and warming up)

    def __init__(self, checkpoint: Path, topic: str, score_threshold: float, env: dict[str, str], log_path: Path,
                 warmup_runs: int = 1, device: str = "cpu"):
        params = {"model": str(checkpoint), "device": device, "input_topic": topic, "score_threshold": score_threshold,
                  "warmup_runs": warmup_runs, "log_period": 0.0, "diagnostics_period": 1.0}
        cmd = [sys.executable, "-m", "sparsekd_ros.detector_node", "--ros-args", "-r", f"__node:={DEMO_NODE}"]
        for key, value in params.items():
            cmd += ["-p", f"{key}:={value}"]
        super().__init__(cmd, env, log_path)

    @property
    def markers_topic(self) -> str:
        return f"/{DEMO_NODE}/markers"

    def wait_ready(self, timeout: float, tick: Callable[[], None] | None = None) -> bool:
        """True once the node logs that it listens; False on timeout or when it exits first."""
        return self.wait_for_log(self.READY, timeout, tick)


def client_events(manifest: Path, topic: str, markers_topic: str, env: dict[str, str], log_path: Path,
                  rate_hz: float = 10.0, bag: Path | None = None, wait_s: float = 60.0,
                  drain_s: float = 15.0) -> Iterator[dict[str, Any]]:
    """Run the ROS client and yield its JSON events as they come; the last one is
    ``{"event": "exit", "code": N}``. Its log (stderr) goes to ``log_path``."""
    cmd = [sys.executable, "-m", "sparsekd_ros.demo.client", "--manifest", str(manifest), "--topic", topic,
           "--markers-topic", markers_topic, "--rate-hz", str(rate_hz), "--wait", str(wait_s), "--drain", str(drain_s)]
    if bag is not None:
        cmd += ["--bag", str(bag)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, cwd=_REPO, text=True, bufsize=1)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.strip()
                if not line.startswith("{"):
                    log.write(line + "\n")  # anything else a library printed
                    continue
                yield json.loads(line)
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    yield {"event": "exit", "code": int(code)}
