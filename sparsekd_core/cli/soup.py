"""``sparsekd-soup``: average fine-tunes of one model into one model (train/soup.py)."""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

DESCRIPTION = """\
Average the weights of two or more fine-tunes of one model (the same architecture and classes, best started
from the same weights and trained on different data or seeds) into one model, a "uniform model soup", then
recompute its BatchNorm statistics over training batches of --data as the training loop feeds them (BEV
windows for models that train on windows; --bn-inputs frames for whole frames). The soup runs exactly as fast as
each ingredient."""

EPILOG = """\
examples:
  # two fine-tunes of the bundled student on independent simulated data, then their soup
  sparsekd-train --model cp_pillar_s_sim360 --data data/simA/kitti --pretrained cp_pillar_s \\
      --teacher cp_pillar_sim360 --kd sparsekd --lr 0.0015 --epochs 2 --out runs/a
  sparsekd-train ... --data data/simB/kitti --out runs/b
  sparsekd-soup runs/a/final.pth runs/b/final.pth --data data/simB/kitti --out runs/soup.pth
  sparsekd-eval --checkpoint runs/soup.pth --dataset data/simB/kitti --operating-points 0.3 0.8 0.05 \\
      --record-operating-points runs/soup.pth     # the soup has no operating point of its own yet
  sparsekd-eval --checkpoint runs/soup.pth --dataset data/simB/kitti

notes:
  Ingredients may be final.pth files, training checkpoints (ckpt_e*_s*.pth: their weights) or bundled model
  names of one model: the same classes, inputs, grid and layers (their training settings may differ). The soup
  keeps the first one's config without its operating point (class_score_thresholds chosen for other weights).
  Fine-tunes from different starting weights may not lie in one basin; evaluate the soup beside its
  ingredients before using it. --bn-batches 0 keeps the ingredients' averaged BatchNorm statistics (no data
  needed), which describe no actual weights: only for a quick look.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparsekd-soup", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                        help="two or more checkpoints (or bundled model names) of one model, averaged 1:1")
    parser.add_argument("--out", required=True, metavar="OUT.pth", help="where to write the soup")
    parser.add_argument("--data", default=None, metavar="ROOT",
                        help="dataset root (as for sparsekd-train) whose training split gives the BatchNorm batches")
    parser.add_argument("--bn-batches", type=int, default=200, metavar="N",
                        help="training batches the BatchNorm statistics are recomputed over (default 200; 0 keeps "
                             "the averaged statistics)")
    parser.add_argument("--bn-inputs", default="windows", choices=("windows", "frames"),
                        help="what the BatchNorm batches hold: windows (default), as the training loop feeds them "
                             "(BEV windows for models that train on windows), or frames, whole frames as a voxel run's "
                             "precise BatchNorm uses (a voxel soup over whole frames scored real cars far worse, "
                             "docs/results.md \"Car paint that glints\")")
    parser.add_argument("--seed", type=int, default=0, help="seed for data order and augmentation (default 0)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if len(args.checkpoints) < 2:
        parser.error("give two or more checkpoints to average")
    if args.bn_batches < 0:
        parser.error(f"--bn-batches must be 0 or more, got {args.bn_batches}")
    if args.bn_batches > 0 and not args.data:
        parser.error("--data DATASET_ROOT is required to recompute BatchNorm statistics (or --bn-batches 0)")
    from ..checkpoint import CheckpointError, atomic_torch_save, config_from_payload
    from ..config import ConfigError
    from ..train.soup import average_checkpoints
    from ..train.trainer import Trainer, TrainOptions

    out = Path(args.out)
    try:
        payload = average_checkpoints(args.checkpoints)
        if args.bn_batches == 0:
            atomic_torch_save(payload, out)
        else:
            with tempfile.TemporaryDirectory(prefix="sparsekd-soup-") as tmp:
                averaged = atomic_torch_save(payload, Path(tmp) / "averaged.pth")
                # the ingredients' own config drives the data pipeline and is the soup's
                options = TrainOptions(model=config_from_payload(payload, "the soup"), data=args.data, out=tmp,
                                       pretrained=str(averaged), workers=args.workers, device=args.device,
                                       evaluate=False, seed=args.seed, progress=False)
                windows = args.bn_inputs == "windows"
                Trainer(options).training_batchnorm(args.bn_batches, out, payload["meta"], windows=windows)
    except (ConfigError, CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"sparsekd-soup: error: {e}", file=sys.stderr)
        return 1
    print(f"sparsekd-soup: {len(args.checkpoints)} checkpoints averaged into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
