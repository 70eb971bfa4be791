"""VICEGAN networks (thesis 2.2) and the onlyEM motion generator (thesis 3.1).

Tensors: frames [B, 3, 64, 64] and videos [B, T, 3, 64, 64] in [-1, 1]; motion codes [B, T, 10];
category codes z_a [B, 7] one-hot (fv.engine.labels.CLASSES).
"""

from __future__ import annotations

import torch
from torch import nn


class MotionGRU(nn.Module):
    """Motion generator R: a GRU cell unrolled over T steps; h_t is the motion code of frame t-1.

    baseline: input e_t in R^10 (noise only, thesis 2.2.1).
    onlyEM:   input [e_t ; flatten(z_a (x) h_{t-1})] in R^(10 + 7*10) (thesis 3.1.1), the outer product of
              the one-hot emotion with the previous hidden state, flattened row-major (C_t in R^{7x10}).
    """

    def __init__(self, dim_z_motion: int = 10, n_classes: int = 7, conditioned: bool = False):
        super().__init__()
        self.dim = dim_z_motion
        self.n_classes = n_classes
        self.conditioned = conditioned
        in_dim = dim_z_motion + (dim_z_motion * n_classes if conditioned else 0)
        self.cell = nn.GRUCell(in_dim, dim_z_motion)

    def forward(self, noise: torch.Tensor, h0: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        # noise [B, T, 10], h0 [B, 10], category [B, 7] (ignored unless conditioned) -> codes [B, T, 10]
        h = h0
        codes = []
        for t in range(noise.shape[1]):
            x = noise[:, t]
            if self.conditioned:
                c = (category.unsqueeze(2) * h.unsqueeze(1)).flatten(1)  # [B, 7, 10] -> [B, 70]
                x = torch.cat([x, c], dim=1)
            h = self.cell(x, h)
            codes.append(h)
        return torch.stack(codes, dim=1)


def _block_down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.GroupNorm(min(8, cout), cout), nn.LeakyReLU(0.2))


class _UpBlock(nn.Module):
    """x2 upsample, fuse the skip from the reference encoder, add the projected latent (motion, category)."""

    def __init__(self, cin: int, cskip: int, cout: int, latent: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv1 = nn.Conv2d(cin + cskip, cout, 3, 1, 1)
        self.norm1 = nn.GroupNorm(min(8, cout), cout)
        self.lat = nn.Linear(latent, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.norm2 = nn.GroupNorm(min(8, cout), cout)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, skip: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.up(x), skip], dim=1)
        x = self.act(self.norm1(self.conv1(x)) + self.lat(z)[:, :, None, None])
        return self.act(self.norm2(self.conv2(x)))


class FrameGenerator(nn.Module):
    """G_I: one frame from [content ; motion ; category] (baseline) or [content ; motion] (onlyEM).

    The content code z_c and the multi-scale skips come from the neutral frame f(0) (identity is taken
    from the input frame, never from a label, thesis 2.2.1). `encode` runs once per video, `decode` once
    per frame, `forward` = decode(encode(x_ref)).
    """

    def __init__(self, dim_z_content: int = 64, dim_z_motion: int = 10, n_classes: int = 7,
                 use_category: bool = True, ch: int = 32):
        super().__init__()
        self.use_category = use_category
        self.n_classes = n_classes
        c = [ch, ch * 2, ch * 4, ch * 8]
        self.enc = nn.ModuleList([_block_down(3, c[0]), _block_down(c[0], c[1]),
                                  _block_down(c[1], c[2]), _block_down(c[2], c[3])])  # 32,16,8,4 px
        self.to_content = nn.Linear(c[3] * 16, dim_z_content)
        latent = dim_z_content + dim_z_motion + (n_classes if use_category else 0)
        self.from_latent = nn.Linear(latent, c[3] * 16)
        self.mid = nn.Sequential(nn.Conv2d(2 * c[3], c[3], 3, 1, 1), nn.GroupNorm(8, c[3]), nn.ReLU())
        self.up = nn.ModuleList([_UpBlock(c[3], c[2], c[2], latent),   # 4 -> 8
                                 _UpBlock(c[2], c[1], c[1], latent),   # 8 -> 16
                                 _UpBlock(c[1], c[0], c[0], latent),   # 16 -> 32
                                 _UpBlock(c[0], 3, c[0], latent)])     # 32 -> 64, skip = f(0) itself
        self.out = nn.Conv2d(c[0], 3, 3, 1, 1)

    def encode(self, x_ref: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # x_ref [B, 3, 64, 64] -> (x_ref, e32, e16, e8, e4, z_c [B, dim_z_content])
        feats = [x_ref]
        h = x_ref
        for blk in self.enc:
            h = blk(h)
            feats.append(h)
        return (*feats, self.to_content(h.flatten(1)))

    def decode(self, ref: tuple[torch.Tensor, ...], motion: torch.Tensor,
               category: torch.Tensor) -> torch.Tensor:
        # ref from encode (batch B), motion [B, 10], category [B, 7] -> frame [B, 3, 64, 64]
        *skips, z_c = ref
        parts = [z_c, motion] + ([category] if self.use_category else [])
        z = torch.cat(parts, dim=1)
        bottom = skips[-1]
        h = self.from_latent(z).view_as(bottom)
        h = self.mid(torch.cat([h, bottom], dim=1))
        for blk, skip in zip(self.up, reversed(skips[:-1])):
            h = blk(h, skip, z)
        return torch.tanh(self.out(h))

    def forward(self, x_ref: torch.Tensor, motion: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x_ref), motion, category)


class FrameEncoder(nn.Module):
    """Export view of FrameGenerator.encode: x_ref [B, 3, 64, 64] -> (e32, e16, e8, e4, z_c), once per video."""

    def __init__(self, G: FrameGenerator):
        super().__init__()
        self.G = G
        self.train(G.training)  # a fresh wrapper defaults to train(); exporters restore that mode recursively

    def forward(self, x_ref: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.G.encode(x_ref)[1:]          # encode's first entry is x_ref itself


class FrameDecoder(nn.Module):
    """Export view of FrameGenerator.decode with flat inputs: (x_ref, e32, e16, e8, e4, z_c, motion, category)."""

    def __init__(self, G: FrameGenerator):
        super().__init__()
        self.G = G
        self.train(G.training)  # a fresh wrapper defaults to train(); exporters restore that mode recursively

    def forward(self, x_ref: torch.Tensor, e32: torch.Tensor, e16: torch.Tensor, e8: torch.Tensor, e4: torch.Tensor,
                content: torch.Tensor, motion: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        return self.G.decode((x_ref, e32, e16, e8, e4, content), motion, category)


class VideoDiscriminator(nn.Module):
    """D_V: 3-D convolutions over a whole clip, three heads (thesis 2.2.2): real/fake logit,
    emotion logits (the 6 target emotions) and identity logits (the training subjects)."""

    def __init__(self, n_emotions: int = 6, n_identities: int = 42, ch: int = 32, n_frames: int = 32,
                 spectral_norm: bool = False):
        super().__init__()
        c = [ch, ch * 2, ch * 4, ch * 8]
        # spectral_norm: every conv and head is 1-Lipschitz (Miyato et al. 2018) and the GroupNorms go; fv's
        # stabiliser for short runs (the thesis does not describe D_V's layers), see GANConfig.
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)

        def block(cin, cout, stride):
            norm = nn.Identity() if spectral_norm else nn.GroupNorm(min(8, cout), cout)
            return nn.Sequential(sn(nn.Conv3d(cin, cout, (3, 4, 4), stride, (1, 1, 1))), norm, nn.LeakyReLU(0.2))

        self.body = nn.Sequential(
            sn(nn.Conv3d(3, c[0], (3, 4, 4), (1, 2, 2), (1, 1, 1))), nn.LeakyReLU(0.2),  # T, 32 px
            block(c[0], c[1], (2, 2, 2)),                                            # T/2, 16 px
            block(c[1], c[2], (2, 2, 2)),                                            # T/4, 8 px
            block(c[2], c[3], (2, 2, 2)),                                            # T/8, 4 px
        )
        feat = c[3] * (n_frames // 8) * 16
        self.adv = sn(nn.Linear(feat, 1))
        self.emo = nn.Linear(feat, n_emotions)
        self.ide = nn.Linear(feat, n_identities)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # video [B, T, 3, 64, 64] -> (adv [B], emotion logits [B, 6], identity logits [B, n_id])
        h = self.body(video.transpose(1, 2)).flatten(1)
        return self.adv(h).squeeze(1), self.emo(h), self.ide(h)
