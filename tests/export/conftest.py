"""Tiny checkpoints of every setting for the export and backend tests (CPU, a few thousand parameters)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fv.engine.families import build_model
from fv.engine.checkpoint import save_checkpoint, state_tensors
from fv.engine.config import GANConfig, RunConfig, default_config
from fv.engine.config import DiffusionConfig
from fv.engine.models.unet import UNetConfig

SETTINGS = ("baseline", "onlyEM", "onlyDM", "EM-DM", "both_retrievedMcs", "LFDM")


def tiny_config(setting: str) -> RunConfig:
    if setting in ("baseline", "onlyEM"):
        cfg = default_config(setting, "demo")
        return cfg.replace(model=dataclasses.replace(cfg.model, gen_ch=4, disc_ch=4, dim_z_content=8,
                                                     n_identities=3))
    if setting == "LFDM":   # 32x32 frames, an 8x8 latent, a two-level flow U-Net; L = 100 diffusion steps
        from tests.tiny import tiny_lfdm_model
        cfg = default_config("LFDM", "demo")
        m = tiny_lfdm_model(cfg.model, num_steps=100, image_size=32)
        return cfg.replace(model=dataclasses.replace(m, unet=dataclasses.replace(m.unet, ch=(8, 8))))
    retrieved = setting == "both_retrievedMcs"
    # 32x32 frames, two levels, attention in the bottleneck; L = 100 diffusion steps
    unet = UNetConfig.demo(image_size=32, base_ch=4, ch_mult=(1, 2), groups=2, time_dim=16, mixer_depth=1,
                           mixer_ch=8, mixer_hidden=8, face_ch=(4, 8), attn_heads=2,
                           motion_dim=16 if retrieved else 10)
    motion = None if retrieved else GANConfig(emotion_in_gru=setting == "EM-DM")
    model = DiffusionConfig(unet=unet, num_steps=100, motion_source="retrieved" if retrieved else "gru",
                            motion=motion, bank_size=6 if retrieved else 0)
    return RunConfig(setting=setting, preset="demo", model=model)


def tiny_model(setting: str, seed: int = 0):
    cfg = tiny_config(setting)
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():  # GRU biases and the U-Net's output conv start small: make outputs input-dependent
        if "unet" in model:
            for p in model["unet"].out.parameters():
                p.normal_(0, 0.3)
        if "dm" in model:       # LFDM's flow U-Net and flow predictor start at zero output too
            for p in [*model["dm"].out.parameters(), *model["lfae"].flow.head.parameters()]:
                p.normal_(0, 0.3)
    return cfg, model.eval()


def tiny_checkpoint(path, setting: str = "baseline", seed: int = 0):
    cfg, model = tiny_model(setting, seed)
    return save_checkpoint(path, cfg, 1, state_tensors("model", model.state_dict()))


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("export_ckpts")
    return {s: tiny_checkpoint(d / f"{s}.safetensors", s, seed=i) for i, s in enumerate(SETTINGS)}
