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
    # attention at 8x8 where the thesis has it at 16x16: 32 frames' 256-token attention was most of a step
    unet = dataclasses.replace(m.unet, base_ch=4, groups=2, time_dim=16, mixer_ch=8, mixer_hidden=8,
                               face_ch=(2, 2, 4, 8), attn_resolutions=(8,) if m.unet.attn_resolutions else ())
    return cfg.replace(model=dataclasses.replace(m, unet=unet))
