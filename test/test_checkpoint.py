"""Checkpoints: round trip, fp16, and a clear error for every way a file can be wrong."""
import numpy as np
import pytest
import torch

from sparsekd_core.checkpoint import (FORMAT_VERSION, CheckpointError, load_model, make_payload, read_checkpoint,
                                      record_operating_thresholds, save_checkpoint, write_untrained_checkpoint)
from sparsekd_core.config import load_model_config
from sparsekd_core.inference import Detector
from sparsekd_core.models.detector import build_detector

from conftest import synthetic_cloud


def _cloud():
    pts = synthetic_cloud(2000, 4, seed=3, xy=25)
    pts[:, 0] = np.abs(pts[:, 0]) + 2
    return pts


def test_round_trip_gives_identical_outputs(tmp_path):
    path = write_untrained_checkpoint("cp_pillar_v0.64_sim", tmp_path / "m.pth", seed=5)
    payload = read_checkpoint(path)
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["class_names"] == ["Car", "Pedestrian", "Cyclist"]
    assert payload["point_features"] == ["x", "y", "z", "intensity"]
    assert payload["voxel_size"] == [0.64, 0.64, 4.0]
    model, _ = load_model(path)
    torch.manual_seed(5)
    fresh = build_detector(load_model_config("cp_pillar_v0.64_sim")).eval()
    pts = torch.from_numpy(_cloud())
    with torch.no_grad():
        assert torch.equal(model([pts]).head.heatmap, fresh([pts]).head.heatmap)
    # loading needs nothing but the file: no zoo lookup
    assert model.cfg == fresh.cfg


def test_fp16_checkpoint_is_half_the_size_and_close(tmp_path):
    torch.manual_seed(0)
    model = build_detector(load_model_config("cp_voxel_xxs_sim")).eval()
    full = save_checkpoint(tmp_path / "f32.pth", model)
    half = save_checkpoint(tmp_path / "f16.pth", model, fp16=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    a = Detector.from_checkpoint(full, "cpu")
    b = Detector.from_checkpoint(half, "cpu")
    pts = torch.from_numpy(_cloud())
    with torch.no_grad():
        ha = a.model([pts]).head.heatmap.sigmoid()
        hb = b.model([pts]).head.heatmap.sigmoid()
    assert (ha - hb).abs().max() < 2e-2


def test_corrupt_and_truncated_files_are_explained(tmp_path):
    good = write_untrained_checkpoint("cp_voxel_xxs_sim", tmp_path / "good.pth")
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(trunc)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pth")


def test_weights_only_file_from_elsewhere_is_rejected(tmp_path):
    p = tmp_path / "openpcdet.pth"
    torch.save({"model_state": {"w": torch.zeros(1)}, "epoch": 30}, p)
    with pytest.raises(CheckpointError, match="not a sparsekd checkpoint.*sparsekd-import CKPT --config CFG.yaml"):
        read_checkpoint(p)


def test_future_format_version_is_rejected(tmp_path):
    torch.manual_seed(0)
    model = build_detector(load_model_config("cp_voxel_xxs_sim"))
    payload = make_payload(model.cfg, model.state_dict())
    payload["format_version"] = FORMAT_VERSION + 1
    p = tmp_path / "future.pth"
    torch.save(payload, p)
    with pytest.raises(CheckpointError, match="newer than this sparsekd_ros understands"):
        read_checkpoint(p)


def test_state_dict_that_does_not_fit_the_config(tmp_path):
    small = build_detector(load_model_config("cp_voxel_xxs_sim"))
    big = build_detector(load_model_config("cp_voxel_s_sim"))
    payload = make_payload(big.cfg, small.state_dict())
    p = tmp_path / "mismatch.pth"
    torch.save(payload, p)
    with pytest.raises(CheckpointError, match="do not fit the model config.*another shape"):
        load_model(p)
    payload = make_payload(big.cfg, {k: v for k, v in big.state_dict().items() if "head" not in k})
    torch.save(payload, p)
    with pytest.raises(CheckpointError, match="missing"):
        load_model(p)


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves the previous checkpoint intact and no temp files behind."""
    model = build_detector(load_model_config("cp_voxel_xxs_sim"))
    p = save_checkpoint(tmp_path / "m.pth", model, meta={"epoch": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(p, model, meta={"epoch": 2})
    monkeypatch.undo()
    assert read_checkpoint(p)["meta"]["epoch"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["m.pth"]


def test_recording_an_operating_point_keeps_the_weights_bit_for_bit(tmp_path):
    import zipfile

    torch.manual_seed(0)
    model = build_detector(load_model_config("cp_voxel_xxs_sim")).eval()
    src = save_checkpoint(tmp_path / "f16.pth", model, meta={"provenance": "a test"}, fp16=True)
    out = record_operating_thresholds(src, tmp_path / "op.pth", {"Car": 0.55, "Pedestrian": 0.75}, "chosen on val")
    before, after = read_checkpoint(src), read_checkpoint(out)
    assert after["config"]["head"]["post"]["operating_thresholds"] == {"Car": 0.55, "Pedestrian": 0.75}
    assert after["meta"] == {"provenance": "a test", "operating_point": "chosen on val"}
    assert before["state_dict"].keys() == after["state_dict"].keys()
    for k, v in before["state_dict"].items():
        assert after["state_dict"][k].dtype == v.dtype and torch.equal(after["state_dict"][k], v)
    with zipfile.ZipFile(out) as z:  # written deflated, as the bundled weights are
        assert {i.compress_type for i in z.infolist() if i.file_size > 1000} == {zipfile.ZIP_DEFLATED}
    det = Detector.from_checkpoint(out, "cpu")
    assert det.operating_thresholds == {"Car": 0.55, "Pedestrian": 0.75}
    assert det.thresholds.per_class == ()  # recorded, not applied: evaluation keeps every box
    # in place, and a bad value is refused before anything is written
    record_operating_thresholds(out, out, {"Cyclist": 0.6}, "again")
    assert read_checkpoint(out)["config"]["head"]["post"]["operating_thresholds"] == {"Cyclist": 0.6}
    size = out.stat().st_size
    for bad, why in (({"Truck": 0.5}, "not one of class_names"), ({"Car": 1.5}, r"score in \[0, 1\]")):
        with pytest.raises(CheckpointError, match=why):
            record_operating_thresholds(out, out, bad, "bad")
    assert out.stat().st_size == size
    assert read_checkpoint(out)["config"]["head"]["post"]["operating_thresholds"] == {"Cyclist": 0.6}
