"""The tiny checkpoints of the golden renders, rebuilt from their seeds with today's API.

They must equal, weight for weight, the ones tests/golden/make_golden.py built before the refactor
(renders.json keeps the sha256 of their model tensors), so a change in how a setting builds its modules
shows up here before it shows up as different frames.
"""

from __future__ import annotations

import dataclasses
import hashlib
from functools import partial

import torch

from fv.engine.checkpoint import save_checkpoint, state_tensors
from fv.engine.config import DiffusionConfig, GANConfig, RunConfig, default_config
from fv.engine.families import build_model
from fv.engine.models.unet import UNetConfig
from fv.engine.sample_options import SampleOptions


def weights_sha256(path) -> str:
    """sha256 over a checkpoint's model.* tensors (sorted names, raw bytes)."""
    from safetensors.torch import load_file
    t = load_file(str(path))
    h = hashlib.sha256()
    for k in sorted(t):
        if k.startswith("model."):
            h.update(k.encode())
            h.update(t[k].contiguous().numpy().tobytes())
    return h.hexdigest()


def tiny_gan(path, setting: str, seed: int):
    cfg = default_config(setting, "demo")
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, gen_ch=4, disc_ch=4, dim_z_content=8, n_identities=3))
    torch.manual_seed(seed)
    return save_checkpoint(path, cfg, 1, state_tensors("model", build_model(cfg).state_dict()))


def tiny_diffusion(path, setting: str, seed: int, residual: bool = False):
    retrieved = setting == "both_retrievedMcs"
    unet = UNetConfig.demo(image_size=16, base_ch=4, ch_mult=(1, 1, 2, 2), groups=2, time_dim=16, mixer_depth=1,
                           mixer_ch=8, mixer_hidden=16, face_ch=(4, 4, 4, 4), attn_heads=2,
                           motion_dim=16 if retrieved else 10)
    motion = None if retrieved else GANConfig(emotion_in_gru=setting == "EM-DM")
    # the pre-refactor DiffusionConfig's sampling defaults (ddim, eta 0, guidance 2) with its steps / ref_strength
    sampling = SampleOptions(steps=8, ref_strength=0.5 if residual else 1.0)
    m = DiffusionConfig(unet=unet, num_steps=100, motion_source="retrieved" if retrieved else "gru", motion=motion,
                        bank_size=12 if retrieved else 0, sampling=sampling,
                        objective="residual-x0" if residual else "frame-eps")
    cfg = RunConfig(setting=setting, preset="demo", model=m)
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model["unet"].out.parameters():
            p.normal_(0, 0.3)
        if retrieved:
            model["bank"].codes.normal_()
            model["bank"].emotions.copy_(torch.arange(12) % 6)
            model["bank"].subjects.copy_(torch.arange(12) // 6)
    return save_checkpoint(path, cfg, 1, state_tensors("model", model.state_dict()))


TINY = {
    "tiny_baseline.safetensors": partial(tiny_gan, setting="baseline", seed=1),
    "tiny_onlyEM.safetensors": partial(tiny_gan, setting="onlyEM", seed=2),
    "tiny_onlyDM.safetensors": partial(tiny_diffusion, setting="onlyDM", seed=3),
    "tiny_onlyDM_residual.safetensors": partial(tiny_diffusion, setting="onlyDM", seed=4, residual=True),
    "tiny_EM-DM.safetensors": partial(tiny_diffusion, setting="EM-DM", seed=5),
    "tiny_both_retrievedMcs.safetensors": partial(tiny_diffusion, setting="both_retrievedMcs", seed=6),
}
