"""Checkpoints and exact resume: K steps straight == k steps, stop, resume, K - k steps (bit-identical on CPU);
last-N pruning; atomic writes; RNG round trip; Ctrl-C finishes the step and checkpoints; mismatched resumes refused.

spconv 2.3.8's multi-threaded CPU sparse convolution (indice_conv) races: with 2 threads a strided
SparseConv3d sometimes returns wrong sums, so two identical runs differ. These tests run torch (and with it
spconv) on one thread, which makes CPU training deterministic.
"""
from __future__ import annotations

import os
import random
import signal

import numpy as np
import pytest
import torch

from sparsekd_core.checkpoint import CheckpointError, read_checkpoint
from sparsekd_core.config import load_model_config
from sparsekd_core.train import trainer as trainer_mod
from sparsekd_core.train.checkpointing import (
    CheckpointManager, capture_rng_state, list_checkpoints, read_training_checkpoint, restore_rng_state,
)
from sparsekd_core.train.trainer import Trainer, TrainOptions

from tiny_models import write_tiny_voxel_run

# flips, rotation, scaling and shuffling on, drawn per (seed, epoch, frame): a resume must reproduce them too
AUGMENT = {"flip_axes": ["x"], "rotation_range": [-0.5, 0.5], "scale_range": [0.95, 1.05], "shuffle_points": True}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_tiny_voxel_run(tmp_path_factory.mktemp("toy"), n_train=5, n_val=2)


def _options(toy, out, **kw) -> TrainOptions:
    model, data = toy
    base = dict(model=str(model), data=str(data), out=str(out), epochs=3, batch_size=2, workers=0, device="cpu",
                evaluate=False, progress=False, augment=AUGMENT, seed=7)
    base.update(kw)
    return TrainOptions(**base)


def _state(path):
    return read_checkpoint(path)


def _assert_same_training_state(a: dict, b: dict):
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    oa, ob = a["training"]["optimizer"]["state"], b["training"]["optimizer"]["state"]
    assert oa.keys() == ob.keys()
    for i in oa:
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(oa[i][k], ob[i][k]), (i, k)
    assert a["training"]["scheduler"]["last_epoch"] == b["training"]["scheduler"]["last_epoch"]
    assert a["training"]["global_step"] == b["training"]["global_step"]


def test_resume_continues_exactly(toy, tmp_path):
    # 5 frames, batch 2: 3 steps per epoch (the last batch holds 1 frame). K = 5 crosses an epoch boundary;
    # the interrupted run stops at k = 2, in the middle of epoch 1.
    straight = Trainer(_options(toy, tmp_path / "straight", max_steps=5)).run()
    assert straight["steps"] == 5 and straight["iters_per_epoch"] == 3 and straight["total_steps"] == 9

    first = Trainer(_options(toy, tmp_path / "resumed", max_steps=2)).run()
    assert first["steps"] == 2 and first["status"] == "stopped_at_max_steps"
    stop_ckpt = list_checkpoints(tmp_path / "resumed")[-1]
    tr = read_training_checkpoint(stop_ckpt.path)["training"]
    assert (tr["epoch"], tr["batch_in_epoch"], tr["global_step"]) == (0, 2, 2)

    second = Trainer(_options(toy, tmp_path / "resumed", max_steps=5, resume=True)).run()
    assert second["resumed_from"] == str(stop_ckpt.path)
    assert second["steps"] == 5 and second["steps_this_session"] == 3

    a = _state(list_checkpoints(tmp_path / "straight")[-1].path)
    b = _state(list_checkpoints(tmp_path / "resumed")[-1].path)
    _assert_same_training_state(a, b)
    # and training did move the weights away from the initial ones
    init = Trainer(_options(toy, tmp_path / "init", max_steps=1))
    init.run()
    assert not all(torch.equal(v, init.student.state_dict()[k]) for k, v in a["state_dict"].items())


def test_completed_run_writes_final_model_and_keeps_last_n(toy, tmp_path):
    out = tmp_path / "run"
    summary = Trainer(_options(toy, out, epochs=2, ckpt_every_steps=1, keep_last=2)).run()
    assert summary["status"] == "completed" and summary["steps"] == 6 and summary["epochs_completed"] == 2
    refs = list_checkpoints(out)
    assert [r.global_step for r in refs] == [5, 6]  # every step was checkpointed, the newest two kept
    final = read_checkpoint(out / "final.pth")
    assert "training" not in final  # the deployable model carries no optimiser state
    last = read_checkpoint(refs[-1].path)
    for k, v in final["state_dict"].items():
        assert torch.equal(v, last["state_dict"][k])
    assert final["meta"]["global_step"] == 6 and final["meta"]["status"] == "completed"
    # resuming a finished run does nothing more and says so
    again = Trainer(_options(toy, out, epochs=2, resume=True)).run()
    assert again["steps_this_session"] == 0 and again["steps"] == 6


def test_resume_with_other_settings_is_refused(toy, tmp_path):
    out = tmp_path / "run"
    Trainer(_options(toy, out, max_steps=1)).run()
    with pytest.raises(CheckpointError, match="batch_size"):
        Trainer(_options(toy, out, batch_size=1, resume=True)).run()
    with pytest.raises(CheckpointError, match="seed"):
        Trainer(_options(toy, out, seed=8, resume=True)).run()


def test_sigint_finishes_the_step_checkpoints_and_resume_completes(toy, tmp_path, monkeypatch):
    real_step = trainer_mod.train_step
    calls = {"n": 0}

    def step_then_interrupt(*args, **kwargs):
        result = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # lands between steps, like a Ctrl-C during step 2
        return result

    monkeypatch.setattr(trainer_mod, "train_step", step_then_interrupt)
    out = tmp_path / "run"
    # what was there before the run (default_int_handler, or SIG_IGN when the tests run as a background job)
    before = signal.getsignal(signal.SIGINT)
    summary = Trainer(_options(toy, out, epochs=2)).run()
    assert summary["status"] == "interrupted" and summary["steps"] == 2
    assert summary["checkpoint"] == str(list_checkpoints(out)[-1].path)
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    monkeypatch.setattr(trainer_mod, "train_step", real_step)
    done = Trainer(_options(toy, out, epochs=2, resume=True)).run()
    assert done["status"] == "completed" and done["steps"] == 6 and done["steps_this_session"] == 4


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    model.cfg = load_model_config("cp_voxel_xxs_sim")  # save_checkpoint records the model's config
    mgr = CheckpointManager(tmp_path, keep_last=3)
    good = mgr.save(model, {"epoch": 0, "global_step": 1, "batch_in_epoch": 1, "optimizer": {},
                            "scheduler": {}, "rng": capture_rng_state()})

    def dying_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError):
        mgr.save(model, {"epoch": 0, "global_step": 2, "batch_in_epoch": 2, "optimizer": {}, "scheduler": {},
                         "rng": {}})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [good.name]  # no partial file, no temp file left
    assert mgr.latest() == good


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn(2))
    torch.save(state, tmp_path / "rng.pth")
    torch.rand(10), np.random.rand(10), random.random()  # move every generator on
    restore_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True))
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn(2))
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1]) and expected[2] == got[2] and np.array_equal(expected[3], got[3])


def test_resume_from_a_weights_only_file_explains(tmp_path):
    from sparsekd_core.checkpoint import write_untrained_checkpoint

    path = write_untrained_checkpoint("cp_voxel_xxs_sim", tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="weights only"):
        read_training_checkpoint(path)
