"""Tiny configurations and data for fast CPU tests."""

import dataclasses

import numpy as np

from fv.data.layout import write_meta, write_split
from fv.engine.config import GAN_SETTINGS, default_config
from fv.engine.labels import EMOTIONS


def make_tiny_data(root, seed=0):
    """A random-pixel data set in fv's layout: 12 train clips of 4 subjects, 6 test clips of 2."""
    rng = np.random.default_rng(seed)
    for split, n, subj in (("train", 12, 4), ("test", 6, 2)):
        clips = rng.integers(0, 256, (n, 32, 64, 64, 3), dtype=np.uint8)
        rows = [dict(video_id=f"{split}{i}", subject=f"{split}_s{i % subj}", emotion=EMOTIONS[i % 6])
                for i in range(n)]
        write_split(root, split, clips, rows)
    write_meta(root, name="tiny")
    return root


def tiny_gan_config(setting="baseline", **train):
    return tiny_preset_config(setting, "demo", **train)


def tiny_preset_config(setting, preset="demo", **train):
    """`fv train SETTING --preset PRESET`'s configuration with the networks narrowed to a few channels and
    everything else the preset's: the thesis U-Net keeps its dropout, two res blocks per level, attention in a
    level and in the bottleneck, 64x64 frames, whole-video batches and the frame-eps objective; the demo one
    its one res block, random frames and residual-x0; the thesis GAN its random targets without the pixel
    term or spectral norm. A diffusion setting still needs its motion source (fv.trainer.run.attach_motion_source)."""
    cfg = default_config(setting, preset, **{"batch_size": 2, "log_every": 1, "sample_every": 0, **train})
    m = cfg.model
    if setting in GAN_SETTINGS:
        return cfg.replace(model=dataclasses.replace(m, gen_ch=4, disc_ch=4, dim_z_content=8))
    if setting == "LFDM":
        return cfg.replace(model=tiny_lfdm_model(m, lfae_steps=2))
    # attention at 8x8 where the thesis has it at 16x16: 32 frames' 256-token attention was most of a step
    unet = dataclasses.replace(m.unet, base_ch=4, groups=2, time_dim=16, mixer_ch=8, mixer_hidden=8,
                               face_ch=(2, 2, 4, 8), attn_resolutions=(8,) if m.unet.attn_resolutions else ())
    return cfg.replace(model=dataclasses.replace(m, unet=unet))


def tiny_lfdm_model(m, **fields):
    """An LFDMConfig narrowed to a few channels at 64 px (tiny data has no 128 px clips), its other fields the
    preset's: the thesis' two blocks per level, dropout 0.1 and four U-Net levels, the demo's one block."""
    unet = dataclasses.replace(m.unet, latent_ch=4, cond_ch=4, ch=(8,) * len(m.unet.ch), time_dim=8, groups=2,
                               heads=2)
    return dataclasses.replace(m, **{"image_size": 64, "ch": (8, 8, 8), "flow_ch": (4, 8, 8), "latent_ch": 4,
                                     "groups": 2, "unet": unet, **fields})


def tiny_embedder_config(**train):
    """`fv train embedder`'s demo preset with an 8-16-16-16 channel CNN and 4 frames per video (at 4-8-8-8 every
    face embeds to nearly one point before training, where the squared-distance loss has almost no gradient)."""
    train = {"batch_size": 4, "log_every": 1, "sample_every": 0, **train}
    cfg = default_config("embedder", "demo", **train)
    return cfg.replace(model=dataclasses.replace(cfg.model, channels=(8, 16, 16, 16), frames_per_video=4))


def make_tiny_au_data(root, seed=0):
    """12 train clips (4 subjects x 3 emotions) and 6 test clips with per-frame action units (aus.npy, K = 3) that
    are drawn into the pixels: AU k is a bright square in its own place, as strong as its intensity, on the
    subject's own colour and noise. Expressions can be learnt here; in make_tiny_data's noise they cannot."""
    rng = np.random.default_rng(seed)
    env = np.clip(np.r_[np.linspace(0, 1, 10), np.ones(12), np.linspace(1, 0, 10)], 0, 1)    # [32] onset, apex, offset
    weights = np.array([[1.0, 0.0, 0.3], [0.0, 1.0, 0.0], [0.2, 0.3, 1.0]])                  # emotion -> AU weights
    for split, subjects in (("train", 4), ("test", 2)):
        clips, aus, rows = [], [], []
        for s in range(subjects):
            face = rng.integers(40, 140, 3) + rng.normal(0, 12, (64, 64, 3))
            for e in range(3):
                a = weights[e][None, :] * env[:, None] * rng.uniform(0.8, 1.0)                # [32, 3]
                video = np.repeat(face[None], 32, 0)
                for k in range(3):
                    video[:, 8 + 18 * k:22 + 18 * k, 20:44] += 110 * a[:, k, None, None, None]
                clips.append(np.clip(video, 0, 255).astype(np.uint8))
                aus.append(a.astype(np.float32))
                rows.append(dict(video_id=f"{split}{s}_{e}", subject=f"{split}_s{s}", emotion=EMOTIONS[e]))
        write_split(root, split, np.stack(clips), rows, aus=np.stack(aus))
    write_meta(root, name="tiny-aus", aus=["AU_a", "AU_b", "AU_c"])
    return root
