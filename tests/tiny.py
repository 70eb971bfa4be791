"""Tiny configurations and data for fast CPU tests."""

import dataclasses

import numpy as np

from fv.data.layout import write_meta, write_split
from fv.engine.config import default_config
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
    train = {"batch_size": 2, "log_every": 1, "sample_every": 0, **train}
    cfg = default_config(setting, "demo", **train)
    return cfg.replace(model=dataclasses.replace(cfg.model, gen_ch=4, disc_ch=4, dim_z_content=8))
