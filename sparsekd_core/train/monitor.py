"""What a run shows and records while it trains (rank 0 only): a tqdm bar over all steps with the loss terms,
lr, it/s and ETA; TensorBoard scalars under ``OUT/tensorboard``; and ``OUT/log.jsonl``, one JSON line per
logged step and per evaluation, for plotting without TensorBoard."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


class TrainMonitor:
    """Progress bar + TensorBoard + JSON lines. Disabled entirely (no files, no bar) when ``enabled`` is False."""

    def __init__(self, out_dir: str | Path, total_steps: int, initial_step: int = 0, enabled: bool = True,
                 progress: bool = True, log_every: int = 10, desc: str = "train"):
        self.enabled = enabled
        self.log_every = max(1, int(log_every))
        self.out_dir = Path(out_dir)
        self.bar = None
        self.writer = None
        self._jsonl = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.bar = tqdm(total=total_steps, initial=initial_step, desc=desc, unit="step", dynamic_ncols=True,
                        disable=not progress, smoothing=0.1)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=initial_step or None)
        self._jsonl = open(self.out_dir / "log.jsonl", "a", buffering=1)

    def set_epoch(self, epoch: int, epochs: int) -> None:
        if self.bar is not None:
            self.bar.set_description(f"epoch {epoch + 1}/{epochs}")

    def step(self, global_step: int, losses: dict[str, float], lr: float, beta1: float, grad_norm: float,
             step_time: float, data_time: float, epoch: int) -> None:
        """Record one finished step (``global_step`` counts it)."""
        if not self.enabled:
            return
        if self.bar is not None:
            post = {k: f"{v:.3f}" for k, v in losses.items()}
            post["lr"] = f"{lr:.2e}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)
        if global_step % self.log_every == 0 or global_step == 1:
            scalars = {f"loss/{k}": v for k, v in losses.items()}
            scalars.update({"opt/lr": lr, "opt/beta1": beta1, "opt/grad_norm": grad_norm,
                            "time/step_s": step_time, "time/data_s": data_time})
            for k, v in scalars.items():
                if math.isfinite(v):
                    self.writer.add_scalar(k, v, global_step)
            self._write({"kind": "train", "step": global_step, "epoch": epoch, "time": time.time(), **scalars})

    def evaluation(self, global_step: int, epoch: int, headline: dict[str, float]) -> None:
        if not self.enabled:
            return
        for k, v in headline.items():
            if math.isfinite(v):
                self.writer.add_scalar(f"eval/{k}", v, global_step)
        self._write({"kind": "eval", "step": global_step, "epoch": epoch, "time": time.time(),
                     **{f"eval/{k}": v for k, v in headline.items()}})
        self.write_line(f"evaluation after epoch {epoch} (step {global_step}): " +
                        ", ".join(f"{k} {v:.2f}" for k, v in headline.items()))

    def write_line(self, text: str) -> None:
        """Print without breaking the bar."""
        if self.enabled:
            tqdm.write(text)

    def _write(self, record: dict[str, Any]) -> None:
        self._jsonl.write(json.dumps(record, default=float) + "\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        if self._jsonl is not None:
            self._jsonl.close()
        self.bar = self.writer = self._jsonl = None
