"""Multi-process training: 2 CPU processes with gloo train a few steps; the replicas end with identical
weights (parameters through DDP's gradient averaging, BatchNorm statistics through the final broadcast),
each rank saw its own half of the data, and only rank 0 wrote the run's files. A second test launches the
real command line under torchrun."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sparsekd_core.checkpoint import read_checkpoint
from sparsekd_core.config import load_model_config

from tiny_models import write_tiny_voxel_run

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, model: str, data: str, out: str, result_dir: str) -> None:
    # one thread: spconv's multi-threaded CPU conv is racy (see test_train_resume)
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from sparsekd_core.train.trainer import Trainer, TrainOptions

    seen = []
    from sparsekd_core.train import trainer as trainer_mod

    real_batch_inputs = trainer_mod.batch_inputs

    def recording_batch_inputs(batch, device):
        seen.extend(batch.frame_ids)
        return real_batch_inputs(batch, device)

    trainer_mod.batch_inputs = recording_batch_inputs
    t = Trainer(TrainOptions(model=model, data=data, out=out, epochs=2, batch_size=2, workers=0, device="cpu",
                             evaluate=False, progress=False, max_steps=3, seed=3))
    summary = t.run()
    torch.save({"state": t.student.state_dict(), "summary": summary, "seen": seen},
               Path(result_dir) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    model, data = write_tiny_voxel_run(root, n_train=8, n_val=2)
    # build the infos once here so the ranks do not race to create them
    from sparsekd_core.data.kitti_infos import create_kitti_infos

    create_kitti_infos(data, ("train", "val"), workers=1, progress=False)
    return model, data


def test_two_gloo_processes_keep_identical_replicas(toy, tmp_path):
    model, data = toy
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(model), str(data), str(out), str(results)), nprocs=2, join=True)
    r0 = torch.load(results / "rank0.pt", weights_only=False)
    r1 = torch.load(results / "rank1.pt", weights_only=False)
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), f"replicas differ at {k}"
    # 8 frames over 2 ranks, batch 2 per rank: 2 steps per epoch, 3 steps = 1.5 epochs, 6 frames per rank
    s = r0["summary"]
    assert s["world_size"] == 2 and s["global_batch_size"] == 4 and s["iters_per_epoch"] == 2 and s["steps"] == 3
    assert len(r0["seen"]) == len(r1["seen"]) == 6
    epoch0 = r0["seen"][:4] + r1["seen"][:4]
    assert sorted(epoch0) == sorted(f"{i:06d}" for i in range(8))  # the ranks split epoch 0 between them
    # rank 0 wrote the checkpoint, holding the replicas' weights
    ckpts = sorted(out.glob("ckpt_*.pth"))
    assert ckpts and json.loads((out / "summary.json").read_text())["world_size"] == 2
    saved = read_checkpoint(ckpts[-1])["state_dict"]
    for k, v in saved.items():
        if v.is_floating_point() and not k.endswith(("running_mean", "running_var")):
            assert torch.equal(v, r0["state"][k]), k
    # the weights moved: training happened
    from sparsekd_core.models.detector import build_detector

    torch.manual_seed(3)
    init = build_detector(load_model_config(model)).state_dict()
    assert not torch.equal(init["head.shared_conv.0.weight"], r0["state"]["head.shared_conv.0.weight"])


def test_torchrun_launches_the_command_line(toy, tmp_path):
    model, data = toy
    out = tmp_path / "cli"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(_free_port()),
           "-m", "sparsekd_core.cli.train", "--model", str(model), "--data", str(data), "--out", str(out),
           "--epochs", "1", "--batch-size", "2", "--workers", "0", "--device", "cpu", "--no-eval", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2 and summary["steps"] == 2
    assert (out / "final.pth").is_file()
