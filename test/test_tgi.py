"""Teacher-guided initialisation: exact reproduction at full width, narrowing by index, every mode end to end.

Models are the sim zoo entries on a small square range (small_models.py).
"""
import pytest
import torch

from sparsekd_core.kd.tgi import MODES, TGIError, apply_tgi, teacher_guided_init
from sparsekd_core.models.detector import build_detector

from conftest import trained_looking
from small_models import cloud, small

PAIRS = [("cp_voxel_sim", "cp_voxel_s_sim"), ("cp_voxel_sim", "cp_voxel_xxs_sim"),
         ("cp_pillar_sim", "cp_pillar_v0.64_sim"),
         # a pillar student narrowed in width on its teacher's grid
         ("cp_pillar_sim360", "cp_pillar_s_sim360"),
         # anchor heads, and SECOND's VoxelBackBone8x (plain sparse conv stages, no residual blocks)
         ("second_sim", "second_s_sim"), ("pointpillar_sim", "pointpillar_s_sim")]


_CACHE = {}


def teacher(name: str):
    if name not in _CACHE:
        torch.manual_seed(0)
        _CACHE[name] = trained_looking(build_detector(small(name))).eval()
    return _CACHE[name]


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("name", ["cp_voxel_sim", "cp_pillar_sim"])
def test_full_width_student_reproduces_teacher_in_every_mode(name):
    t = teacher(name)
    pts = [cloud(t.cfg, 0)]
    with torch.no_grad():
        ref = t(pts)
    for mode in MODES:
        student = build_detector(small(name)).eval()
        # importance order (keep_order=False) makes bn_scale / l1 a real permutation of every layer's channels
        result = apply_tgi(t, student, mode, keep_order=False)
        permuted = sum(not lm.outputs.is_identity() for lm in result.layers.values())
        assert (permuted > 20) == (mode != "first"), mode
        with torch.no_grad():
            out = student(pts)
        torch.testing.assert_close(out.head.heatmap, ref.head.heatmap, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.head.regression(), ref.head.regression(), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name", ["second_sim", "pointpillar_sim"])
def test_full_width_anchor_student_reproduces_teacher(name):
    """Through VoxelBackBone8x / PillarVFE, the BEV backbone and the anchor head's three convs."""
    t = teacher(name)
    pts = [cloud(t.cfg, 0)]
    with torch.no_grad():
        ref = t(pts).head
    for mode in MODES:
        student = build_detector(small(name)).eval()
        apply_tgi(t, student, mode, keep_order=False)
        with torch.no_grad():
            out = student(pts).head
        for m in ("cls", "box", "dir"):
            torch.testing.assert_close(getattr(out, m), getattr(ref, m), atol=1e-4, rtol=1e-5)


def test_narrow_anchor_head_keeps_every_anchor_output_and_the_kept_features():
    t = teacher("pointpillar_sim")
    result = teacher_guided_init(t, build_detector(small("pointpillar_s_sim")), "first")
    ts, sd = t.state_dict(), result.state_dict
    # the half-width BEV backbone keeps the first 64 of each 128-channel deblock, concatenated at 0, 128, 256
    kept = torch.cat([torch.arange(64), torch.arange(128, 192), torch.arange(256, 320)])
    for conv in ("conv_cls", "conv_box", "conv_dir_cls"):
        assert torch.equal(sd[f"head.{conv}.weight"], ts[f"head.{conv}.weight"][:, kept])
        assert torch.equal(sd[f"head.{conv}.bias"], ts[f"head.{conv}.bias"])


# ----------------------------------------------------------------------------- narrowing by index
def _expected(t_tensor, lm, key):
    """The teacher tensor at the selected indices, written out per layer kind."""
    leaf = key.rsplit(".", 1)[-1]
    o = lm.outputs.index
    if leaf == "num_batches_tracked":
        return t_tensor
    if lm.kind == "norm" or leaf == "bias":
        return t_tensor[o]
    i = lm.inputs.index
    if lm.kind in ("conv2d", "linear"):
        return t_tensor[o][:, i]
    if lm.kind == "deconv2d":  # (C_in, C_out, k, k)
        return t_tensor[i][:, o]
    assert lm.kind == "spconv"  # (C_out, k, k, k, C_in)
    return t_tensor[o][..., i]


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}->{p[1]}")
@pytest.mark.parametrize("mode", MODES)
def test_every_tensor_is_the_teacher_at_the_selected_indices_and_loads_strictly(pair, mode):
    t = teacher(pair[0])
    student = build_detector(small(pair[1]))
    result = teacher_guided_init(t, student, mode)
    t_state = t.state_dict()
    student.load_state_dict(result.state_dict, strict=True)
    covered = set()
    for name, lm in result.layers.items():
        for key in (k for k in t_state if k.rsplit(".", 1)[0] == name):
            assert torch.equal(result.state_dict[key], _expected(t_state[key], lm, key)), key
            covered.add(key)
    assert covered == set(student.state_dict())
    # consistency: a layer's kept inputs are what the layer before it kept
    lm = result.layers
    if "backbone3d.conv1.0.conv1" in lm:
        assert torch.equal(lm["backbone3d.conv1.0.conv1"].inputs.index, lm["backbone3d.conv_input.0"].outputs.index)
    assert torch.equal(lm["backbone2d.blocks.1.1"].inputs.index,
                       lm["backbone2d.blocks.0." + _last_conv(t, 0)].outputs.index)


def _last_conv(model, i):
    convs = [n for n, m in model.backbone2d.blocks[i].named_children() if isinstance(m, torch.nn.Conv2d)]
    return convs[-1]


def _top_sorted(values, k):
    return torch.sort(torch.argsort(values.abs(), descending=True, stable=True)[:k]).values


def test_bn_scale_choices_follow_gammas_through_height_compression_residuals_and_concat():
    t = teacher("cp_voxel_sim")
    student = build_detector(small("cp_voxel_xxs_sim"))
    result = teacher_guided_init(t, student, "bn_scale")
    sd, ts = result.state_dict, t.state_dict()
    # residual stage conv2: the strided conv's BN decides; each block reads those channels and its second
    # conv writes them back (spconv weights are (C_out, k, k, k, C_in))
    stage = _top_sorted(ts["backbone3d.conv2.0.1.weight"], 16)
    mid = _top_sorted(ts["backbone3d.conv2.2.bn1.weight"], 16)
    assert torch.equal(sd["backbone3d.conv2.1.bn2.weight"], ts["backbone3d.conv2.1.bn2.weight"][stage])
    assert torch.equal(sd["backbone3d.conv2.2.conv1.weight"], ts["backbone3d.conv2.2.conv1.weight"][mid][..., stage])
    assert torch.equal(sd["backbone3d.conv2.2.conv2.weight"], ts["backbone3d.conv2.2.conv2.weight"][stage][..., mid])
    # height compression: 3D channel c at height d is BEV channel 2c + d (two height cells)
    c3d = _top_sorted(ts["backbone3d.conv_out.1.weight"], 64)
    bev = (c3d[:, None] * 2 + torch.arange(2)[None, :]).reshape(-1)
    out0 = _top_sorted(ts["backbone2d.blocks.0.2.weight"], 32)
    assert torch.equal(sd["backbone2d.blocks.0.1.weight"], ts["backbone2d.blocks.0.1.weight"][out0][:, bev])
    # deconv weights are (C_in, C_out, k, k)
    last1 = _top_sorted(ts["backbone2d.blocks.1.17.weight"], 64)
    up1 = _top_sorted(ts["backbone2d.deblocks.1.1.weight"], 64)
    assert torch.equal(sd["backbone2d.deblocks.1.0.weight"], ts["backbone2d.deblocks.1.0.weight"][last1][:, up1])
    # concat of the deblocks: branch 1 is offset by the teacher's 256 channels of branch 0
    up0 = _top_sorted(ts["backbone2d.deblocks.0.1.weight"], 64)
    shared = _top_sorted(ts["head.shared_conv.1.weight"], 16)
    cat = torch.cat([up0, up1 + 256])
    assert torch.equal(sd["head.shared_conv.0.weight"], ts["head.shared_conv.0.weight"][shared][:, cat])
    # heads keep every output: 3 classes, 2 + 1 + 3 + 2 regression codes
    assert torch.equal(sd["head.heads.0.heatmap.1.bias"], ts["head.heads.0.heatmap.1.bias"])
    assert torch.equal(sd["head.heads.0.dim.1.weight"],
                       ts["head.heads.0.dim.1.weight"][:, _top_sorted(ts["head.heads.0.dim.0.1.weight"], 16)])


def test_l1_choice_counts_only_the_kept_inputs():
    t = teacher("cp_voxel_sim")
    result = teacher_guided_init(t, build_detector(small("cp_voxel_s_sim")), "l1")
    w = t.state_dict()["head.shared_conv.0.weight"]  # (64, 512, 3, 3)
    kept_in = result.layers["head.shared_conv.0"].inputs.index
    importance = w[:, kept_in].abs().sum(dim=(1, 2, 3))
    assert torch.equal(result.layers["head.shared_conv.0"].outputs.index, _top_sorted(importance, 32))


def test_pillar_student_of_same_widths_inherits_weights_unchanged():
    t = teacher("cp_pillar_sim")
    for mode in MODES:
        result = teacher_guided_init(t, build_detector(small("cp_pillar_v0.64_sim")), mode)
        for k, v in t.state_dict().items():
            assert torch.equal(result.state_dict[k], v), (mode, k)


def test_first_mode_keeps_leading_channels_and_offsets_the_concat():
    t = teacher("cp_voxel_sim")
    result = teacher_guided_init(t, build_detector(small("cp_voxel_s_sim")), "first")
    assert torch.equal(result.layers["head.shared_conv.0"].inputs.index,
                       torch.cat([torch.arange(128), torch.arange(256, 384)]))
    assert torch.equal(result.layers["backbone2d.blocks.0.1"].outputs.index, torch.arange(64))


# ----------------------------------------------------------------------------- failures are loud
def test_wider_student_other_family_and_unknown_mode_fail_with_reasons():
    narrow = build_detector(small("cp_voxel_xxs_sim"))
    with pytest.raises(TGIError, match="more than the teacher"):
        teacher_guided_init(narrow, build_detector(small("cp_voxel_sim")), "first")
    with pytest.raises(TGIError, match="teacher has a"):
        teacher_guided_init(teacher("cp_voxel_sim"), build_detector(small("cp_pillar_sim")), "first")
    with pytest.raises(TGIError, match="unknown TGI mode"):
        teacher_guided_init(teacher("cp_voxel_sim"), narrow, "random")
