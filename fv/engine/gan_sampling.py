"""GAN video synthesis (thesis 2.2.1): R makes the motion codes, G_I renders every frame in one pass.

The trainer's path (generated samples for the adversarial game, with gradients through R and G_I). The
engine renders the same videos through the exported encoder / decoder networks (fv.engine.families.gan).
"""

from __future__ import annotations

import torch


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
