"""Widening (kd/widen.py): a wide model grown from a narrower one of its structure computes exactly what the narrow
one computes, keeps room to learn, and refuses a pair it cannot map. Models: the sim zoo on a small range."""
import pytest
import torch

from sparsekd_core.kd.tgi import TGIError
from sparsekd_core.kd.widen import widen
from sparsekd_core.models.detector import build_detector

from conftest import trained_looking
from small_models import cloud, small

CENTER_PAIRS = [("cp_voxel_sim", "cp_voxel_s_sim"), ("cp_voxel_sim", "cp_voxel_xxs_sim"),
                ("cp_pillar_sim360", "cp_pillar_s_sim360")]
ANCHOR_PAIRS = [("second_sim", "second_s_sim"), ("pointpillar_sim", "pointpillar_s_sim")]


def grown(wide_name: str, narrow_name: str):
    """(wide, narrow): a narrow model with trained-looking BatchNorms, and a wide one, itself trained-looking
    before it is widened (so its extra channels hold something), both in eval mode."""
    torch.manual_seed(3)
    narrow = trained_looking(build_detector(small(narrow_name))).eval()
    torch.manual_seed(4)
    wide = trained_looking(build_detector(small(wide_name))).eval()
    widen(wide, narrow)
    return wide, narrow


@pytest.mark.parametrize("pair", CENTER_PAIRS, ids=lambda p: f"{p[0]}<-{p[1]}")
def test_widened_model_computes_what_the_narrow_one_computes(pair):
    wide, narrow = grown(*pair)
    for seed in (0, 1):
        pts = [cloud(narrow.cfg, seed)]
        with torch.no_grad():
            ref, out = narrow(pts).head, wide(pts).head
        assert ref.heatmap.abs().max() > 0.1  # a map worth comparing
        torch.testing.assert_close(out.heatmap, ref.heatmap, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.regression(), ref.regression(), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("pair", ANCHOR_PAIRS, ids=lambda p: f"{p[0]}<-{p[1]}")
def test_widened_anchor_model_computes_what_the_narrow_one_computes(pair):
    wide, narrow = grown(*pair)
    pts = [cloud(narrow.cfg, 0)]
    with torch.no_grad():
        ref, out = narrow(pts).head, wide(pts).head
    for m in ("cls", "box", "dir"):
        torch.testing.assert_close(getattr(out, m), getattr(ref, m), atol=1e-4, rtol=1e-5)


def test_the_extra_channels_keep_their_own_weights_and_learn_through_the_zeroed_ones():
    """The narrow model's block holds its weights, the weights from extra inputs into it are zero, the extra rows
    keep the wide model's initialisation, and a gradient reaches the zeroed weights: the extra channels matter
    as soon as training moves them."""
    wide, narrow = grown("cp_voxel_sim", "cp_voxel_s_sim")
    key = "backbone2d.blocks.0.4.weight"  # the second conv of the first block: 128 -> 128 teacher, 64 -> 64 student
    w, n = wide.state_dict()[key], narrow.state_dict()[key]
    assert w.shape == (128, 128, 3, 3) and n.shape == (64, 64, 3, 3)
    assert torch.equal(w[:64, :64], n)
    assert torch.count_nonzero(w[:64, 64:]) == 0
    assert w[64:].abs().mean() > 0.1 * n.abs().mean()

    wide.train()
    wide.zero_grad()
    wide([cloud(narrow.cfg, 0)]).head.heatmap.sigmoid().sum().backward()
    grad = dict(wide.named_parameters())[key].grad
    assert grad[:64, 64:].abs().max() > 0


def test_pairs_it_cannot_map_fail_with_the_layer_named():
    with pytest.raises(TGIError, match="more than the teacher"):  # the "narrow" one is the wider
        widen(build_detector(small("cp_voxel_s_sim")), build_detector(small("cp_voxel_sim")))
    with pytest.raises(TGIError, match="teacher has a"):
        widen(build_detector(small("cp_voxel_sim")), build_detector(small("cp_pillar_v0.64_sim")))
    with pytest.raises(TGIError, match="across grids"):  # a 0.64 m pillar student under a 0.32 m teacher
        widen(build_detector(small("cp_pillar_sim")), build_detector(small("cp_pillar_v0.64_sim")))
