"""Weight averaging over a run's last stretch (train/weight_average.py, sparsekd-train --average-last) and the
final BatchNorm recompute it relies on (--precise-bn-batches): which steps are averaged, that final.pth holds their
mean with BatchNorm statistics recomputed for it while the training checkpoints keep the raw weights, that an
interrupted run averages exactly as an uninterrupted one, and that the recompute can be set from the command line."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsekd_core.checkpoint import CheckpointError, read_checkpoint
from sparsekd_core.cli.train import build_parser, options_from_args
from sparsekd_core.train.checkpointing import list_checkpoints, read_training_checkpoint
from sparsekd_core.train.trainer import Trainer, TrainOptions
from sparsekd_core.train.weight_average import WeightAverage, first_averaged_step

from tiny_models import write_tiny_voxel_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_averaged_tail_is_the_last_share_of_the_schedule():
    assert first_averaged_step(6, 0.5) == 4  # steps 4, 5, 6
    assert first_averaged_step(9, 0.5) == 5  # ceil(4.5) = 5 steps: 5..9
    assert first_averaged_step(6, 1.0) == 1
    assert first_averaged_step(10, 0.01) == 10  # at least the final step
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="average_last"):
            first_averaged_step(6, bad)


def test_average_is_the_mean_of_the_tail_parameters_only():
    model = nn.Linear(2, 1)
    average = WeightAverage(start=3)
    for step in range(1, 6):
        with torch.no_grad():
            model.weight.fill_(float(step * step))
            model.bias.fill_(-float(step))
        average.update(model, step)
        assert average.count == max(0, step - 2)
    assert average.count == 3
    target = nn.Linear(2, 1)
    average.copy_to(target)
    torch.testing.assert_close(target.weight, torch.full((1, 2), (9 + 16 + 25) / 3))
    torch.testing.assert_close(target.bias, torch.tensor([-4.0]))
    with pytest.raises(RuntimeError, match="no weights were averaged"):
        WeightAverage(start=10).copy_to(target)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_tiny_voxel_run(tmp_path_factory.mktemp("toy_average"), n_train=5, n_val=2)


def _options(toy, out, **kw) -> TrainOptions:
    model, data = toy
    base = dict(model=str(model), data=str(data), out=str(out), epochs=2, batch_size=2, workers=0, device="cpu",
                evaluate=False, progress=False, seed=3, average_last=0.5, ckpt_every_steps=1, keep_last=10)
    base.update(kw)
    return TrainOptions(**base)


def _is_batchnorm_stat(key: str) -> bool:
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def test_final_model_is_the_average_of_the_last_half_with_fresh_batchnorm(toy, tmp_path):
    out = tmp_path / "run"
    summary = Trainer(_options(toy, out)).run()
    # 5 frames, batch 2: 3 steps an epoch, 6 in all; the second half is steps 4, 5 and 6
    assert summary["status"] == "completed" and summary["total_steps"] == 6 and summary["averaged_steps"] == 3
    raw = {r.global_step: read_checkpoint(r.path)["state_dict"] for r in list_checkpoints(out)}
    assert sorted(raw) == [1, 2, 3, 4, 5, 6]
    final = read_checkpoint(out / "final.pth")
    assert final["meta"]["averaged_steps"] == 3
    params = [k for k in final["state_dict"] if not _is_batchnorm_stat(k)]
    moved = 0
    for k in params:
        mean = torch.stack([raw[s][k].float() for s in (4, 5, 6)]).mean(0)
        torch.testing.assert_close(final["state_dict"][k].float(), mean, rtol=1e-5, atol=1e-6)
        moved += not torch.equal(raw[4][k], raw[6][k])
    assert moved > 0  # the tail's weights differ, so the mean is not any one of them
    # BatchNorm statistics belong to the average: recomputed, not the last step's running averages
    stats = [k for k in final["state_dict"] if k.endswith("running_mean")]
    assert stats and any(not torch.equal(final["state_dict"][k], raw[6][k]) for k in stats)


@pytest.mark.parametrize("stop", [2, 5])  # before the averaged tail (steps 4-6) and inside it
def test_an_interrupted_run_averages_as_an_uninterrupted_one(toy, tmp_path, stop):
    straight = Trainer(_options(toy, tmp_path / "straight")).run()
    first = Trainer(_options(toy, tmp_path / "resumed", max_steps=stop)).run()
    assert first["status"] == "stopped_at_max_steps" and first["averaged_steps"] == max(0, stop - 3)
    saved = read_training_checkpoint(list_checkpoints(tmp_path / "resumed")[-1].path)["training"]["weight_average"]
    assert saved["start"] == 4 and (saved["averaged"] is None) == (stop < 4)  # no second model before the tail
    second = Trainer(_options(toy, tmp_path / "resumed", resume=True)).run()
    assert second["steps_this_session"] == 6 - stop and second["averaged_steps"] == straight["averaged_steps"] == 3
    a = read_checkpoint(tmp_path / "straight" / "final.pth")["state_dict"]
    b = read_checkpoint(tmp_path / "resumed" / "final.pth")["state_dict"]
    for k, v in a.items():
        assert torch.equal(v, b[k]), k


def test_averaging_cannot_be_switched_on_in_a_resume(toy, tmp_path):
    out = tmp_path / "switch"
    Trainer(_options(toy, out, average_last=None, max_steps=2)).run()
    with pytest.raises(CheckpointError, match="other settings"):
        Trainer(_options(toy, out, resume=True)).run()


def test_a_run_without_averaging_ends_on_its_last_weights(toy, tmp_path):
    out = tmp_path / "plain"
    summary = Trainer(_options(toy, out, average_last=None)).run()
    assert summary["averaged_steps"] == 0
    final = read_checkpoint(out / "final.pth")["state_dict"]
    last = read_checkpoint(list_checkpoints(out)[-1].path)["state_dict"]
    for k, v in final.items():
        assert torch.equal(v, last[k]), k


def test_bad_share_is_refused_with_the_option_named(toy, tmp_path):
    with pytest.raises(ValueError, match="--average-last"):
        Trainer(_options(toy, tmp_path / "bad", average_last=1.5)).run()


def test_cli_passes_the_share_through():
    args = build_parser().parse_args(["--model", "cp_pillar_s_sim360", "--data", "d", "--average-last", "0.5"])
    options, _ = options_from_args(args)
    assert options.average_last == 0.5
    args = build_parser().parse_args(["--model", "cp_pillar_s_sim360", "--data", "d"])
    assert options_from_args(args)[0].average_last is None


@pytest.mark.parametrize("batches", [0, 2])
def test_precise_bn_batches_from_the_command_line_decide_the_final_statistics(toy, tmp_path, batches):
    # without averaging, final.pth's BatchNorm statistics are training's own (0) or recomputed over whole frames (2)
    out = tmp_path / f"pbn{batches}"
    Trainer(_options(toy, out, average_last=None, precise_bn_batches=batches)).run()
    final = read_checkpoint(out / "final.pth")["state_dict"]
    last = read_checkpoint(list_checkpoints(out)[-1].path)["state_dict"]
    stats = [k for k in final if k.endswith("running_mean")]
    assert stats and any(not torch.equal(final[k], last[k]) for k in stats) == (batches > 0)
    assert all(torch.equal(final[k], last[k]) for k in final if not _is_batchnorm_stat(k))


def test_cli_passes_precise_bn_batches_and_refuses_a_negative_count(toy, tmp_path):
    args = build_parser().parse_args(["--model", "cp_pillar_s_sim360", "--data", "d", "--precise-bn-batches", "0"])
    assert options_from_args(args)[0].precise_bn_batches == 0
    with pytest.raises(ValueError, match="--precise-bn-batches"):
        Trainer(_options(toy, tmp_path / "neg", precise_bn_batches=-1)).run()
