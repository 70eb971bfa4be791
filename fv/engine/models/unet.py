"""Conditional U-Net denoiser (thesis 3.2.2, figs 3.3-3.5): f_theta(x_t, x_ref, t, z_m, z_a) -> its raw
prediction, eps or the clean target x0 as the config's objective says (fv.engine.diffusion.OBJECTIVES); the
samplers turn it into eps (DiffusionSchedule.eps_from), so the network holds no schedule.

Four conditioning paths, each on the part of the generation it should steer:
  identity  a Face Encoder on x_ref gives one feature map per resolution; a 1x1 conv projects each and
            it is ADDED to the U-Net encoder features at that resolution (spatial injection), and once
            more at the bottleneck.
  motion    the W = 7 codes around the frame -> TemporalMixer -> m [B, E]; every residual block adds
            Linear(m) as a per-channel bias (context-aware addition).
  emotion   z_a [B, 7] -> MLP -> e [B, E]; every residual block computes (gamma, beta) = Linear(e) and
            applies FiLM on the normalised features: h <- (1 + dgamma) * GroupNorm(h) + beta, so gamma
            starts near 1 (the FiLM projection is initialised small).
  time      sinusoidal embedding of t -> MLP -> tau [B, E], added in every residual block.
The bottleneck (fig 3.5b) is the heavily conditioned part: identity re-injection, res block,
self-attention, res block. All-zero motion and emotion are the classifier-free-guidance
"unconditional" input (thesis 3.2.3); they pass through the same layers and give finite, distinct
embeddings. Tensor shapes never drive Python control flow, so the whole module exports to ONNX.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .mixer import TemporalMixer


class UNetConfigError(ValueError):
    """An inconsistent UNetConfig."""


class UNetInputError(ValueError):
    """Inputs of the wrong shape for this ConditionalUNet."""



@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the conditional U-Net; saved inside every checkpoint and export."""

    image_size: int = 64
    in_ch: int = 3
    base_ch: int = 32  # stem width, also the width of the sinusoidal timestep features
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)  # level l has base_ch * ch_mult[l] channels at image_size / 2^l
    num_res_blocks: int = 1  # per encoder level (the decoder has one more, for the downsample skip)
    attn_resolutions: tuple[int, ...] = ()  # spatial sizes that get self-attention after each res block
    attn_heads: int = 4
    mid_attn: bool = True  # self-attention in the bottleneck
    dropout: float = 0.0
    groups: int = 8  # GroupNorm groups
    time_dim: int = 128  # width E of the time, motion and emotion embeddings
    motion_dim: int = 10  # 10 for VICEGAN / onlyEM motion codes, 16 for retrieved expression codes
    window: int = 7  # W, motion codes around the frame (thesis 3.2.2)
    mixer_depth: int = 2
    mixer_ch: int = 64
    mixer_hidden: int = 128
    n_classes: int = 7
    face_ch: tuple[int, ...] = (16, 32, 32, 32)  # face-encoder width per level (len == len(ch_mult))

    def __post_init__(self) -> None:
        levels = len(self.ch_mult)
        if levels < 1 or any(m < 1 for m in self.ch_mult):
            raise UNetConfigError(f"ch_mult must be a non-empty tuple of positive ints, got {self.ch_mult}")
        if len(self.face_ch) != levels:
            raise UNetConfigError(f"face_ch needs one width per level ({levels}), got {self.face_ch}")
        if self.image_size % 2 ** (levels - 1):
            raise UNetConfigError(f"image_size {self.image_size} must be divisible by 2^{levels - 1}")
        widths = (self.base_ch, *(self.base_ch * m for m in self.ch_mult), *self.face_ch)
        if any(w % self.groups for w in widths):
            raise UNetConfigError(
                f"every channel width {sorted(set(widths))} must be divisible by groups={self.groups}")
        if self.base_ch % 2:
            raise UNetConfigError(
                f"base_ch must be even (sin/cos halves of the timestep embedding), got {self.base_ch}")
        if self.window < 1 or self.window % 2 == 0:
            raise UNetConfigError(f"window must be a positive odd number, got {self.window}")
        sizes = {self.image_size >> lvl: self.base_ch * m for lvl, m in enumerate(self.ch_mult)}
        for r in self.attn_resolutions:
            if r not in sizes:
                raise UNetConfigError(f"attn_resolutions {r} is not one of the U-Net sizes {sorted(sizes)}")
        attn_widths = [sizes[r] for r in self.attn_resolutions] + ([widths[levels]] if self.mid_attn else [])
        if any(w % self.attn_heads for w in attn_widths):
            raise UNetConfigError(f"attn_heads={self.attn_heads} must divide the attention widths {attn_widths}")

    @classmethod
    def demo(cls, **overrides: Any) -> UNetConfig:
        """Small (~0.8 M parameters, ~0.27 GFLOP per 64x64 frame): trains on a 2-core CPU in minutes.
        Thin at full resolution (8 channels at 64x64), wide where it is cheap (64 at 8x8)."""
        base = dict(base_ch=8, ch_mult=(1, 2, 4, 8), num_res_blocks=1, attn_resolutions=(), mid_attn=True,
                    groups=4, time_dim=64, mixer_depth=2, mixer_ch=32, mixer_hidden=64, face_ch=(8, 8, 16, 32))
        return cls(**{**base, **overrides})

    @classmethod
    def thesis(cls, **overrides: Any) -> UNetConfig:
        """Thesis scale (~31 M parameters, ~18 GFLOP per 64x64 frame). The thesis gives no widths; this is a
        DDPM-style 64x64 U-Net (Ho et al. 2020): widths 64/128/256/256 at 64/32/16/8 px, 2 res blocks per
        level, attention at 16x16 and in the bottleneck, dropout 0.1. Base 128 with (1,2,2,2) has a similar
        parameter count (46 M) but 2.6x the FLOPs, spent at full resolution."""
        base = dict(base_ch=64, ch_mult=(1, 2, 4, 4), num_res_blocks=2, attn_resolutions=(16,), attn_heads=4,
                    mid_attn=True, dropout=0.1, groups=32, time_dim=256, mixer_depth=4, mixer_ch=128,
                    mixer_hidden=256, face_ch=(32, 64, 128, 256))
        return cls(**{**base, **overrides})

    @property
    def levels(self) -> int:
        return len(self.ch_mult)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists) for JSON or safetensors metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        """Inverse of to_dict; lists become tuples again."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise UNetConfigError(f"unknown UNetConfig keys {unknown}; known: {sorted(names)}")
        return cls(**{k: tuple(v) if str(names[k].type).startswith("tuple") else v for k, v in d.items()})


class SinusoidalEmbedding(nn.Module):
    """t [B] -> [B, dim]: (sin(t w_i), cos(t w_i)), w_i = 10000^(-i / (dim/2)) (Vaswani et al.; DDPM)."""

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)  # [dim/2], on the module's device once

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None, :]  # [B, dim/2]
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # [B, dim]


class CondResBlock(nn.Module):
    """Residual block of fig. 3.5a: conv, + time and motion biases, FiLM(emotion) on GroupNorm, conv, skip."""

    def __init__(self, c_in: int, c_out: int, emb: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(emb, c_out)
        self.motion = nn.Linear(emb, c_out)  # context-aware addition
        self.film = nn.Linear(emb, 2 * c_out)  # -> (dgamma, beta)
        nn.init.normal_(self.film.weight, std=0.02)  # gamma = 1 + dgamma starts near 1, beta near 0
        nn.init.zeros_(self.film.bias)
        self.norm2 = nn.GroupNorm(groups, c_out, affine=False)  # FiLM supplies the affine part
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, tau: torch.Tensor, m: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        # x [B, Ci, H, W]; tau, m, e [B, E]
        h = self.conv1(F.silu(self.norm1(x)))  # [B, Co, H, W]
        h = h + (self.time(F.silu(tau)) + self.motion(m))[:, :, None, None]
        dgamma, beta = self.film(e)[:, :, None, None].chunk(2, dim=1)  # [B, Co, 1, 1] each
        h = (1.0 + dgamma) * self.norm2(h) + beta  # FiLM(h | z_a) = gamma * h + beta
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h  # [B, Co, H, W]


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual; plain matmuls (exports to any opset)."""

    def __init__(self, ch: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b * self.heads, 3 * c // self.heads, hh * ww).chunk(3, dim=1)
        # q, k, v: [B*heads, d, N]; A = softmax(q^T k / sqrt(d)) over keys, [B*heads, N, N]
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k) * (c // self.heads) ** -0.5, dim=-1)
        h = torch.bmm(v, attn.transpose(1, 2)).reshape(b, c, hh, ww)  # [B, C, H, W]
        return x + self.out(h)


class PlainResBlock(nn.Module):
    """Unconditioned residual block of the Face Encoder: GN, SiLU, conv, GN, SiLU, conv, skip."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.GroupNorm(groups, c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class FaceEncoder(nn.Module):
    """x_ref [B, 3, S, S] -> one feature map per level: ([B, face_ch[l], S/2^l, S/2^l] for l in levels)."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.stem = nn.Conv2d(cfg.in_ch, cfg.face_ch[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = cfg.face_ch[0]
        for lvl, ch in enumerate(cfg.face_ch):
            self.blocks.append(PlainResBlock(prev, ch, cfg.groups))
            if lvl < cfg.levels - 1:
                self.downs.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            prev = ch

    def forward(self, x_ref: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.stem(x_ref)
        feats = []
        for lvl, block in enumerate(self.blocks):
            h = block(h)
            feats.append(h)
            if lvl < len(self.downs):
                h = self.downs[lvl](h)  # halve the resolution
        return tuple(feats)


class ConditionalUNet(nn.Module):
    """f_theta(x_t, x_ref, t, motion window, emotion one-hot) -> raw prediction (eps or x0) (thesis 3.2.2)."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        E, G = cfg.time_dim, cfg.groups
        chs = [cfg.base_ch * m for m in cfg.ch_mult]
        self.face_encoder = FaceEncoder(cfg)
        t_dim = max(32, cfg.base_ch)  # >= 16 frequencies, also when the U-Net is thin (demo: base_ch 8)
        self.time_embed = nn.Sequential(SinusoidalEmbedding(t_dim), nn.Linear(t_dim, E), nn.SiLU(),
                                        nn.Linear(E, E))
        self.motion_mixer = TemporalMixer(cfg.motion_dim, E, cfg.window, cfg.mixer_ch, cfg.mixer_hidden,
                                          cfg.mixer_depth)
        self.emotion_mlp = nn.Sequential(nn.Linear(cfg.n_classes, E), nn.SiLU(), nn.Linear(E, E), nn.SiLU())

        def res(ci: int, co: int) -> CondResBlock:
            return CondResBlock(ci, co, E, G, cfg.dropout)

        def attn(ch: int, size: int) -> nn.Module:
            return SelfAttention(ch, cfg.attn_heads, G) if size in cfg.attn_resolutions else nn.Identity()

        self.stem = nn.Conv2d(cfg.in_ch, cfg.base_ch, 3, padding=1)
        # encoder: level l = [identity 1x1 projection at entry, num_res_blocks x (res, attn), downsample]
        self.id_proj, self.enc, self.enc_attn, self.downs = (nn.ModuleList() for _ in range(4))
        skips, ch = [cfg.base_ch], cfg.base_ch
        for lvl, co in enumerate(chs):
            size = cfg.image_size >> lvl
            self.id_proj.append(nn.Conv2d(cfg.face_ch[lvl], ch, 1))
            for _ in range(cfg.num_res_blocks):
                self.enc.append(res(ch, co))
                self.enc_attn.append(attn(co, size))
                ch = co
                skips.append(ch)
            if lvl < cfg.levels - 1:
                self.downs.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        # bottleneck (fig 3.5b): identity again, res, attention, res
        self.mid_id = nn.Conv2d(cfg.face_ch[-1], ch, 1)
        self.mid1 = res(ch, ch)
        self.mid_attn = SelfAttention(ch, cfg.attn_heads, G) if cfg.mid_attn else nn.Identity()
        self.mid2 = res(ch, ch)
        # decoder: level l = (num_res_blocks + 1) x (concat skip, res, attn), then upsample
        self.dec, self.dec_attn, self.ups = (nn.ModuleList() for _ in range(3))
        for lvl in reversed(range(cfg.levels)):
            size = cfg.image_size >> lvl
            for _ in range(cfg.num_res_blocks + 1):
                self.dec.append(res(ch + skips.pop(), chs[lvl]))
                self.dec_attn.append(attn(chs[lvl], size))
                ch = chs[lvl]
            if lvl > 0:
                self.ups.append(nn.Conv2d(ch, ch, 3, padding=1))  # after nearest-neighbour x2
        self.out = nn.Sequential(nn.GroupNorm(G, ch), nn.SiLU(), nn.Conv2d(ch, cfg.in_ch, 3, padding=1))

    # ---------------------------------------------------------------- public API
    def forward(self, x_t: torch.Tensor, x_ref: torch.Tensor, t: torch.Tensor, motion: torch.Tensor,
                emotion: torch.Tensor) -> torch.Tensor:
        """x_t, x_ref [B, 3, S, S]; t [B] long; motion [B, W, Dm]; emotion [B, 7] -> prediction [B, 3, S, S]."""
        return self.denoise(x_t, self.encode_reference(x_ref), t, motion, emotion)

    def encode_reference(self, x_ref: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Face Encoder features, one per level; compute once per video and reuse for every frame and step."""
        if _eager():
            _check(x_ref.dim() == 4 and x_ref.shape[1] == self.cfg.in_ch
                   and x_ref.shape[2] % 2 ** (self.cfg.levels - 1) == 0,
                   f"x_ref must be [B, {self.cfg.in_ch}, H, W] with H divisible by {2 ** (self.cfg.levels - 1)}, "
                   f"got {tuple(x_ref.shape)}")
        return self.face_encoder(x_ref)

    def denoise(self, x_t: torch.Tensor, ref_feats: tuple[torch.Tensor, ...], t: torch.Tensor,
                motion: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """The raw prediction (eps or x0, per the objective) from precomputed reference features (batch B, or 1
        to broadcast one face over B frames)."""
        if _eager():
            self._check_inputs(x_t, ref_feats, t, motion, emotion)
        cfg = self.cfg
        tau = self.time_embed(t)  # [B, E]
        m = self.motion_mixer(motion)  # [B, E]
        e = self.emotion_mlp(emotion)  # [B, E]

        h = self.stem(x_t)  # [B, base, S, S]
        hs = [h]
        k = 0
        for lvl in range(cfg.levels):
            h = h + self.id_proj[lvl](ref_feats[lvl])  # spatial identity injection at S / 2^lvl
            for _ in range(cfg.num_res_blocks):
                h = self.enc_attn[k](self.enc[k](h, tau, m, e))
                hs.append(h)
                k += 1
            if lvl < cfg.levels - 1:
                h = self.downs[lvl](h)
                hs.append(h)
        h = h + self.mid_id(ref_feats[-1])
        h = self.mid2(self.mid_attn(self.mid1(h, tau, m, e)), tau, m, e)  # [B, C_last, S/2^(L-1), ...]
        k = 0
        for i, lvl in enumerate(reversed(range(cfg.levels))):
            for _ in range(cfg.num_res_blocks + 1):
                h = self.dec_attn[k](self.dec[k](torch.cat([h, hs.pop()], dim=1), tau, m, e))
                k += 1
            if lvl > 0:
                h = self.ups[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(h)  # [B, 3, S, S]

    # ---------------------------------------------------------------- input checks (eager mode only)
    def _check_inputs(self, x_t, ref_feats, t, motion, emotion) -> None:
        cfg = self.cfg
        _check(x_t.dim() == 4 and x_t.shape[1] == cfg.in_ch and x_t.shape[2] % 2 ** (cfg.levels - 1) == 0,
               f"x_t must be [B, {cfg.in_ch}, H, W] with H divisible by {2 ** (cfg.levels - 1)}, "
               f"got {tuple(x_t.shape)}")
        b, s = x_t.shape[0], x_t.shape[2:]
        _check(t.shape == (b,), f"t must be [B] = [{b}] timesteps, got {tuple(t.shape)}")
        _check(motion.shape == (b, cfg.window, cfg.motion_dim),
               f"motion must be [B, W, Dm] = [{b}, {cfg.window}, {cfg.motion_dim}] (see motion_windows), "
               f"got {tuple(motion.shape)}")
        _check(emotion.shape == (b, cfg.n_classes),
               f"emotion must be a [B, {cfg.n_classes}] one-hot (zeros = unconditional), got {tuple(emotion.shape)}")
        _check(len(ref_feats) == cfg.levels,
               f"ref_feats must hold {cfg.levels} maps (encode_reference), got {len(ref_feats)}")
        for lvl, f in enumerate(ref_feats):
            want = (cfg.face_ch[lvl], s[0] >> lvl, s[1] >> lvl)
            _check(f.dim() == 4 and f.shape[0] in (1, b) and tuple(f.shape[1:]) == want,
                   f"ref_feats[{lvl}] must be [{b} or 1, {want[0]}, {want[1]}, {want[2]}], got {tuple(f.shape)}")


class FeatureDenoiser(nn.Module):
    """Export view of ConditionalUNet.denoise with flat tensor inputs: (x_t, t, motion, emotion, *ref_feats)."""

    def __init__(self, unet: ConditionalUNet):
        super().__init__()
        self.unet = unet
        self.train(unet.training)  # a fresh wrapper defaults to train(); exporters restore that mode recursively

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, motion: torch.Tensor, emotion: torch.Tensor,
                *ref_feats: torch.Tensor) -> torch.Tensor:
        return self.unet.denoise(x_t, tuple(ref_feats), t, motion, emotion)


def _eager() -> bool:
    """False while tracing / exporting: shape checks would be baked into the graph."""
    return not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UNetInputError(message)
