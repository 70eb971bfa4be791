"""Temporal MLP-Mixer over a window of motion codes (thesis 2.6, 3.2.2 "Motion Conditioning", fig. 3.6).

The denoiser synthesises one frame at a time; its motion condition is the window of W = 7 motion
codes centred on that frame. `motion_windows` cuts those windows out of a whole trajectory and
`TemporalMixer` turns a window into one context-aware motion embedding:

    tokens  u_w = P z_{t+w-3}                       [N, W, C]   (per-code input projection)
    token   u <- u + (MLP_tok(LN(u)^T))^T            mixes over time (W), shared over channels
    channel u <- u + MLP_ch(LN(u))                   mixes over features (C), shared over time
    out     e = Q flatten(LN(u))                     [N, E]      (position-aware projection)

Flattening (rather than mean pooling) keeps which token is the current frame. An all-zero window is
the classifier-free-guidance "unconditional" input (thesis 3.2.3); it maps to the constant embedding
the biases give, never to NaN (LayerNorm of a constant row is 0, not 0/0, thanks to its epsilon).
"""

from __future__ import annotations

import torch
from torch import nn


class MotionWindowError(ValueError):
    """Bad input to `motion_windows`."""


def motion_windows(codes: torch.Tensor, window: int = 7) -> torch.Tensor:
    """[B, T, D] trajectory -> [B, T, W, D]: for each frame t the W codes centred on it.

    Ends are padded by replicating the first / last code: with W = 7 frame 0 sees
    [c0, c0, c0, c0, c1, c2, c3] and frame T-1 sees [c_{T-4}, ..., c_{T-1}, c_{T-1}, c_{T-1}, c_{T-1}].
    Index form: out[b, t, w] = codes[b, clamp(t + w - W//2, 0, T-1)].
    """
    if window < 1 or window % 2 == 0:
        raise MotionWindowError(f"window must be a positive odd number (centred on the frame), got {window}")
    if codes.dim() != 3 or codes.shape[1] < 1:
        raise MotionWindowError(f"codes must be [B, T, D] with T >= 1, got shape {tuple(codes.shape)}")
    n_frames = codes.shape[1]
    half = window // 2
    # idx[t, w] = clamp(t + w - half): replicate padding as a gather, [T, W]
    offsets = torch.arange(window, device=codes.device) - half
    idx = (torch.arange(n_frames, device=codes.device)[:, None] + offsets[None, :]).clamp(0, n_frames - 1)
    return codes[:, idx]  # [B, T, W, D]


class MixerBlock(nn.Module):
    """One Mixer layer (Tolstikhin et al. 2021): token MLP over W, then channel MLP over C, pre-LN + residual."""

    def __init__(self, tokens: int, channels: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.norm_tok = nn.LayerNorm(channels)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, tokens))
        self.norm_ch = nn.LayerNorm(channels)
        self.channel_mlp = nn.Sequential(
            nn.Linear(channels, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, channels)
        )

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        # u: [N, W, C]
        v = self.norm_tok(u).transpose(1, 2)  # [N, C, W]
        u = u + self.token_mlp(v).transpose(1, 2)  # token mixing: each channel's W-vector through one MLP
        return u + self.channel_mlp(self.norm_ch(u))  # channel mixing: each token's C-vector


class TemporalMixer(nn.Module):
    """Motion window [N, W, D] -> context-aware motion embedding [N, E] (thesis fig. 3.6)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        window: int = 7,
        channels: int = 64,
        hidden: int = 128,
        depth: int = 2,
        token_hidden: int | None = None,
    ):
        super().__init__()
        self.window = window
        self.in_dim = in_dim
        token_hidden = token_hidden if token_hidden is not None else max(2 * window, 8)
        self.embed = nn.Linear(in_dim, channels)  # per-code projection D -> C
        self.blocks = nn.ModuleList(MixerBlock(window, channels, token_hidden, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(channels)
        self.proj = nn.Linear(window * channels, out_dim)  # flatten W*C -> E

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        # motion: [N, W, D]
        u = self.embed(motion)  # [N, W, C]
        for block in self.blocks:
            u = block(u)
        return self.proj(self.norm(u).flatten(1))  # [N, E]
