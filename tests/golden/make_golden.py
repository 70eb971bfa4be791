"""Made the golden renders in tests/golden/ with fv at commit fbd857d, BEFORE the family refactor (issue 12).

Kept for provenance only: it uses that commit's API (DiffusionConfig.sampler / predict / target fields,
fv.engine.build). The files it wrote are the reference that tests/golden/test_golden.py holds today's
engine to. Run at fbd857d:  .venv/bin/python tests/golden/make_golden.py tests/golden
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from fv.engine.families import build_model
from fv.engine.checkpoint import save_checkpoint, state_tensors
from fv.engine.config import GANConfig, RunConfig, default_config
from fv.engine.config import DiffusionConfig
from fv.engine.engine import Engine
from fv.engine.models.unet import UNetConfig

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "fv" / "assets" / "checkpoints"
KEEP = [0, 5, 10, 16, 21, 26, 31]   # frames stored for 64 px videos (all 32 for 16 px ones)


def tiny_gan(path, setting, seed):
    cfg = default_config(setting, "demo")
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, gen_ch=4, disc_ch=4, dim_z_content=8, n_identities=3))
    torch.manual_seed(seed)
    model = build_model(cfg)
    return save_checkpoint(path, cfg, 1, state_tensors("model", model.state_dict()))


def tiny_diffusion(path, setting, seed, residual=False):
    retrieved = setting == "both_retrievedMcs"
    unet = UNetConfig.demo(image_size=16, base_ch=4, ch_mult=(1, 1, 2, 2), groups=2, time_dim=16, mixer_depth=1,
                           mixer_ch=8, mixer_hidden=16, face_ch=(4, 4, 4, 4), attn_heads=2,
                           motion_dim=16 if retrieved else 10, predict="x0" if residual else "eps")
    motion = None if retrieved else GANConfig(emotion_in_gru=setting == "EM-DM")
    m = DiffusionConfig(unet=unet, num_steps=100, motion_source="retrieved" if retrieved else "gru", motion=motion,
                        bank_size=12 if retrieved else 0, sample_steps=8, ref_strength=1.0 if not residual else 0.5,
                        target="residual" if residual else "frame")
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


def smooth(x: torch.Tensor, size: int) -> np.ndarray:
    """uint8 [N, 3, size, size] from low-resolution noise in [0, 1]."""
    up = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (up * 255).round().clamp(0, 255).byte().numpy()


def to_model(u8: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(u8).float() / 255.0 - 0.5) / 0.5


def weights_sha256(path) -> str:
    """sha256 over the checkpoint's model.* tensors (sorted names, raw bytes): the rebuilt tiny checkpoints
    of the test must hold exactly these weights."""
    from safetensors.torch import load_file
    t = load_file(str(path))
    h = hashlib.sha256()
    for k in sorted(t):
        if k.startswith("model."):
            h.update(k.encode())
            h.update(t[k].contiguous().numpy().tobytes())
    return h.hexdigest()


def main(out: Path) -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    ck = out / "checkpoints"
    ck.mkdir(exist_ok=True)
    # inputs: smooth random images (8x8 noise upsampled), stored as uint8 beside the renders
    g = torch.Generator().manual_seed(1234)
    u64 = smooth(torch.rand(2, 3, 8, 8, generator=g), 64)
    u16 = smooth(torch.rand(2, 3, 4, 4, generator=g), 16)
    face64, face16 = to_model(u64), to_model(u16)
    cases = {
        "shipped_baseline": (SHIPPED / "baseline.safetensors", {}, face64),
        "shipped_onlyDM_ddim": (SHIPPED / "onlyDM.safetensors", {}, face64),
        "shipped_onlyDM_ddpm": (SHIPPED / "onlyDM.safetensors", {"sampler": "ddpm", "steps": 20}, face64),
        "tiny_baseline": (tiny_gan(ck / "tiny_baseline.safetensors", "baseline", 1), {}, face64),
        "tiny_onlyEM": (tiny_gan(ck / "tiny_onlyEM.safetensors", "onlyEM", 2), {}, face64),
        "tiny_onlyDM_ddim": (tiny_diffusion(ck / "tiny_onlyDM.safetensors", "onlyDM", 3), {"eta": 0.0}, face16),
        "tiny_onlyDM_ddpm": (ck / "tiny_onlyDM.safetensors", {"sampler": "ddpm", "steps": 10}, face16),
        "tiny_onlyDM_residual": (tiny_diffusion(ck / "tiny_onlyDM_residual.safetensors", "onlyDM", 4, True), {},
                                 face16),
        "tiny_EM-DM": (tiny_diffusion(ck / "tiny_EM-DM.safetensors", "EM-DM", 5), {"eta": 0.5}, face16),
        "tiny_both_retrievedMcs": (tiny_diffusion(ck / "tiny_both_retrievedMcs.safetensors", "both_retrievedMcs",
                                                  6), {"guidance": 3.0}, face16),
    }
    arrays, index = {}, {}
    for name, (ckpt, opts, faces) in cases.items():
        eng = Engine(ckpt, backend="torch", **opts)
        video = eng.render(faces, [3, 5], [11, 22])                    # uint8 [2, 32, S, S, 3]
        keep = video if video.shape[2] <= 16 else video[:, KEEP]
        arrays[name] = keep
        index[name] = {"checkpoint": Path(ckpt).name, "weights_sha256": weights_sha256(ckpt), "options": opts, "emotions": [3, 5],
                       "seeds": [11, 22], "size": int(video.shape[2]),
                       "frames": list(range(32)) if video.shape[2] <= 16 else KEEP,
                       "sha256": hashlib.sha256(video.tobytes()).hexdigest()}
        print(name, video.shape, index[name]["sha256"][:12])
    np.savez_compressed(out / "renders.npz", face64=u64, face16=u16, **arrays)
    (out / "renders.json").write_text(json.dumps(index, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
