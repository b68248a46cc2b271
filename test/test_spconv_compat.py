"""The spconv CPU shims: backward works without CUDA, and multi-threaded sparse convs give correct sums."""
import torch

from sparsekd_core.ops.spconv_compat import spconv


def _random_sparse(seed, n=3000, size=24, channels=16):
    torch.manual_seed(seed)
    coords = torch.unique(torch.randint(0, size, (n, 3)), dim=0).int()
    idx = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int32), coords], 1)
    return torch.randn(len(idx), channels), idx


def test_strided_sparse_conv_matches_dense_conv3d_with_two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for trial in range(10):
            feats, idx = _random_sparse(trial)
            conv = spconv.SparseConv3d(16, 32, 3, stride=2, padding=1, bias=False, indice_key="k")
            out = conv(spconv.SparseConvTensor(feats, idx, [24, 24, 24], 1)).dense()
            dense_in = spconv.SparseConvTensor(feats, idx, [24, 24, 24], 1).dense()
            ref = torch.nn.functional.conv3d(dense_in, conv.weight.permute(0, 4, 1, 2, 3), stride=2, padding=1)
            assert (out - ref).abs().max() < 1e-3, f"trial {trial}"
    finally:
        torch.set_num_threads(threads)


def test_cpu_backward_gives_the_dense_gradient():
    feats, idx = _random_sparse(0, n=400, size=8, channels=4)
    feats.requires_grad_(True)
    conv = spconv.SubMConv3d(4, 8, 3, padding=1, bias=False, indice_key="s")
    out = conv(spconv.SparseConvTensor(feats, idx, [8, 8, 8], 1))
    (out.features ** 2).sum().backward()
    # the same submanifold conv as a dense conv3d evaluated only at the active sites
    dense_feats = feats.detach().clone().requires_grad_(True)
    dense_in = spconv.SparseConvTensor(dense_feats, idx, [8, 8, 8], 1).dense()
    ref = torch.nn.functional.conv3d(dense_in, conv.weight.permute(0, 4, 1, 2, 3), padding=1)
    b, z, y, x = idx.long().unbind(1)
    (ref[b, :, z, y, x] ** 2).sum().backward()
    assert torch.allclose(feats.grad, dense_feats.grad, atol=1e-4)


def test_a_layer_built_for_implicit_gemm_runs_on_cpu_tensors():
    # A CUDA build of spconv gives each layer MaskImplicitGemm, a CUDA-only algorithm; on CPU tensors the layer
    # must fall back to the native algorithm and give the same result (this CPU-only build cannot construct such a
    # layer, so the test sets the algorithm afterwards, as a CUDA build would have).
    from spconv.core import ConvAlgo

    feats, idx = _random_sparse(1, n=500, size=12, channels=4)
    for make in (lambda: spconv.SubMConv3d(4, 8, 3, bias=False, indice_key="s"),
                 lambda: spconv.SparseConv3d(4, 8, 3, stride=2, padding=1, bias=False)):
        native = make()
        reference = native(spconv.SparseConvTensor(feats, idx, [12, 12, 12], 1)).dense()
        native.algo = ConvAlgo.MaskImplicitGemm
        out = native(spconv.SparseConvTensor(feats, idx, [12, 12, 12], 1)).dense()
        assert native.algo == ConvAlgo.MaskImplicitGemm  # restored after the call
        assert torch.equal(out, reference)
