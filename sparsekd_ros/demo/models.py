"""Which checkpoints the demo runs: the bundled student (and teacher), or an untrained stand-in.

A zoo name resolves to its bundled checkpoint (sparsekd_core/assets/checkpoints/<name>.pth). When
none is bundled yet, the student becomes an *untrained* checkpoint of the architecture the bundled
one will have (the CPU-feasible ``_sim`` variant that is trained on simulated scenes), written into
the demo's output folder and announced loudly: its boxes come from random weights. A teacher is
never faked: without a bundled (or given) teacher, or its AP recorded on the very same drive, its AP is simply not
reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sparsekd_core.checkpoint import CheckpointError, read_checkpoint, write_untrained_checkpoint
from sparsekd_core.config import SIM_SUFFIXES, list_models, split_sim_suffix, zoo_teacher
from sparsekd_core import inference

__all__ = ["DemoModel", "stand_in_architecture", "teacher_of", "resolve_student", "resolve_teacher",
           "recorded_teacher_scores", "choose_teacher", "untrained_banner"]

#: Why the recorded teacher AP is not shown: it belongs to another drive.
OTHER_DRIVE_NOTE = ("the teacher's AP recorded when the student was bundled is from another drive (other frames, seed, "
                    "threshold or simulator streets version), so it is not shown; pass --teacher PATH to compare")


@dataclass(frozen=True)
class DemoModel:
    """A checkpoint the demo runs.

    name: what was asked for (zoo name or path). path: the checkpoint file. source: "bundled",
    "file" or "untrained stand-in". architecture: the model config inside the checkpoint.
    untrained: the checkpoint holds random weights (its meta says so).
    """

    name: str
    path: Path
    source: str
    architecture: str
    untrained: bool

    @property
    def label(self) -> str:
        """Short name for tables: the zoo name, or for a file its architecture and file name."""
        return self.name if self.source != "file" else f"{self.architecture} ({self.path.name})"

    def describe(self) -> str:
        kind = "UNTRAINED stand-in" if self.untrained else self.source
        return f"{self.name} ({kind}, architecture {self.architecture}, {self.path})"


def stand_in_architecture(name: str) -> str:
    """The architecture a bundled ``name`` is trained as: its simulated variant when the zoo has one (the
    360-degree ``_sim360`` before the ``_sim`` one), else ``name`` itself."""
    if split_sim_suffix(name)[1]:
        return name
    return next((name + s for s in SIM_SUFFIXES if name + s in list_models()), name)


def teacher_of(student: str) -> str | None:
    """The zoo teacher a student is distilled from (config.zoo_teacher); None for a teacher or an unknown name."""
    return zoo_teacher(student)


def _described(name: str, path: Path, source: str) -> DemoModel:
    payload = read_checkpoint(path)
    meta = payload.get("meta", {}) or {}
    return DemoModel(name, path, source, str(payload["config"].get("name", "?")), bool(meta.get("untrained")))


def _source(path: Path) -> str:
    return "bundled" if path.resolve().parent == inference.BUNDLED_DIR.resolve() else "file"


def resolve_student(name: str, workdir: Path) -> DemoModel:
    """The bundled checkpoint or file ``name``; for a zoo name without one, an untrained stand-in
    written to ``workdir/<name>_UNTRAINED.pth``. CheckpointError for anything else."""
    try:
        path = inference.resolve_checkpoint(name)
    except CheckpointError:
        if name not in list_models():
            raise
        arch = stand_in_architecture(name)
        workdir.mkdir(parents=True, exist_ok=True)
        path = write_untrained_checkpoint(arch, workdir / f"{name}_UNTRAINED.pth", seed=0)
        return DemoModel(name, path, "untrained stand-in", arch, True)
    return _described(name, Path(path), _source(Path(path)))


def resolve_teacher(name: str | None, student: DemoModel) -> tuple[DemoModel | None, str]:
    """(teacher, why) for ``--teacher``: "auto" = the student's zoo teacher if its checkpoint is bundled;
    "none" = no teacher; else a zoo name or .pth path that must exist. Never an untrained stand-in."""
    if name in (None, "none", ""):
        return None, "no teacher asked for (--teacher none)"
    if name == "auto":
        zoo = teacher_of(student.architecture) or teacher_of(student.name)
        if zoo is None:
            return None, f"{student.architecture} has no zoo teacher"
        for candidate in dict.fromkeys([zoo, split_sim_suffix(zoo)[0]]):
            try:
                path = Path(inference.resolve_checkpoint(candidate))
                return _described(candidate, path, _source(path)), ""
            except CheckpointError:
                continue
        return None, f"no trained checkpoint of the teacher {zoo} is bundled (pass --teacher PATH to compare)"
    path = Path(inference.resolve_checkpoint(name))
    return _described(name, path, _source(path)), ""


def recorded_teacher_scores(meta: dict):
    """For a bundled student whose teacher is not shipped, from its checkpoint's ``meta``: a function of the
    demo's drive key that returns the teacher's DriveScores recorded at bundling time
    (sparsekd_ros/demo/bundle.py) when they were measured on that same drive, simulator and threshold, else None.
    None when the checkpoint recorded nothing. Drives recorded before the key had a simulator version were made by
    version 1 (sparsekd_core/data/sim/version.py)."""
    from sparsekd_ros.demo.evaluate import DriveScores

    recorded = (meta or {}).get("demo_teacher")
    if not recorded:
        return None

    def lookup(key: dict):
        if {"streets_version": 1, **recorded.get("drive", {})} != key:
            return None
        return DriveScores.from_dict({**recorded["scores"], "model": f"{recorded.get('model', 'teacher')} (recorded)"})
    return lookup


def choose_teacher(name: str | None, student: DemoModel, meta: dict, drive: dict):
    """(teacher to run, teacher scores recorded, note) for ``--teacher``.

    "auto" takes the teacher's AP recorded in the student's checkpoint when it was measured on ``drive`` (a
    bundle.drive_key: the same simulated frames, scored frames and threshold), so that no teacher runs: the
    figure is the one a run would print, and running the teacher over the drive was the demo's longest step
    (130 s of its 310 s on 2 cores, session 54). Without such a record "auto" runs the student's bundled zoo
    teacher; a name or path always runs that teacher."""
    lookup = recorded_teacher_scores(meta) if name == "auto" else None
    recorded = lookup(drive) if lookup is not None else None
    if recorded is not None:
        return None, recorded, ""
    teacher, note = resolve_teacher(name, student)
    if teacher is None and lookup is not None:
        note = OTHER_DRIVE_NOTE
    return teacher, None, note


def untrained_banner(model: DemoModel) -> str:
    """The warning printed before anything else when the student holds random weights."""
    bar = "!" * 92
    lines = [
        bar,
        f"!! NO TRAINED CHECKPOINT IS BUNDLED FOR {model.name}: THIS DEMO RUNS AN UNTRAINED STAND-IN",
        f"!! ({model.architecture} with RANDOM weights, {model.path}).",
        "!! Every box it shows comes from random weights: the run proves the pipeline (simulated drive",
        "!! -> PointCloud2 -> detector_node -> markers, timings, AP, pictures, bag), not detection quality.",
        f"!! Bundle a distilled student as sparsekd_core/assets/checkpoints/{model.name}.pth, or pass",
        "!! --model PATH.pth (sparsekd-train writes them), to see real detections.",
        bar,
    ]
    return "\n".join(lines)
