"""Making a bundled checkpoint: a trained student (or a teacher that fits the cap) shipped in the package, which
the node, the demo, ``sparsekd-detect`` and ``sparsekd-train --teacher/--pretrained`` load by zoo name
(``sparsekd_core/assets/checkpoints/<zoo>.pth``).

    python -m sparsekd_ros.demo.bundle runs/sim/voxel_sparsekd_s0 --as cp_voxel_s \\
        --teacher runs/sim/voxel_teacher/final.pth

writes the run's final weights in fp16, deflated (the package allows at most 10 MB per model) with a meta block that
says where they come from: ``provenance`` (the sentence the node logs at startup and the demo prints),
``training`` (the run's settings and metrics from its summary.json) and, with ``--teacher``, ``demo_teacher``:
the teacher's AP on the demo's default drive, measured here with the demo's own scoring, so that ``make demo``
shows it beside the student's even when the teacher's weights are not shipped (a full-width voxel teacher is
too big; a pillar teacher differs from its students by its grid, not its width, and fits).

The weights keep the operating point (the per-class thresholds the node publishes at) their checkpoint carries, if
any, with its other publishing settings (head.post). A run's final.pth carries none: record one on
validation frames that no bundled model trained on, as the shipped ones were (docs/results.md "What fires on real
streets"), e.g. ``sparsekd-eval --checkpoint cp_voxel_s --dataset data/sim32/kitti --operating-points 0.3 0.8 0.05
--record-operating-points sparsekd_core/assets/checkpoints/cp_voxel_s.pth``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from sparsekd_core.checkpoint import CheckpointError, deflate_checkpoint, load_model, read_checkpoint, save_checkpoint
from sparsekd_core.data.sim.version import STREETS_VERSION

__all__ = ["DEMO_DRIVE", "provenance_text", "drive_key", "bundle", "main"]

#: The drive ``make demo`` scores by default (its --frames, --seed; every frame scored when no teacher runs).
DEMO_DRIVE = {"frames": 100, "seed": 1, "eval_stride": 1}

#: What a bundled checkpoint keeps of its run's summary.json.
TRAINING_KEYS = ("model", "kd", "teacher", "pretrained", "data", "train_frames", "epochs", "batch_size", "steps",
                 "seed", "device", "train_time_s", "step_time_s", "metrics")

#: Size cap of a bundled model (the demo issue: "each at most 10 MB").
MAX_BYTES = 10_000_000


def provenance_text(model: str, kd: str, teacher: str | None, frames: int,
                    averaged_with: list[str] | None = None) -> str:
    """One plain sentence on what the weights are and are not for (``averaged_with``: the other ingredients of a
    ``sparsekd-soup`` whose trained ingredient this run is)."""
    how = f"distilled with {kd} from a {teacher} teacher" if teacher else "trained without a teacher"
    if averaged_with:
        how += f", then averaged 1:1 with {', '.join(averaged_with)} (a model soup)"
    return (f"{model} weights trained on {frames} simulated LiDAR frames (sparsekd-sim street scenes), {how}: "
            "for the demo and for trying the pipeline on a robot; real roads need a model trained on KITTI or "
            "Waymo (README: 'Train and distil your own student').")


def drive_key(frames: int, seed: int, eval_stride: int, score_threshold: float,
              streets_version: int = STREETS_VERSION) -> dict:
    """What makes two demo scores comparable: the same drive from the same simulator, the same frames scored, the
    same threshold."""
    return {"frames": int(frames), "seed": int(seed), "eval_stride": int(eval_stride),
            "score_threshold": round(float(score_threshold), 6), "streets_version": int(streets_version)}


def _teacher_on_demo_drive(teacher: Path, score_threshold: float, device: str, workers: int) -> dict:
    from sparsekd_ros.demo.drive import simulate_drive
    from sparsekd_ros.demo.evaluate import detect_files, score_drive
    from sparsekd_core.inference import Detector

    det = Detector.from_checkpoint(teacher, device)
    det.score_threshold = score_threshold
    with tempfile.TemporaryDirectory(prefix="sparsekd_bundle_") as tmp:
        drive = simulate_drive(Path(tmp) / "drive", DEMO_DRIVE["frames"], DEMO_DRIVE["seed"], progress=True,
                               workers=workers)
        scored = list(range(0, len(drive), DEMO_DRIVE["eval_stride"]))
        found = detect_files(det, [drive.points[i] for i in scored], f"teacher {teacher.name}", workers=workers)
        scores = score_drive([drive.infos[i] for i in scored], found, det.class_names, det.cfg.name,
                             det.point_cloud_range)
    return {"drive": drive_key(DEMO_DRIVE["frames"], DEMO_DRIVE["seed"], DEMO_DRIVE["eval_stride"], score_threshold),
            "scores": scores.to_dict()}


def bundle(run: Path, zoo_name: str, out: Path | None = None, teacher: Path | None = None,
           device: str = "cpu", workers: int = 2) -> Path:
    """Write ``run``'s final.pth (or a .pth given directly) as the bundled fp16 checkpoint of ``zoo_name``."""
    from sparsekd_core.config import list_models
    from sparsekd_core import inference

    if zoo_name not in list_models():
        raise ValueError(f"'{zoo_name}' is not a zoo model name (the zoo: sparsekd_core/configs/models/*.yaml)")
    ckpt = run / "final.pth" if run.is_dir() else run
    if not ckpt.is_file():
        raise CheckpointError(f"{ckpt} not found: bundle a finished training run (its folder holds final.pth)")
    model, payload = load_model(ckpt, "cpu")
    meta = dict(payload.get("meta") or {})
    # A soup (sparsekd-soup) has no run of its own: its training is that of its ingredient that is a run.
    ingredients = [Path(p) for p in meta.get("soup_of") or []]
    run_ckpt = next((p for p in ingredients if (p.parent / "summary.json").is_file()), ckpt)
    averaged_with = [str(p) for p in ingredients if p != run_ckpt] if ingredients else None
    summary_path = run_ckpt.parent / "summary.json"
    summary: dict[str, Any] = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    kd = str(summary.get("kd") or "none")
    teacher_name = None
    if kd != "none":
        source = teacher or (Path(summary["teacher"]) if summary.get("teacher") else None)
        teacher_name = (str(read_checkpoint(source)["config"].get("name", source.stem))
                        if source is not None and source.is_file() else "teacher")
    meta.setdefault("kd", kd)  # a run's checkpoint says it already; a soup's does not
    meta.setdefault("teacher", summary.get("teacher"))
    meta.update({
        "bundled_as": zoo_name,
        "provenance": provenance_text(model.cfg.name, kd, teacher_name, int(summary.get("train_frames") or 0),
                                      averaged_with),
        "training": {k: summary.get(k) for k in TRAINING_KEYS if k in summary},
    })
    if teacher is not None:
        teacher_model = str(read_checkpoint(teacher)["config"].get("name", teacher.stem))
        meta["demo_teacher"] = {"model": teacher_model,
                                **_teacher_on_demo_drive(teacher, model.cfg.head.post.score_threshold, device,
                                                         workers)}
    out = out or inference.BUNDLED_DIR / f"{zoo_name}.pth"
    save_checkpoint(out, model, meta=meta, fp16=True)
    deflate_checkpoint(out)
    size = out.stat().st_size
    if size > MAX_BYTES:
        print(f"warning: {out} is {size / 1e6:.2f} MB, over the {MAX_BYTES / 1e6:.0f} MB a bundled model may take",
              file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sparsekd_ros.demo.bundle", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a finished sparsekd-train run folder (or its final.pth)")
    p.add_argument("--as", dest="zoo_name", required=True, help="zoo name it answers to (e.g. cp_voxel_s)")
    p.add_argument("--teacher", type=Path, default=None,
                   help="the teacher's checkpoint: record its AP on the demo's default drive")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: the package's bundled folder)")
    p.add_argument("--device", default="cpu", help="device for the teacher's run over the drive (default cpu)")
    p.add_argument("--workers", type=int, default=2,
                   help="CPU processes that simulate the drive and run the teacher over it, as the demo's --workers "
                        "(default 2: a voxel model's sparse convolutions use one core per process)")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be >= 1")
    try:
        path = bundle(args.run, args.zoo_name, args.out, args.teacher, args.device, args.workers)
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    payload = read_checkpoint(path)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.2f} MB, fp16, deflated)\n{payload['meta']['provenance']}")
    recorded = ((payload["config"].get("head") or {}).get("post") or {}).get("operating_thresholds")
    if recorded:
        print(f"operating point (kept from the run's checkpoint): {recorded}")
    else:
        print(f"no operating point recorded yet: sparsekd-eval --checkpoint {path} --dataset VAL_ROOT "
              f"--operating-points 0.3 0.8 0.05 --record-operating-points {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
