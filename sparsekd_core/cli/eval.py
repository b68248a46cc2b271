"""``sparsekd-eval``: run a checkpoint over a dataset split and report the official metrics.

Reads the cached infos that ``sparsekd-data`` wrote under ROOT/sparsekd_infos/, runs the detector
on every frame (progress bar), then prints KITTI AP (R40/R11, BEV/3D/2D/AOS), Waymo AP/APH
(LEVEL_1/LEVEL_2, by range) and recall at IoU 0.3/0.5/0.7, and writes them all as JSON.
``--gt-as-predictions`` skips the detector and scores the ground truth itself (score 1): the
metrics' self-check, which gives 100 wherever the official definitions allow it.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from sparsekd_core.cli.own_vehicle_option import add_own_vehicle_option, own_vehicle_from
from sparsekd_core.cli.clear_overhead_option import add_clear_overhead_option, apply_clear_overhead
from sparsekd_core.cli.square_footprint_option import add_square_footprint_option, apply_square_footprint
from sparsekd_core.cli.tta_flip_option import add_tta_flip_option, apply_tta_flip
from sparsekd_core.cli.view_turn_option import add_view_turn_option, apply_view_turn
from sparsekd_core.data.infos import INFOS_DIR, FrameInfo, infos_path, load_points, load_split, loaded_features
from sparsekd_core.data.nuscenes_format import NUSCENES_CLASSES
from sparsekd_core.eval.annotations import gt_annos_for, predictions_from_detections, predictions_from_gt
from sparsekd_core.eval.bootstrap import bootstrap_kitti
from sparsekd_core.eval.kitti import N_SAMPLE_PTS, kitti_counts, kitti_eval, kitti_eval_uncapped
from sparsekd_core.eval.operating_point import (best_thresholds, class_thresholds_text, operating_points,
                                                operating_table, threshold_grid)
from sparsekd_core.eval.recall import recall_eval
from sparsekd_core.eval.report import to_jsonable
from sparsekd_core.eval.waymo import waymo_eval

log = logging.getLogger("sparsekd-eval")

DEFAULT_CLASSES = {"kitti": ("Car", "Pedestrian", "Cyclist"), "waymo": ("Vehicle", "Pedestrian", "Cyclist"),
                   "nuscenes": NUSCENES_CLASSES}

EPILOG = f"""\
inputs:
  --dataset ROOT is a dataset root prepared by sparsekd-data: ROOT/{INFOS_DIR}/<kitti|waymo>_infos_<split>.pkl
  plus the point files they point to. The layout (kitti or waymo) is detected from which infos exist.

metrics:
  kitti   AP with 40 recall positions (R40, default) and 11 (R11), easy/moderate/hard, BEV/3D/2D bbox/AOS,
          IoU 0.7 Car, 0.5 Pedestrian/Cyclist, the devkit's ignore rules (DontCare, Van for Car,
          Person_sitting for Pedestrian, minimum 2D heights). Needs KITTI-format data (2D boxes, calib).
  waymo   AP and APH (heading-weighted) at LEVEL_1 and LEVEL_2, IoU 0.7/0.5/0.5 on 3D boxes, Hungarian
          matching per frame, breakdown by range 0-30/30-50/50+ m. Works on either layout.
  both    both of the above (KITTI-format data only).
  nuscenes  the nuScenes detection score by the official devkit's own evaluation: mAP (centre distance
          0.5/1/2/4 m), the TP errors mATE/mASE/mAOE/mAVE/mAAE and NDS, per class and overall, on a whole split
          of a root prepared by `sparsekd-data nuscenes` (the devkit reads the ground truth from the tables).
          Boxes go to the global frame with the sensor calibration and ego pose; the attribute of each box is
          guessed from its class and speed as CenterPoint's submissions do (> 0.2 m/s moving).
  Recall at IoU 0.3/0.5/0.7 (3D and BEV) is always reported.

conventions (the official tools' values where a number could be undefined):
  - A class with no ground truth in the split (kitti: no valid one at a difficulty) prints 0.00, as the
    KITTI devkit and Waymo's metrics op both print it; it is left out of the means (mAP, mAPH, mean AP).
  - waymo, a class with only LEVEL_2 ground truth: LEVEL_1 still matches those objects but never counts
    them as missed, so its LEVEL_1 AP is the best precision at the score cutoffs where a prediction
    matches one (100.00 when the predictions are right, 0.00 when none matches), as the official op.
  - waymo scores are compared with the cutoffs 0.00, 0.01, ..., 1.00 in float32 with >=, as the official
    op: a score of exactly 0.35 counts at cutoff 0.35.
  - kitti: a detection whose 2D box is lower than a difficulty's minimum height is ignored at that
    difficulty whatever its class, and can still take a ground truth it overlaps (the devkit's rule):
    a too-small Pedestrian detection that outscores the Cyclist detection of the same cyclist leaves
    that cyclist without a true positive at easy.
  - recall at IoU 0.3/0.5/0.7 has no official counterpart: '-' where a class has no ground truth.

note on small sets: KITTI's official R40 samples recall at 41 positions by walking the true
positives, so a class/difficulty with n < 41 valid ground truths cannot reach 100 even when
every object is found (the cap is 100 (n - 1) / 40). The table lists the counts, and a second table
scores the frames repeated until every class holds 41 (the same precision-recall curve, no cap: the JSON's
"kitti_uncapped", with its "repeats"), which estimates what a large set of such frames would score.

examples:
  sparsekd-eval --checkpoint runs/cp_voxel_s/last.pth --dataset data/sim_waymo --json eval.json
  sparsekd-eval --checkpoint kitti_cp_voxel_s --dataset data/kitti --split val --metric kitti --recall-points 11
  sparsekd-eval --dataset data/sim_kitti --gt-as-predictions          # metric self-check: 100 AP
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sparsekd-eval",
        description="Evaluate a detector checkpoint on a KITTI- or Waymo-format dataset split with the "
                    "benchmarks' own metrics; print the tables and write JSON.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", metavar="C",
                   help="checkpoint .pth or a zoo name with bundled weights (not needed with --gt-as-predictions)")
    p.add_argument("--dataset", required=True, metavar="ROOT", help="dataset root prepared by sparsekd-data")
    p.add_argument("--split", default="val", help="split to evaluate (default: val)")
    p.add_argument("--format", choices=("auto", "kitti", "waymo", "nuscenes"), default="auto",
                   help="dataset layout; auto picks the one whose infos exist for the split (default: auto)")
    p.add_argument("--metric", choices=("kitti", "waymo", "both", "nuscenes"), default=None,
                   help="metric(s) to compute (default: the dataset's own: kitti for KITTI, waymo for Waymo, "
                        "nuscenes for nuScenes)")
    p.add_argument("--json", metavar="OUT", help="write every number (and the printed tables) to this JSON file")
    p.add_argument("--gt-as-predictions", action="store_true",
                   help="score the ground truth itself as predictions (score 1): the metrics' self-check")
    p.add_argument("--all-objects", action="store_true",
                   help="score every labelled object; by default objects centred outside the model's "
                        "point_cloud_range are DontCare (a model is scored on the area it sees)")
    p.add_argument("--classes", nargs="+", metavar="NAME",
                   help="classes to evaluate (default: the checkpoint's; with --gt-as-predictions the "
                        "benchmark's: Car/Pedestrian/Cyclist or Vehicle/Pedestrian/Cyclist)")
    p.add_argument("--recall-points", type=int, choices=(40, 11), default=40,
                   help="KITTI AP summary/table: R40 (default) or R11; both are in the JSON")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    p.add_argument("--fp16", action="store_true", help="half-precision inference on CUDA")
    p.add_argument("--batch-size", type=int, default=1, help="frames per detector call (default: 1)")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="override the checkpoint's score threshold (lower keeps more boxes for the PR curve)")
    add_own_vehicle_option(p)
    p.add_argument("--min-points", type=int, default=None, metavar="N",
                   help="drop boxes holding fewer than N LiDAR returns (default: the checkpoint's "
                        "head.post.min_points; 0 keeps every box)")
    add_square_footprint_option(p)
    add_clear_overhead_option(p)
    add_tta_flip_option(p)
    add_view_turn_option(p)
    p.add_argument("--operating-points", nargs=3, type=float, default=None, metavar=("LOW", "HIGH", "STEP"),
                   help="also print precision, recall and F1 per class at the score thresholds LOW, LOW+STEP, ... "
                        "HIGH (KITTI matching, BEV, moderate) and the best-F1 threshold of each class as a "
                        "class_score_thresholds value for the node (e.g. 0.3 0.8 0.05; choose it on validation "
                        "frames like the robot's, not on those you report). Needs KITTI-format data and "
                        "--score-threshold at or below LOW")
    p.add_argument("--record-operating-points", default=None, metavar="OUT",
                   help="with --operating-points: write the checkpoint to OUT (may be the checkpoint itself) with "
                        "the best-F1 thresholds recorded as its operating point (head.post.operating_thresholds), "
                        "which the node, sparsekd-detect, sparsekd-bag-detect and sparsekd-gap then use by default")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="evaluate only the first N frames")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="KITTI: also score N draws of the frames with replacement and print the median and central "
                        "90%% of each BEV and 3D AP (every class and difficulty; uncapped where the set is small): how "
                        "far a figure on few frames can move with the frames alone (eval/bootstrap.py; e.g. 500; "
                        "0 = off)")
    p.add_argument("--bootstrap-against", default=None, metavar="C2",
                   help="with --bootstrap: also run checkpoint C2 (same settings, scored on --checkpoint's area) and "
                        "score it on the same draws: the interval of the difference and the share of draws in which "
                        "--checkpoint scores higher (a paired bootstrap, for choosing between two models)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def detect_format(root: Path, split: str) -> str:
    """'kitti', 'waymo' or 'nuscenes': the layout whose infos exist for ``split`` under ``root``."""
    found = [d for d in ("kitti", "waymo", "nuscenes") if infos_path(root, d, split).is_file()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise FileNotFoundError(
            f"no infos for split '{split}' under {root / INFOS_DIR}: run `sparsekd-data kitti|waymo|nuscenes "
            f"--root {root} --splits {split}` first (or pick another --split)")
    raise ValueError(f"{root} has infos of several layouts ({', '.join(found)}) for split '{split}': choose one "
                     "with --format")


def feature_columns(have: Sequence[str], want: Sequence[str]) -> list[int]:
    """Indices of the model's input columns in the dataset's point columns."""
    missing = [f for f in want if f not in have]
    if missing:
        raise ValueError(f"the model needs point features {list(want)} but the dataset provides {list(have)} "
                         f"(missing {missing}): evaluate a model trained on this kind of data")
    return [list(have).index(f) for f in want]


def run_detector(args: argparse.Namespace, infos: Sequence[FrameInfo], root: Path,
                 checkpoint: str | None = None) -> tuple[list[dict], dict, Any]:
    """Predictions for every frame, plus timing and the detector (``checkpoint``: another than --checkpoint, with
    the same settings)."""
    from sparsekd_core.inference import load_detector

    det = load_detector(checkpoint or args.checkpoint, device=args.device, fp16=args.fp16)
    if args.score_threshold is not None:
        det.score_threshold = float(args.score_threshold)
    if args.min_points is not None:
        det.min_points = args.min_points
    det.own_vehicle = own_vehicle_from(args)
    apply_square_footprint(det, args.square_footprint)
    apply_clear_overhead(det, args.clear_overhead)
    apply_tta_flip(det, args.tta_flip)
    apply_view_turn(det, args.view_turn)
    preds: list[dict] = []
    seconds = {"load": 0.0, "preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
    bar = tqdm(total=len(infos), desc=f"detect {det.name}", unit="frame", disable=args.quiet)
    for start in range(0, len(infos), max(1, args.batch_size)):
        batch = infos[start:start + max(1, args.batch_size)]
        t = time.perf_counter()
        clouds = []
        for info in batch:
            pts = load_points(info, root, det.cfg.sweeps)  # a multi-sweep model: with its earlier sweeps
            columns = loaded_features(info, det.cfg.sweeps)
            clouds.append(np.ascontiguousarray(pts[:, feature_columns(columns, det.point_features)]))
        seconds["load"] += time.perf_counter() - t
        for info, d in zip(batch, det.detect_batch(clouds)):
            preds.append(predictions_from_detections(info, d.boxes, d.scores, d.names, d.velocities))
        for k, v in det.last_timings.items():
            seconds[k] = seconds.get(k, 0.0) + v
        bar.update(len(batch))
    bar.close()
    return preds, seconds, det


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.checkpoint and not args.gt_as_predictions:
        print("sparsekd-eval: give --checkpoint (or --gt-as-predictions to check the metrics on ground truth)",
              file=sys.stderr)
        return 2
    if args.record_operating_points and args.operating_points is None:
        print("sparsekd-eval: --record-operating-points records what --operating-points LOW HIGH STEP chooses: "
              "give both", file=sys.stderr)
        return 2
    if args.batch_size < 1 or (args.max_frames is not None and args.max_frames < 1):
        print("sparsekd-eval: --batch-size and --max-frames must be >= 1", file=sys.stderr)
        return 2
    if args.bootstrap < 0:
        print("sparsekd-eval: --bootstrap N draws N resamples (0 = off), not a negative number", file=sys.stderr)
        return 2
    root = Path(args.dataset)
    try:
        dataset = detect_format(root, args.split) if args.format == "auto" else args.format
        metric = args.metric or dataset
        if metric in ("kitti", "both") and dataset != "kitti":
            raise ValueError("the KITTI metric needs KITTI-format data (2D boxes, occlusion, truncation); "
                             "use --metric waymo on Waymo-format data")
        if args.bootstrap and metric not in ("kitti", "both"):
            raise ValueError(f"--bootstrap resamples the KITTI metric; this run scores {metric} (--metric kitti)")
        if args.bootstrap_against and (not args.bootstrap or args.gt_as_predictions):
            raise ValueError("--bootstrap-against C2 compares C2 with --checkpoint on the draws of --bootstrap N: "
                             "give both, and a --checkpoint")
        if (metric == "nuscenes") != (dataset == "nuscenes"):
            raise ValueError("the nuScenes metric scores nuScenes data only, and nuScenes data is scored with it: "
                             "use --metric nuscenes exactly when the dataset is nuScenes")
        if metric == "nuscenes" and args.max_frames is not None:
            raise ValueError("the nuScenes devkit scores whole splits: drop --max-frames")
        infos = load_split(root, dataset, args.split)
        if args.max_frames is not None:
            infos = infos[: args.max_frames]
        if not infos:
            raise ValueError(f"split '{args.split}' of {root} has no frames")

        start = time.perf_counter()
        timing: dict[str, Any] = {}
        model_info: dict[str, Any] = {}
        if args.gt_as_predictions:
            classes = tuple(args.classes or DEFAULT_CLASSES[dataset])
            dt_annos = [predictions_from_gt(i, classes) for i in infos]
        else:
            dt_annos, timing, det = run_detector(args, infos, root)
            classes = tuple(args.classes or det.class_names)
            model_info = {"name": det.name, "class_names": list(det.class_names),
                          "point_features": list(det.point_features), "score_threshold": det.score_threshold,
                          "min_points": det.min_points, "square_footprint": list(det.square_footprint),
                          "clear_overhead": list(det.clear_overhead),
                          "tta_flip": det.tta_flip,
                          "own_vehicle": None if det.own_vehicle is None else det.own_vehicle.as_list(),
                          "device": str(det.device)}
        bev_range = None if args.gt_as_predictions or args.all_objects else det.point_cloud_range
        gt_annos = [gt_annos_for(i, dataset, bev_range) for i in infos]
        present = set(np.concatenate([i.annos.names for i in infos]).tolist())
        absent = [c for c in classes if c not in present]
        if absent and dataset == "nuscenes":
            log.warning("no ground truth of class(es) %s in this split: the devkit gives them AP 0 and TP errors 1, "
                        "and its mAP and NDS average over all 10 classes", absent)
        elif absent:
            log.warning("no ground truth of class(es) %s in this split: their AP prints 0.00 as the official "
                        "tools print it, and the means leave them out", absent)

        report: dict[str, Any] = {
            "checkpoint": args.checkpoint, "model": model_info, "dataset": str(root), "format": dataset,
            "split": args.split, "num_frames": len(infos), "gt_as_predictions": args.gt_as_predictions,
            "classes": list(classes),
            "scored_area": "all labelled objects" if bev_range is None else
            f"objects centred in the model's range x {bev_range[0]:g}..{bev_range[3]:g} m, "
            f"y {bev_range[1]:g}..{bev_range[4]:g} m (--all-objects scores every labelled object)",
        }
        tables = []
        eval_start = time.perf_counter()
        if metric in ("kitti", "both"):
            r = kitti_eval(gt_annos, dt_annos, classes=classes, metrics=("bbox", "bev", "3d", "aos"),
                           recall_points=args.recall_points)
            report["kitti"] = r
            tables.append(r["table"])
            small = sorted({f"{c} {d} ({n})" for c, per in r["num_gt"].items() for d, n in per.items()
                            if 0 < n < N_SAMPLE_PTS})
            if small:
                tables.append("note: fewer than 41 valid ground truths, so AP R40 is capped below 100 by the "
                              "official recall sampling: " + ", ".join(small))
                uncapped = kitti_eval_uncapped(gt_annos, dt_annos, num_gt=r["num_gt"], classes=classes,
                                               metrics=("bbox", "bev", "3d", "aos"),
                                               recall_points=args.recall_points)
                report["kitti_uncapped"] = uncapped
                tables.append(uncapped["table"] + "\n(an estimate of what a large set with these frames' objects "
                              "and errors scores: the same precision-recall curve, sampled at all 40 recall "
                              "positions; few objects make it coarse, and the official figures are those above)")
            if args.bootstrap > 0:
                baseline = None
                if args.bootstrap_against:
                    baseline, _, other = run_detector(args, infos, root, checkpoint=args.bootstrap_against)
                    if list(other.class_names) != list(det.class_names):
                        raise ValueError(f"--bootstrap-against {args.bootstrap_against} detects "
                                         f"{list(other.class_names)}, --checkpoint {list(det.class_names)}: compare "
                                         "models of the same classes")
                with tqdm(total=args.bootstrap, desc="bootstrap", unit="draw", disable=args.quiet) as draws:
                    boot = bootstrap_kitti(gt_annos, dt_annos, resamples=args.bootstrap, uncapped=bool(small),
                                           baseline_annos=baseline, on_resample=lambda: draws.update(1),
                                           classes=classes, metrics=("bev", "3d"), recall_points=args.recall_points)
                boot["against"] = args.bootstrap_against
                report["kitti_bootstrap"] = boot
                tables.append(boot["table"])
        if metric == "nuscenes":
            from sparsekd_core.data.nuscenes_infos import dataset_version, load_nuscenes
            from sparsekd_core.eval.nuscenes import nuscenes_eval

            nusc = load_nuscenes(root, dataset_version(root, infos))
            out_dir = Path(args.json).with_suffix("") if args.json else None
            r = nuscenes_eval(nusc, infos, dt_annos, args.split, out_dir)
            report["nuscenes"] = r
            tables.append(r["table"])
        if metric in ("waymo", "both"):
            r = waymo_eval(gt_annos, dt_annos, classes=classes)
            report["waymo"] = r
            tables.append(r["table"])
        if args.operating_points is not None:
            if dataset != "kitti" or args.gt_as_predictions:
                raise ValueError("--operating-points needs a detector on KITTI-format data (it counts by the "
                                 "KITTI matching)")
            grid = threshold_grid(*args.operating_points)
            if det.score_threshold > grid[0] + 1e-9:
                raise ValueError(f"--operating-points starts at {grid[0]:g} but the detector keeps boxes from "
                                 f"{det.score_threshold:g} only: give --score-threshold {grid[0]:g} or lower")
            points = operating_points(kitti_counts(gt_annos, dt_annos, grid, classes=classes), grid)
            report["operating_points"] = {
                "matching": "KITTI BEV, moderate", "thresholds": grid.tolist(),
                "per_class": {c: [p.as_dict() for p in pts] for c, pts in points.items()},
                "class_score_thresholds": class_thresholds_text(points)}
            if args.record_operating_points:
                from sparsekd_core.checkpoint import record_operating_thresholds
                from sparsekd_core.inference import resolve_checkpoint

                note = (f"best F1 per class (KITTI BEV matching, moderate) over score thresholds "
                        f"{grid[0]:g}..{grid[-1]:g} "
                        f"on {len(infos)} frames of {root} {args.split} (sparsekd-eval --operating-points)")
                written = record_operating_thresholds(resolve_checkpoint(args.checkpoint),
                                                      args.record_operating_points, best_thresholds(points),
                                                      note)
                report["operating_points"]["recorded_in"] = str(written)
            tables.append("operating points (KITTI BEV matching, moderate):\n" + operating_table(points)
                          + f"\nbest F1 as the node's class_score_thresholds: "
                          f"{report['operating_points']['class_score_thresholds'] or '(none)'}"
                          + (f"\nrecorded as the operating point of {report['operating_points']['recorded_in']}"
                             if "recorded_in" in report["operating_points"] else ""))
        r = recall_eval(gt_annos, dt_annos, classes=classes)
        report["recall"] = r
        tables.append(r["table"])
        timing["metrics_s"] = time.perf_counter() - eval_start
        timing["total_s"] = time.perf_counter() - start
        report["timing_s"] = timing
    except (FileNotFoundError, ValueError, KeyError, ImportError) as err:
        print(f"sparsekd-eval: {err}", file=sys.stderr)
        return 1

    title = "ground truth as predictions" if args.gt_as_predictions else (model_info.get("name") or args.checkpoint)
    print(f"\n{title} on {root} [{dataset} {args.split}, {len(infos)} frames; {report['scored_area']}]\n")
    print("\n\n".join(tables))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(to_jsonable(report), indent=1))
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
