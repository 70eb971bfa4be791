"""LFDM's flow diffusion model (Ni et al., CVPR 2023, sec. 3.2; thesis 2.3): a conditional space-time U-Net
over the whole 32-frame sequence of latent flows and visibility maps, fv's own small version.

    x_t        [B, 3, T, h, w]   noisy (flow_x, flow_y) / flow_scale and 2 visibility - 1 (fv.engine.families.lfdm)
    t          [B] int64         diffusion timestep
    emotion    [B, 7]            one-hot class (all zero: guidance's unconditional half)
    latent     [B, C, h, w]      the LFAE's latent of the reference frame 0, the image condition
    -> prediction [B, 3, T, h, w] (eps or x0: LFDMConfig.prediction)

Blocks factorise space and time as the paper's 3D U-Net does (a (1,3,3) spatial conv, a (3,1,1) temporal conv);
the image condition is concatenated to x_t at the input (broadcast over frames), the class embedding is added to
the time embedding, a learned per-frame embedding tells each frame where it is in the 32-frame clip, and the
lowest level attends over time at every position (plain matmuls: exports to any opset).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fv.engine.models.unet import SinusoidalEmbedding


@dataclass(frozen=True)
class FlowUNetConfig:
    channels: int = 3              # flow x, flow y, visibility
    n_frames: int = 32
    latent_ch: int = 16            # the LFAE's latent channels (the condition)
    cond_ch: int = 16              # ... projected to this many before the concatenation
    ch: tuple[int, ...] = (24, 48, 64)   # one level per entry; each level below the first halves h and w
    blocks: int = 1                # res blocks per level (down path; the up path has blocks + 1)
    time_dim: int = 64
    n_classes: int = 7
    groups: int = 8
    heads: int = 4                 # temporal attention at the lowest level
    dropout: float = 0.0


def _norm(ch: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, ch), ch)


class STBlock(nn.Module):
    """x [B, C, T, H, W]: spatial conv, + embedding, temporal conv, spatial conv; residual."""

    def __init__(self, c_in: int, c_out: int, emb: int, groups: int, dropout: float):
        super().__init__()
        self.n1, self.n2, self.n3 = _norm(c_in, groups), _norm(c_out, groups), _norm(c_out, groups)
        self.spatial1 = nn.Conv3d(c_in, c_out, (1, 3, 3), padding=(0, 1, 1))
        self.emb = nn.Linear(emb, c_out)
        self.temporal = nn.Conv3d(c_out, c_out, (3, 1, 1), padding=(1, 0, 0))
        self.drop = nn.Dropout(dropout)
        self.spatial2 = nn.Conv3d(c_out, c_out, (1, 3, 3), padding=(0, 1, 1))
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.spatial1(F.silu(self.n1(x))) + self.emb(F.silu(emb))[:, :, None, None, None]
        h = h + self.temporal(F.silu(self.n2(h)))
        h = self.spatial2(self.drop(F.silu(self.n3(h))))
        return self.skip(x) + h


class TemporalAttention(nn.Module):
    """Multi-head self-attention over the T frames at every (h, w) position, residual."""

    def __init__(self, ch: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = _norm(ch, groups)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.out = nn.Linear(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, T, H, W = x.shape
        tok = self.norm(x).permute(0, 3, 4, 2, 1).reshape(B * H * W, T, C)          # [BHW, T, C]
        q, k, v = self.qkv(tok).reshape(B * H * W, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) * (C // self.heads) ** -0.5, dim=-1)
        y = (att @ v).permute(0, 2, 1, 3).reshape(B * H * W, T, C)
        y = self.out(y).reshape(B, H, W, T, C).permute(0, 4, 3, 1, 2)
        return x + y


class FlowUNet(nn.Module):
    def __init__(self, cfg: FlowUNetConfig):
        super().__init__()
        self.cfg = cfg
        emb = 4 * cfg.time_dim
        self.time = nn.Sequential(SinusoidalEmbedding(cfg.time_dim), nn.Linear(cfg.time_dim, emb), nn.SiLU(),
                                  nn.Linear(emb, emb))
        self.emotion = nn.Linear(cfg.n_classes, emb, bias=False)   # zero one-hot -> no class (guidance)
        self.cond = nn.Conv2d(cfg.latent_ch, cfg.cond_ch, 3, padding=1)
        ch = cfg.ch
        self.inp = nn.Conv3d(cfg.channels + cfg.cond_ch, ch[0], (1, 3, 3), padding=(0, 1, 1))
        self.frame_pos = nn.Parameter(torch.zeros(1, ch[0], cfg.n_frames, 1, 1))
        nn.init.normal_(self.frame_pos, std=0.02)

        def block(a, b):
            return STBlock(a, b, emb, cfg.groups, cfg.dropout)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_ch = [ch[0]]
        c = ch[0]
        for lvl, width in enumerate(ch):
            for _ in range(cfg.blocks):
                self.down.append(block(c, width))
                c = width
                skip_ch.append(c)
            if lvl < len(ch) - 1:
                self.downsample.append(nn.Conv3d(c, c, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
                skip_ch.append(c)
        self.mid1, self.attn, self.mid2 = block(c, c), TemporalAttention(c, cfg.heads, cfg.groups), block(c, c)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl, width in reversed(list(enumerate(ch))):
            for _ in range(cfg.blocks + 1):
                self.up.append(block(c + skip_ch.pop(), width))
                c = width
            if lvl > 0:
                self.upsample.append(nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1)))
        self.out = nn.Sequential(_norm(c, cfg.groups), nn.SiLU(), nn.Conv3d(c, cfg.channels, (1, 3, 3),
                                                                            padding=(0, 1, 1)))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, emotion: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        emb = self.time(t) + self.emotion(emotion)
        T = x_t.shape[2]
        cond = self.cond(latent)[:, :, None].expand(-1, -1, T, -1, -1)
        h = self.inp(torch.cat([x_t, cond], 1)) + self.frame_pos
        skips = [h]
        blocks = iter(self.down)
        for lvl in range(len(cfg.ch)):
            for _ in range(cfg.blocks):
                h = next(blocks)(h, emb)
                skips.append(h)
            if lvl < len(cfg.ch) - 1:
                h = self.downsample[lvl](h)
                skips.append(h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        blocks = iter(self.up)
        for i, lvl in enumerate(reversed(range(len(cfg.ch)))):
            for _ in range(cfg.blocks + 1):
                h = next(blocks)(torch.cat([h, skips.pop()], 1), emb)
            if lvl > 0:
                size = skips[-1].shape[-2:]
                h = F.interpolate(h, size=(T, *size), mode="nearest")
                h = self.upsample[i](h)
        return self.out(h)
