"""MAC counting: spconv pair counts against brute force, dense layers against hand formulas."""
import itertools

import torch
from torch import nn

from sparsekd_core.bench.flops import count_macs
from sparsekd_core.ops.spconv_compat import spconv


class _Sparse(nn.Module):
    def __init__(self):
        super().__init__()
        self.subm = spconv.SubMConv3d(4, 8, 3, bias=False, indice_key="s")
        self.down = spconv.SparseConv3d(8, 16, 3, stride=2, padding=1, bias=False, indice_key="d")

    def forward(self, x):
        return self.down(self.subm(x))


def test_sparse_conv_macs_match_brute_force_pairs():
    torch.manual_seed(0)
    coords = torch.unique(torch.randint(0, 12, (400, 3)), dim=0).int()
    idx = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int32), coords], 1)
    x = spconv.SparseConvTensor(torch.randn(len(idx), 4), idx, [12, 12, 12], 1)
    model = _Sparse()
    count = count_macs(model, lambda: model(x))
    sites = set(map(tuple, coords.tolist()))
    subm_pairs = sum(tuple(a + b for a, b in zip(c, o)) in sites
                     for c in sites for o in itertools.product([-1, 0, 1], repeat=3))
    down_pairs = sum(all((c[i] + 1 - o[i]) % 2 == 0 and 0 <= (c[i] + 1 - o[i]) // 2 < 6 for i in range(3))
                     for c in sites for o in itertools.product([0, 1, 2], repeat=3))
    # "all pairs": every (input, output) pair of the submanifold conv, centre included
    assert count.total_all_pairs == subm_pairs * 4 * 8 + down_pairs * 8 * 16
    # reference convention: spconv reports each symmetric neighbour pair once and leaves out the centre
    assert count.total == (subm_pairs - len(sites)) // 2 * 4 * 8 + down_pairs * 8 * 16


def test_dense_layer_macs_follow_thop():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                          nn.ConvTranspose2d(8, 4, 2, stride=2, bias=False))
    x = torch.randn(1, 3, 10, 12)
    count = count_macs(model, lambda: model(x))
    conv = 8 * 10 * 12 * 3 * 3 * 3
    bn = 2 * 8 * 10 * 12
    deconv = (4 * 20 * 24) * 8 * 2 * 2  # thop: output elements x Cin x k x k
    assert count.total == conv + bn + deconv
    assert count.per_stage == {"0": conv, "1": bn, "2": deconv}
