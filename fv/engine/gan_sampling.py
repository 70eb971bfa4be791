"""GAN video synthesis (thesis 2.2.1): R makes the motion codes, G_I renders every frame in one pass.

Shared by the trainer (generated samples for the adversarial game), the engine and the exporter.
"""

from __future__ import annotations

import torch

from fv.engine.labels import N_FRAMES


def motion_inputs(batch: int, dim: int = 10, n_frames: int = N_FRAMES,
                  generator: torch.Generator | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise e_t [B, T, dim] and initial hidden state h0 [B, dim], both N(0, I) (MoCoGAN-style)."""
    e = torch.randn(batch, n_frames, dim, generator=generator)
    h0 = torch.randn(batch, dim, generator=generator)
    return e.to(device), h0.to(device)


def per_sample_motion_inputs(seeds: list[int], dim: int = 10, n_frames: int = N_FRAMES,
                             device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Motion noise drawn per request from its own seed, so a request never depends on its batch."""
    pairs = [motion_inputs(1, dim, n_frames, torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.cat([p[0] for p in pairs]).to(device), torch.cat([p[1] for p in pairs]).to(device)


def render_frames(G, ref_feats: tuple[torch.Tensor, ...], codes: torch.Tensor,
                  category: torch.Tensor) -> torch.Tensor:
    """ref_feats from G.encode (batch B), codes [B, T, D], category [B, 7] -> video [B, T, 3, H, W].

    The reference features are computed once per video and repeated over its T frames."""
    B, T, D = codes.shape
    ref = tuple(f.repeat_interleave(T, dim=0) for f in ref_feats)
    frames = G.decode(ref, codes.reshape(B * T, D), category.repeat_interleave(T, dim=0))
    return frames.view(B, T, *frames.shape[1:])


def gan_video(R, G, x_ref: torch.Tensor, category: torch.Tensor, noise: torch.Tensor,
              h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x_ref [B, 3, 64, 64], category [B, 7], noise [B, T, 10], h0 [B, 10] -> (video [B, T, 3, 64, 64],
    motion codes [B, T, 10])."""
    codes = R(noise, h0, category)
    return render_frames(G, G.encode(x_ref), codes, category), codes
