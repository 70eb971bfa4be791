"""VICEGAN / onlyEM networks: the GRU's conditioning against a hand-written cell, shapes, heads."""

import torch

from fv.engine.gan_sampling import gan_video
from fv.engine.motion import motion_noise
from fv.engine.models.gan import FrameGenerator, MotionGRU, VideoDiscriminator


def _gru_cell_by_hand(cell: torch.nn.GRUCell, x, h):
    # PyTorch's GRUCell equations written out: r, z, n gates.
    W_ir, W_iz, W_in = cell.weight_ih.chunk(3)
    W_hr, W_hz, W_hn = cell.weight_hh.chunk(3)
    b_ir, b_iz, b_in = cell.bias_ih.chunk(3)
    b_hr, b_hz, b_hn = cell.bias_hh.chunk(3)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    return (1 - z) * n + z * h


def test_onlyem_gru_input_is_noise_and_outer_product():
    torch.manual_seed(0)
    R = MotionGRU(10, 7, conditioned=True)
    assert R.cell.input_size == 10 + 70
    B, T = 3, 5
    e, h0 = torch.randn(B, T, 10), torch.randn(B, 10)
    za = torch.eye(7)[[0, 3, 6]]
    codes = R(e, h0, za)
    h = h0
    for t in range(T):
        # C_t = z_a (outer) h_{t-1} in R^{7x10}, flattened row-major (thesis 3.1.1)
        c = torch.stack([torch.outer(za[b], h[b]).reshape(-1) for b in range(B)])
        h = _gru_cell_by_hand(R.cell, torch.cat([e[:, t], c], 1), h)
        torch.testing.assert_close(codes[:, t], h, atol=1e-6, rtol=1e-5)
    # only the row of the active emotion is non-zero in the conditioning block
    c = torch.outer(za[1], h0[1]).reshape(7, 10)
    assert c[3].abs().sum() > 0 and c[[0, 1, 2, 4, 5, 6]].abs().sum() == 0


def test_baseline_gru_ignores_category():
    R = MotionGRU(10, 7, conditioned=False)
    assert R.cell.input_size == 10
    e, h0 = torch.randn(2, 32, 10), torch.randn(2, 10)
    a = R(e, h0, torch.eye(7)[[0, 1]])
    b = R(e, h0, torch.eye(7)[[5, 2]])
    assert a.shape == (2, 32, 10) and torch.equal(a, b)


def test_generator_and_discriminator_shapes_and_category_use():
    torch.manual_seed(0)
    G = FrameGenerator(16, 10, 7, use_category=True, ch=8).eval()
    G_em = FrameGenerator(16, 10, 7, use_category=False, ch=8).eval()
    D = VideoDiscriminator(6, 5, ch=8, n_frames=32)
    R = MotionGRU(10, 7)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    e, h0 = motion_noise([1, 2], 10)
    v, codes = gan_video(R, G, x, torch.eye(7)[[0, 3]], e, h0)
    assert v.shape == (2, 32, 3, 64, 64) and codes.shape == (2, 32, 10)
    assert v.abs().max() <= 1
    v2, _ = gan_video(R, G, x, torch.eye(7)[[1, 4]], e, h0)
    assert not torch.allclose(v, v2)                      # baseline G_I reads the category code
    w1, _ = gan_video(R, G_em, x, torch.eye(7)[[0, 3]], e, h0)
    w2, _ = gan_video(R, G_em, x, torch.eye(7)[[1, 4]], e, h0)
    assert torch.equal(w1, w2)                            # onlyEM's G_I does not
    adv, emo, ide = D(v)
    assert adv.shape == (2,) and emo.shape == (2, 6) and ide.shape == (2, 5)


def test_gan_video_batch_equals_single():
    torch.manual_seed(0)
    G, R = FrameGenerator(16, 10, 7, ch=8).eval(), MotionGRU(10, 7).eval()
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    cat = torch.eye(7)[[0, 2, 5]]
    e, h0 = motion_noise([7, 8, 9], 10)
    with torch.no_grad():
        batch, _ = gan_video(R, G, x, cat, e, h0)
        for i, s in enumerate([7, 8, 9]):
            ei, hi = motion_noise([s], 10)
            one, _ = gan_video(R, G, x[i:i + 1], cat[i:i + 1], ei, hi)
            torch.testing.assert_close(batch[i:i + 1], one, atol=1e-5, rtol=1e-5)


def test_spectral_norm_discriminator_is_one_lipschitz_per_layer():
    """disc_spectral_norm: after a few training-mode passes (power iterations) every conv and the real/fake
    head have largest singular value 1 (checked with an SVD), and there are no GroupNorms left."""
    torch.manual_seed(0)
    D = VideoDiscriminator(n_emotions=6, n_identities=3, ch=4, n_frames=8, spectral_norm=True).train()
    with torch.no_grad():
        for _ in range(30):
            D(torch.randn(2, 8, 3, 64, 64))
    layers = [m for m in D.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.Linear))
              and hasattr(m, "parametrizations")]
    assert len(layers) == 5                          # 4 convs + the real/fake head
    for m in layers:
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        assert abs(torch.linalg.matrix_norm(w, ord=2).item() - 1.0) < 1e-2
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in D.modules())
    plain = VideoDiscriminator(n_emotions=6, n_identities=3, ch=4, n_frames=8)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in plain.modules())
