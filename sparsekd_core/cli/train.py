"""``sparsekd-train``: train a CenterPoint detector, or distil a small student from a trained teacher."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EPILOG = """\
what it does:
  Trains --model on the train split of --data with the reference optimiser (Adam, decoupled weight decay
  0.01, one-cycle lr 0.003 with beta1 0.95..0.85, gradient clip 10; fp16 AMP on CUDA), checkpoints every
  epoch (and every --ckpt-every steps), evaluates on the val split (KITTI AP R40, Waymo mAPH or the nuScenes
  devkit's mAP/NDS, plus recall) every --eval-every epochs and at the end, and writes everything into --out:
    ckpt_e<epoch>_s<step>.pth  resumable training checkpoints (the last --keep-last)
    final.pth                  the trained model (sparsekd-eval, sparsekd-detect and the ROS node load it)
    summary.json               settings, KD recipe, steps, wall/step time, final losses, metrics
    log.jsonl, tensorboard/    curves (tensorboard --logdir OUT)

data:
  --data is a KITTI root (training/velodyne, label_2, calib, ImageSets/), a Waymo root in OpenPCDet's
  processed layout, or a nuScenes root as downloaded (v1.0-mini/ or v1.0-trainval/, samples/, sweeps/).
  Cached infos from `sparsekd-data` are used; missing ones are built on the fly. nuScenes models (nuscenes_*)
  merge 10 sweeps and learn box velocities; augmentation follows OpenPCDet's nuScenes configs (gt-sampling
  with velocities, flips along x and y, rotation, scaling), without its class-balanced resampling (CBGS).

knowledge distillation (--teacher T.pth --kd RECIPE):
  none       the detector's own loss only (default)
  sparsekd   the paper's recipe: logit KD on pivotal positions (foreground + soft mask), regression KD,
             label KD (teacher boxes above 0.6 join the ground truth) and TGI for narrower students
  logit, pivotal, feature, mimic, label, tgi   single methods, composable: --kd logit,label,tgi
  path.yaml  your own KD recipe
  TGI initialises the student from the teacher's channels at the start of a new run (not on resume, and not
  with --pretrained, whose weights the student starts from instead).

examples:
  sparsekd-sim --out data/sim_kitti && sparsekd-data kitti --root data/sim_kitti
  sparsekd-train --model cp_voxel_sim --data data/sim_kitti --out runs/teacher
  sparsekd-train --model cp_voxel_xxs_sim --data data/sim_kitti --teacher runs/teacher/final.pth \\
                 --kd sparsekd --out runs/xxs_sparsekd
  sparsekd-train --model cp_voxel_sim --data data/sim_kitti --max-steps 20 --out runs/smoke   # smoke run
  sparsekd-train ... --resume          # continue the run in --out exactly where it stopped
  sparsekd-train --model cp_pillar_v0.64_sim360 --pretrained cp_pillar_v0.64 --teacher T.pth --kd sparsekd \\
                 --data data/sim_kitti --epochs 1 --lr 0.0015  # distil the bundled student further
  sparsekd-train --model cp_voxel_sim360 --pretrained S.pth --pretrained-parts backbone3d \\
                 --data data/sim_kitti --out runs/t360   # a teacher whose sparse 3D layers start from a student's
  sparsekd-train --model cp_voxel_sim360 --pretrained cp_voxel_s --widen \\
                 --data data/sim_kitti --out runs/t360w  # a teacher that starts out as the bundled student
  torchrun --nproc_per_node=8 -m sparsekd_core.cli.train --recipe waymo_cp_voxel_s_sparsekd \\
                 --data /data/waymo --teacher cp_voxel.pth --out runs/s_kd --sync-bn
  sparsekd-train --recipe nuscenes_cp_voxel --data /data/sets/nuscenes --out runs/nus_teacher
  sparsekd-train --list-recipes        # paper-scale recipes (Waymo 30, KITTI 80, nuScenes 20 epochs)

stopping: Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint and exits; --resume continues.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sparsekd-train",
        description="Train a CenterPoint LiDAR detector, or distil a student from a teacher with SparseKD.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_argument_group("what to train")
    what.add_argument("--model", help="zoo model name (e.g. cp_voxel_sim, cp_voxel_s) or a model YAML")
    what.add_argument("--recipe", help="a bundled recipe name or recipe YAML that sets model, kd, epochs, "
                      "batch size (flags given here override it)")
    what.add_argument("--list-recipes", action="store_true", help="list the bundled recipes and exit")
    what.add_argument("--data", help="dataset root (KITTI, Waymo or nuScenes layout)")
    what.add_argument("--teacher", help="teacher checkpoint for distillation (.pth from sparsekd-train, a bundled "
                                        "model name, or an OpenPCDet / SparseKD model converted by sparsekd-import)")
    what.add_argument("--pretrained", metavar="CKPT",
                      help="start a new run from these weights (.pth or a bundled model name; same classes and "
                           "architecture as --model) instead of random ones or TGI: fine-tune, or train a model of an "
                           "earlier run further under a fresh schedule. A --resume'd run uses its own checkpoint")
    what.add_argument("--pretrained-parts", metavar="PARTS", default="",
                      help="load only these top-level parts of --pretrained, a comma list (e.g. backbone3d): "
                           "warm-start a model from one of another width or grid whose parts of that name are the "
                           "same (a 360-degree voxel teacher's sparse backbone from a voxel student's); the other "
                           "parts start random, and the classes need not match unless head is listed")
    what.add_argument("--widen", action="store_true",
                      help="--pretrained is a narrower model of --model's structure (one of its students, e.g. the "
                           "bundled cp_voxel_s for cp_voxel_sim360): its weights go into --model's first channels "
                           "and every weight from the other channels into them starts at zero, so the run starts "
                           "out computing exactly what --pretrained does, with the other channels free to learn. "
                           "Grows a teacher from its student when only the student is left")
    what.add_argument("--kd", help="KD recipe: none|sparsekd|logit|pivotal|feature|mimic|label|tgi, "
                      "a comma list of those, or a YAML path (default: none)")
    sched = p.add_argument_group("schedule")
    sched.add_argument("--epochs", type=int, help="epochs (default: the model config's train.epochs)")
    sched.add_argument("--batch-size", type=int, help="samples per step per process/GPU "
                       "(default: the model config's train.batch_size)")
    sched.add_argument("--lr", type=float, help="peak one-cycle learning rate (default: 0.003)")
    sched.add_argument("--max-steps", type=int, help="stop after N steps in total (smoke runs); the lr schedule "
                       "still spans --epochs")
    sched.add_argument("--average-last", type=float, metavar="FRACTION",
                       help="final.pth holds the average of the weights after every step of this last share of the "
                            "schedule (0.5: the second half), "
                            "with BatchNorm statistics recomputed for it; the training "
                            "checkpoints keep the raw weights (stochastic weight averaging: train/weight_average.py, "
                            "with what it measured). 0 = off (default: the model config's train.average_last)")
    sched.add_argument("--precise-bn-batches", type=int, metavar="N",
                       help="recompute the final weights' BatchNorm statistics over N batches of whole training "
                            "frames (precise BN); 0 keeps the statistics training gathered, on BEV windows where the "
                            "model trains on them (default: the model config's train.precise_bn_batches: 0 for "
                            "cp_pillar_s_sim360, whose window statistics scored higher in "
                            "two runs, docs/results.md \"Window statistics, settled\", 32 for the other 360-degree "
                            "models; averaged weights always get a "
                            "whole-frame recompute, 32 batches if N is 0)")
    sched.add_argument("--seed", type=int, default=0, help="seed for weights, data order and augmentation "
                       "(default: 0)")
    run = p.add_argument_group("run")
    run.add_argument("--out", help="run directory (default: runs/<model>[_<kd>])")
    run.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CKPT",
                     help="continue the run in --out from its newest checkpoint (or from CKPT); "
                     "starts fresh when --out has none")
    run.add_argument("--keep-last", type=int, default=3, help="training checkpoints to keep (default: 3)")
    run.add_argument("--ckpt-every", type=int, default=0, metavar="STEPS",
                     help="also checkpoint every N steps (default: 0 = once per epoch)")
    run.add_argument("--eval-every", type=int, help="evaluate every N epochs (default: 0 = only at the end)")
    run.add_argument("--no-eval", action="store_true", help="skip evaluation at the end")
    run.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default: 2)")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    run.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across GPUs (torchrun, CUDA only)")
    run.add_argument("--no-amp", action="store_true",
                     help="train in fp32. Mixed precision is on by default: fp16 autocast on CUDA, bf16 autocast on "
                          "a CPU with native bf16 (AVX-512 BF16 or AMX: 1.3-1.5x faster steps on these EPYCs); "
                          "fp32 elsewhere")
    run.add_argument("--no-augment", action="store_true", help="no data augmentation")
    run.add_argument("--log-every", type=int, default=10, help="TensorBoard/log.jsonl every N steps (default: 10)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _parts(raw: str, pretrained: str | None, widen: bool) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in raw.split(",") if p.strip())
    if parts and not pretrained:
        raise ValueError("--pretrained-parts says which parts of --pretrained to load: give --pretrained CKPT too")
    if widen and not pretrained:
        raise ValueError("--widen widens the model given by --pretrained: give --pretrained CKPT too")
    return parts


def _default_out(model: str, kd: str) -> str:
    stem = Path(model).stem if model.endswith((".yaml", ".yml")) else model
    return f"runs/{stem}" + ("" if kd in ("none", "") else "_" + Path(kd).stem.replace(",", "+"))


def options_from_args(args: argparse.Namespace):
    """Merge recipe and flags into TrainOptions (flags win). Raises ValueError for contradictions."""
    from ..train.recipe import load_recipe
    from ..train.trainer import TrainOptions

    recipe = load_recipe(args.recipe) if args.recipe else None
    pick = lambda flag, key, default=None: (  # noqa: E731
        flag if flag is not None else (getattr(recipe, key) if recipe is not None else default))
    model = pick(args.model, "model")
    if not model:
        raise ValueError("say what to train: --model NAME (see sparsekd_core/configs/models) or --recipe NAME")
    kd = pick(args.kd, "kd", "none") or "none"
    teacher = pick(args.teacher, "teacher")
    extra = {}
    if recipe is not None:
        extra = {"recipe": args.recipe, "paper": recipe.paper}
        if args.data and recipe.dataset:
            from ..train.data import detect_layout

            layout = detect_layout(args.data)
            if layout != recipe.dataset:
                raise ValueError(f"recipe {args.recipe} is for {recipe.dataset} data but --data {args.data} "
                                 f"is a {layout} root")
    return TrainOptions(
        model=model, data=args.data, out=args.out or _default_out(model, kd), teacher=teacher, kd=kd,
        pretrained=args.pretrained, pretrained_parts=_parts(args.pretrained_parts, args.pretrained, args.widen),
        widen_pretrained=args.widen,
        epochs=pick(args.epochs, "epochs"), batch_size=pick(args.batch_size, "batch_size"), lr=pick(args.lr, "lr"),
        average_last=args.average_last, precise_bn_batches=args.precise_bn_batches,
        workers=args.workers, seed=args.seed, resume=args.resume or False,
        eval_every=pick(args.eval_every, "eval_every", 0), evaluate=not args.no_eval, keep_last=args.keep_last,
        ckpt_every_steps=args.ckpt_every, max_steps=args.max_steps, device=args.device, sync_bn=args.sync_bn,
        amp=not args.no_amp, augment=None if args.no_augment else "default",
        waymo_interval=recipe.waymo_interval if recipe else 1, log_every=args.log_every, progress=not args.quiet,
        extra_meta=extra,
    ), recipe


def _check_teacher_model(recipe, teacher: str | None) -> None:
    """Warn when a recipe's teacher checkpoint is another model than the recipe expects."""
    if recipe is None or not recipe.teacher_model or not teacher:
        return
    from ..checkpoint import read_checkpoint

    name = read_checkpoint(teacher)["config"].get("name")
    if name != recipe.teacher_model:
        logging.getLogger("sparsekd-train").warning(
            "recipe expects a %s teacher but %s holds %s", recipe.teacher_model, teacher, name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.list_recipes:
        from ..train.recipe import list_recipes, load_recipe

        for name in list_recipes():
            r = load_recipe(name)
            print(f"{name:34s} {r.description}")
        return 0
    from ..checkpoint import CheckpointError
    from ..config import ConfigError
    from ..train.objective import KDUnavailableError
    from ..train.step import NonFiniteLossError
    from ..train.trainer import Trainer

    try:
        options, recipe = options_from_args(args)
        if not options.data:
            parser.error("--data DATASET_ROOT is required (sparsekd-sim --out DIR writes a simulated dataset)")
        _check_teacher_model(recipe, options.teacher)
        summary = Trainer(options).run()
    except (ConfigError, CheckpointError, ValueError, FileNotFoundError, KDUnavailableError, NonFiniteLossError) as e:
        print(f"sparsekd-train: error: {e}", file=sys.stderr)
        return 1
    if summary.get("metrics"):
        print(json.dumps({k: round(v, 2) for k, v in summary["metrics"].items() if v == v}, indent=1))
    print(f"sparsekd-train: {summary['status']} after {summary['steps']} steps "
          f"({summary['epochs_completed']}/{summary['epochs']} epochs, {summary['train_time_s']:.0f} s); "
          f"model: {summary.get('checkpoint')}; summary: {Path(options.out) / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
