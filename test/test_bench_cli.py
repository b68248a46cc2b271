"""sparsekd-bench's command line: a zoo row with real figures, and clear errors for bad arguments."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sparsekd_core.cli.bench import main
from sparsekd_core.config import load_model_config
from sparsekd_core.models.detector import build_detector

REPO = Path(__file__).resolve().parents[1]
FRAME = REPO / "sparsekd_core/assets/sample_data/kitti/training/velodyne_reduced/000008.bin"


def test_one_model_gives_params_macs_and_latency(capsys):
    code = main(["--models", "cp_pillar_v0.64_sim", "--frame", str(FRAME), "--device", "cpu", "--runs", "1",
                 "--warmup", "0", "--fp16", "--json"])
    assert code == 0
    (row,) = json.loads(capsys.readouterr().out)["zoo"]
    assert row["model"] == "cp_pillar_v0.64_sim" and row["device"] == "cpu"
    assert row["fp16"] is False  # fp16 is a CUDA-only setting: ignored on a CPU, and the row says so
    assert row["points"] == len(np.fromfile(FRAME, np.float32)) // 4
    model = build_detector(load_model_config("cp_pillar_v0.64_sim"))
    assert row["params"] == sum(p.numel() for p in model.parameters())
    assert 0.5 < row["gflops"] < 20 and row["latency_ms_median"] > 0


@pytest.mark.parametrize("pairs", ["cp_voxel", "cp_voxel:", ",", "a:b:c"])
def test_bad_train_pairs_say_the_format(pairs, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--skip-zoo", "--train", "--train-pairs", pairs])
    assert e.value.code == 2
    assert "teacher:student pairs" in capsys.readouterr().err


def test_skip_zoo_needs_no_frame(capsys):
    # --skip-zoo --train/--data on a machine without ../shared: the zoo's default frame is not needed
    assert main(["--skip-zoo", "--frame", "/nonexistent/frame.npy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {}
