"""The CUDA paths, which CI (no GPU) never runs: the GPU voxelises a frame into the CPU's voxels, the
bundled students compute the same maps and boxes on the GPU as on the CPU, fp16 inference stays close to
fp32, sparsekd-train trains and distils with AMP on the GPU (and its model loads on a CPU), and a resume
restores the AMP grad scaler.

Every test here skips without CUDA; on a GPU machine `make test` runs them with the rest. (NCCL is not here:
torchrun's ranks each take their own GPU, so it needs a machine with two.)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsekd_core.checkpoint import read_checkpoint, write_untrained_checkpoint
from sparsekd_core.cli.train import main as train_main
from sparsekd_core.config import load_model_config
from sparsekd_core.inference import load_detector
from sparsekd_core.ops.voxelize import VoxelBatch
from sparsekd_core.train.synthetic import write_toy_kitti

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sparsekd_core/assets/sample_data/kitti/training/velodyne_reduced/000008.bin"
TINY_STUDENT = """\
base: cp_voxel_xxs_sim
voxelization:
  voxel_size: [0.2, 0.2, 0.1]
  point_cloud_range: [0.0, -6.4, -3.0, 12.8, 6.4, 1.0]
"""
TINY_TEACHER = TINY_STUDENT.replace("cp_voxel_xxs_sim", "cp_voxel_sim")


def _sample_points() -> np.ndarray:
    return np.fromfile(SAMPLE, dtype=np.float32).reshape(-1, 4)


def _sorted_voxels(vb: VoxelBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """coords, num_points and the mean point of each voxel, on the CPU, in coordinate order."""
    coords, nums, voxels = vb.coords.long().cpu(), vb.num_points.long().cpu(), vb.voxels.float().cpu()
    key = ((coords[:, 0] * 4096 + coords[:, 1]) * 4096 + coords[:, 2]) * 4096 + coords[:, 3]
    order = key.argsort()
    means = voxels.sum(1) / nums.clamp(min=1)[:, None]
    return coords[order], nums[order], means[order]


def _maps(model, vb: VoxelBatch, fp16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigmoid heatmap, regression maps) of one forward on ``vb``, moved to the model's device, as float32 CPU."""
    device = next(model.parameters()).device
    vb = VoxelBatch(vb.voxels.to(device), vb.num_points.to(device), vb.coords.to(device), vb.batch_size)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
        head = model.forward_voxels(vb).head
    return head.heatmap.float().sigmoid().cpu(), head.regression().float().cpu()


def _gap(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
    """Largest heatmap difference, and largest regression difference where either heatmap is above 0.1."""
    hm = (a[0] - b[0]).abs().max().item()
    peaks = (torch.maximum(a[0], b[0]).amax(1, keepdim=True) > 0.1).expand_as(a[1])
    reg = (a[1] - b[1]).abs()[peaks].max().item() if peaks.any() else 0.0
    return hm, reg


def _points_within_caps(det, points: np.ndarray) -> np.ndarray:
    """The points ``det``'s voxels keep of ``points``: a cloud no voxel of that grid holds too many of."""
    vb = det.model.voxelize([torch.from_numpy(points).to(det.device)])
    kept = torch.arange(vb.voxels.shape[1], device=vb.voxels.device)[None, :] < vb.num_points[:, None].long()
    return vb.voxels[kept].cpu().numpy()


def _confident_boxes_agree(a, b, above: float = 0.3, metres: float = 0.1, score: float = 0.01) -> int:
    """Every box scoring >= ``above`` in one result has a box of its class in the other within ``metres``
    and ``score``. Returns how many boxes were checked."""
    checked = 0
    for x, y in ((a, b), (b, a)):
        for box, s, label in zip(x.boxes, x.scores, x.labels):
            if s < above:
                continue
            same = y.labels == label
            dist = np.linalg.norm(y.boxes[same, :3] - box[:3], axis=1)
            assert dist.size and dist.min() < metres, f"no partner for the class-{label} box at {box[:3]} ({s:.2f})"
            assert abs(y.scores[same][dist.argmin()] - s) < score
            checked += 1
    return checked


@pytest.mark.parametrize("name", ["cp_voxel_s", "cp_pillar_v0.64"])
def test_gpu_voxelisation_finds_the_same_voxels(name):
    det = load_detector(name, "cpu")
    points = torch.from_numpy(_sample_points())
    on_cpu = _sorted_voxels(det.model.voxelize([points]))
    on_gpu = _sorted_voxels(det.model.cuda().voxelize([points.cuda()]))
    assert len(on_cpu[0]) > 500  # 0.64 m pillars: about 600 on this camera-cropped frame
    assert torch.equal(on_cpu[0], on_gpu[0]) and torch.equal(on_cpu[1], on_gpu[1])
    # a voxel holding fewer points than its cap keeps all of them, whichever order the GPU visits them in
    whole = on_cpu[1] < det.model.cfg.voxelization.max_points_per_voxel
    assert torch.allclose(on_cpu[2][whole], on_gpu[2][whole], atol=1e-5)


@pytest.mark.parametrize("name", ["cp_voxel_s", "cp_pillar_v0.64"])
def test_bundled_students_compute_the_same_maps_on_the_gpu(name):
    cpu, gpu = load_detector(name, "cpu"), load_detector(name, "cuda")
    assert gpu.device.type == "cuda" and next(gpu.model.parameters()).is_cuda
    vb = cpu.model.voxelize([torch.from_numpy(_sample_points())])
    hm, reg = _gap(_maps(cpu.model, vb), _maps(gpu.model, vb))
    print(f"{name}: GPU vs CPU max heatmap gap {hm:.2e}, regression gap at peaks {reg:.2e}")
    assert hm < 5e-3 and reg < 5e-2
    # end to end: points_within_caps keeps the points the CPU's voxels hold, so both devices voxelise all of them
    # the same way (from a full frame, a voxel over its point cap keeps other points on the GPU: seen, a pillar
    # student's boxes then moved, or changed class, near the sensor)
    points = _points_within_caps(cpu, _sample_points())
    assert _confident_boxes_agree(cpu(points), gpu(points)) >= 3


@pytest.mark.parametrize("name", ["cp_voxel_s", "cp_pillar_v0.64"])
def test_fp16_inference_stays_close_to_fp32(name):
    det = load_detector(name, "cuda")
    vb = det.model.voxelize([torch.from_numpy(_sample_points()).cuda()])
    hm, reg = _gap(_maps(det.model, vb), _maps(det.model, vb, fp16=True))
    print(f"{name}: fp16 vs fp32 max heatmap gap {hm:.2e}, regression gap at peaks {reg:.2e}")
    assert hm < 0.03 and reg < 0.1
    fp16 = load_detector(name, "cuda", fp16=True)
    assert fp16.fp16 and not det.fp16
    boxes = fp16(_sample_points())
    assert boxes.boxes.dtype == np.float32 and np.isfinite(boxes.boxes).all() and len(boxes) >= 1


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    (root / "student.yaml").write_text(TINY_STUDENT)
    (root / "teacher.yaml").write_text(TINY_TEACHER)
    cfg = load_model_config(root / "student.yaml")
    write_toy_kitti(root / "kitti", cfg.voxelization.point_cloud_range, cfg.class_names, n_train=8, n_val=2)
    return root


def _train(toy, out, *extra) -> dict:
    code = train_main(["--model", str(toy / "student.yaml"), "--data", str(toy / "kitti"), "--out", str(out),
                       "--batch-size", "2", "--workers", "0", "--device", "cuda", "--quiet", *extra])
    assert code == 0
    return json.loads((out / "summary.json").read_text())


def _losses(out: Path) -> list[float]:
    return [r["loss/total"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
            if "loss/total" in r]


def test_amp_training_on_the_gpu_learns_and_its_model_loads_on_a_cpu(toy, tmp_path):
    out = tmp_path / "run"
    summary = _train(toy, out, "--epochs", "6", "--log-every", "1")
    assert summary["device"].startswith("cuda") and summary["amp"] is True
    losses = _losses(out)
    assert len(losses) == summary["steps"] == 24 and all(np.isfinite(losses))
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4]), losses
    points = np.fromfile(sorted((toy / "kitti/training/velodyne").glob("*.bin"))[0], np.float32).reshape(-1, 4)
    cpu, gpu = load_detector(out / "final.pth", "cpu"), load_detector(out / "final.pth", "cuda")
    vb = cpu.model.voxelize([torch.from_numpy(points)])
    hm, reg = _gap(_maps(cpu.model, vb), _maps(gpu.model, vb))
    assert hm < 5e-3 and reg < 5e-2


def test_distillation_with_amp_on_the_gpu(toy, tmp_path):
    teacher = write_untrained_checkpoint(str(toy / "teacher.yaml"), tmp_path / "teacher.pth")
    out = tmp_path / "kd"
    summary = _train(toy, out, "--teacher", str(teacher), "--kd", "sparsekd", "--epochs", "2", "--log-every", "1")
    assert summary["amp"] is True and summary["steps"] == 8
    rows = [json.loads(r) for r in (out / "log.jsonl").read_text().splitlines()]
    kd_terms = [r["loss/kd_hm"] for r in rows if "loss/kd_hm" in r]
    assert kd_terms and all(np.isfinite(kd_terms)) and max(kd_terms) > 0


def test_resume_on_the_gpu_restores_the_grad_scaler(toy, tmp_path):
    out = tmp_path / "run"
    _train(toy, out, "--epochs", "2", "--max-steps", "4")
    ckpt = sorted(out.glob("ckpt_*.pth"))[-1]
    state = read_checkpoint(ckpt)["training"]["grad_scaler"]
    assert state and state["scale"] > 0
    summary = _train(toy, out, "--epochs", "2", "--resume")
    assert summary["steps"] == 8 and summary["amp"] is True

