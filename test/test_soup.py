"""Model soups (train/soup.py, sparsekd-soup): the weights of fine-tunes averaged 1:1, ingredients of different models
refused, and BatchNorm statistics recomputed for the soup on the inputs training feeds (BEV windows for a model that
trains on windows; whole frames on request)."""
from __future__ import annotations

import pytest
import torch

from sparsekd_core.checkpoint import CheckpointError, atomic_torch_save, read_checkpoint, save_checkpoint
from sparsekd_core.cli.soup import main
from sparsekd_core.config import load_model_config
from sparsekd_core.models.detector import CenterPointDetector, build_detector
from sparsekd_core.train.soup import average_checkpoints
from sparsekd_core.train.synthetic import write_toy_kitti

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# a 360-degree pillar student on a 20.48 m square that trains on 5.12 m windows (8 x 8 cells of its 32 x 32 map)
WINDOWED = """\
base: cp_pillar_v0.64_sim360
voxelization:
  point_cloud_range: [-10.24, -10.24, -3.0, 10.24, 10.24, 1.0]
train: {epochs: 1, batch_size: 2, bev_window: [5.12, 5.12], precise_bn_batches: 0}
"""


def _ingredient(cfg, path, seed: int, fp16: bool = False, meta: dict | None = None):
    torch.manual_seed(seed)
    model = build_detector(cfg)
    with torch.no_grad():  # distinct BatchNorm statistics too
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
            elif name.endswith("num_batches_tracked"):
                buf.fill_(seed)
    save_checkpoint(path, model, fp16=fp16, meta=meta)
    return read_checkpoint(path)["state_dict"]


@pytest.fixture(scope="module")
def windowed(tmp_path_factory):
    root = tmp_path_factory.mktemp("soup")
    (root / "student.yaml").write_text(WINDOWED)
    cfg = load_model_config(root / "student.yaml")
    write_toy_kitti(root / "kitti", cfg.voxelization.point_cloud_range, cfg.class_names, n_train=6, n_val=1)
    tuned = load_model_config(root / "student.yaml")  # a fine-tune's own operating point and training settings
    tuned.head.post.operating_thresholds = {"Car": 0.5, "Pedestrian": 0.45, "Cyclist": 0.5}
    tuned.train.epochs = 3
    a = _ingredient(tuned, root / "a.pth", seed=1, meta={"ground_z": -1.7})
    b = _ingredient(cfg, root / "b.pth", seed=2, fp16=True, meta={"ground_z": -1.7})
    return root, cfg, a, b


def test_soup_is_the_mean_of_the_ingredients(windowed):
    root, cfg, a, b = windowed
    payload = average_checkpoints([root / "a.pth", root / "b.pth"])
    soup = payload["state_dict"]
    assert set(soup) == set(a)
    for key, value in soup.items():
        if a[key].is_floating_point():
            assert value.dtype == torch.float32
            torch.testing.assert_close(value, (a[key].float() + b[key].float()) / 2)
        else:
            assert torch.equal(value, a[key])  # BatchNorm's batch counter: the first ingredient's
    assert payload["meta"]["soup_of"] == [str(root / "a.pth"), str(root / "b.pth")]
    assert payload["meta"]["ground_z"] == -1.7  # both ingredients' ground height
    first = read_checkpoint(root / "a.pth")["config"]
    assert payload["config"]["train"] == first["train"] and payload["config"]["voxelization"] == first["voxelization"]
    assert payload["config"]["head"]["post"]["operating_thresholds"] == {}  # chosen for a's weights, not the soup's


def test_ingredients_of_different_models_are_refused(windowed, tmp_path):
    root, cfg, a, b = windowed
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([root / "a.pth"])
    narrow = load_model_config(root / "student.yaml")
    narrow.head.shared_channels = 16
    save_checkpoint(tmp_path / "narrow.pth", build_detector(narrow))
    with pytest.raises(CheckpointError, match=r"differ in head.shared_channels \(16 against 64\)"):
        average_checkpoints([root / "a.pth", tmp_path / "narrow.pth"])
    cut = read_checkpoint(root / "a.pth")  # the same config, a tensor of another shape (a file edited by hand)
    key = next(k for k, v in cut["state_dict"].items() if v.ndim == 4)
    cut["state_dict"][key] = cut["state_dict"][key][:1]
    atomic_torch_save(cut, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match=f"{key} is .* not the same architecture"):
        average_checkpoints([root / "a.pth", tmp_path / "cut.pth"])
    other = load_model_config(root / "student.yaml")
    other.class_names = ["Car", "Cyclist", "Pedestrian"]
    save_checkpoint(tmp_path / "other.pth", build_detector(other))
    with pytest.raises(CheckpointError, match="a soup averages fine-tunes of one model"):
        average_checkpoints([root / "a.pth", tmp_path / "other.pth"])
    finer = load_model_config(root / "student.yaml")  # every tensor the same shape, a different grid
    finer.voxelization.voxel_size = [0.32, 0.32, 4.0]
    save_checkpoint(tmp_path / "finer.pth", build_detector(finer))
    with pytest.raises(CheckpointError, match=r"differ in voxelization.voxel_size"):
        average_checkpoints([root / "a.pth", tmp_path / "finer.pth"])
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    assert main([str(root / "a.pth"), str(tmp_path / "broken.pth"), "--out", str(tmp_path / "s.pth"),
                 "--bn-batches", "0"]) == 1
    assert not (tmp_path / "s.pth").exists()


def test_soup_batchnorm_is_recomputed_on_training_windows(windowed, tmp_path, monkeypatch, capsys):
    root, cfg, a, b = windowed
    maps = _recorded_maps(monkeypatch)
    out = tmp_path / "soup.pth"
    assert main([str(root / "a.pth"), str(root / "b.pth"), "--out", str(out), "--data", str(root / "kitti"),
                 "--bn-batches", "2", "--device", "cpu"]) == 0
    assert "2 checkpoints averaged" in capsys.readouterr().out
    assert maps == [(True, (8, 8))] * 2  # two batches of windows, in training mode; no whole 32 x 32 map
    written = read_checkpoint(out)
    soup = written["state_dict"]
    averaged = average_checkpoints([root / "a.pth", root / "b.pth"])["state_dict"]
    for key, value in soup.items():
        if key.endswith(("running_mean", "running_var")):
            assert not torch.allclose(value, averaged[key])  # recomputed, not the ingredients' average
        elif value.is_floating_point():
            torch.testing.assert_close(value, averaged[key])  # the weights are the plain mean
    assert written["meta"]["soup_of"] == [str(root / "a.pth"), str(root / "b.pth")]
    assert written["meta"]["batchnorm"].startswith("recomputed over 2 batches of training windows")
    assert isinstance(written["meta"]["ground_z"], float)  # measured on the toy frames
    assert written["config"] == average_checkpoints([root / "a.pth", root / "b.pth"])["config"]  # a's, no op point

    kept = tmp_path / "kept.pth"
    assert main([str(root / "a.pth"), str(root / "b.pth"), "--out", str(kept), "--bn-batches", "0"]) == 0
    for key, value in read_checkpoint(kept)["state_dict"].items():
        torch.testing.assert_close(value, averaged[key])


def _recorded_maps(monkeypatch) -> list:
    """(training mode, heatmap size) of every forward pass from now on."""
    maps = []
    original = CenterPointDetector.forward_voxels

    def recording(self, vb):
        out = original(self, vb)
        maps.append((self.training, tuple(out.head.heatmap.shape[-2:])))
        return out

    monkeypatch.setattr(CenterPointDetector, "forward_voxels", recording)
    return maps


def test_soup_batchnorm_on_whole_frames_on_request(windowed, tmp_path, monkeypatch):
    """--bn-inputs frames recomputes the soup's statistics over whole frames (as a voxel run's precise BatchNorm
    does); windows, the default, over the windows the training loop feeds."""
    root, cfg, a, b = windowed
    maps = _recorded_maps(monkeypatch)
    for inputs, expected, said in (("frames", (32, 32), "whole training frames"),
                                   ("windows", (8, 8), "training windows")):
        maps.clear()
        out = tmp_path / f"soup_{inputs}.pth"
        assert main([str(root / "a.pth"), str(root / "b.pth"), "--out", str(out), "--data", str(root / "kitti"),
                     "--bn-batches", "2", "--device", "cpu", "--bn-inputs", inputs]) == 0
        assert maps == [(True, expected)] * 2, inputs
        assert read_checkpoint(out)["meta"]["batchnorm"].startswith(f"recomputed over 2 batches of {said}")


def test_cli_asks_for_what_it_needs(windowed, tmp_path, capsys):
    root, cfg, a, b = windowed
    with pytest.raises(SystemExit):
        main([str(root / "a.pth"), "--out", str(tmp_path / "s.pth"), "--bn-batches", "0"])
    assert "two or more checkpoints" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(root / "a.pth"), str(root / "b.pth"), "--out", str(tmp_path / "s.pth")])
    assert "--data DATASET_ROOT is required" in capsys.readouterr().err
