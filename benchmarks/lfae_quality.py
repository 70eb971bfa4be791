"""How well an LFDM checkpoint's latent flow autoencoder rebuilds held-out videos (issue 14). Prints a table,
writes JSON.

    python benchmarks/lfae_quality.py CHECKPOINT --data data/synth_v2 [--videos 144]
                                      [--out runs/benchmarks/lfae_quality.json]

On the test split (identities the checkpoint never saw), for every apex frame t = 10..21 of each clip:
    rebuilt     the LFAE's frame t from frame 0: decoder(warp(encoder(frame 0), flow) * visibility), with flow and
                visibility predicted from (frame 0, frame t) (fv.engine.models.lfae.LFAE.forward)
    copy        frame 0 itself (the "no motion" baseline)
    pixels      frame 0's own pixels moved by the LFAE's flow, upsampled from the latent grid (what `fv render
                --mode flow` does to a photo: fv.photo.motion_transfer.resize_flow / warp), no decoder
    gt pixels   frame 0's pixels moved by the data's ground-truth flow64 (the best a pure warp can do)
    PSNR, SSIM  of each against the real frame t (fv.metrics.reconstruction; uint8 range), mean over frames
    EPE         end-point error of the predicted flow against the data's ground-truth flow64, both on the latent
                grid (the ground truth area-pooled as in training), in pixels of the 64 px frame; beside it the
                EPE of a zero flow (the ground truth's own mean length) and the EPE on the moving points only
                (ground-truth length > 0.5 px)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fv.data.layout import load_split, to_uint8
from fv.engine.atomic import atomic_write_text
from fv.engine.checkpoint import load_model_state, read_checkpoint
from fv.engine.families import build_model
from fv.metrics.reconstruction import epe, psnr, ssim
from fv.photo.motion_transfer import resize_flow, warp
from fv.trainer.lfdm_step import GT_SIZE, to_latent_grid

APEX = list(range(10, 22))


def load_lfae(path: Path):
    ckpt = read_checkpoint(path)
    if ckpt.config.setting != "LFDM":
        raise SystemExit(f"{path} is a {ckpt.config.setting} checkpoint, not LFDM")
    model = build_model(ckpt.config)
    load_model_state(model, ckpt, ema=True)
    return ckpt.config, model["lfae"].eval()


def measure(config, lfae, data, n_videos: int, batch: int = 4) -> dict:
    m = config.model
    rows = {f"{k}_{q}": [] for k in ("rebuilt", "copy", "pixels", "gt_pixels") for q in ("psnr", "ssim")}
    rows.update({k: [] for k in ("epe", "epe_zero", "epe_moving", "epe_zero_moving")})
    n = min(n_videos, len(data))
    for start in range(0, n, batch):
        idx = list(range(start, min(n, start + batch)))
        video = data.videos(idx, size=m.image_size)                          # [b, 32, 3, S, S]
        x_t = video[:, APEX].flatten(0, 1)
        with torch.no_grad():
            rebuilt, flow, _ = lfae(video[:, 0], x_t)
        real, copy = to_uint8(x_t), to_uint8(video[:, 0].repeat_interleave(len(APEX), 0))
        out = to_uint8(rebuilt)
        S, h = m.image_size, flow.shape[-1]
        grid_px = (flow * (h / S)).permute(0, 2, 3, 1).numpy()                 # in pixels of the latent grid
        moved = [warp(c, resize_flow(f, S)) for c, f in zip(copy, grid_px)]
        ways = {"rebuilt": out, "copy": copy, "pixels": moved}
        if data.flow64 is not None:
            gt64 = np.asarray(data.flow64[idx])[:, APEX].astype(np.float32).reshape(-1, GT_SIZE, GT_SIZE, 2)
            ways["gt_pixels"] = [warp(c, resize_flow(g * (GT_SIZE / S), S)) for c, g in zip(copy, gt64)]
        for way, frames in ways.items():
            for r, o in zip(real, frames):
                rows[f"{way}_psnr"].append(psnr(o, r))
                rows[f"{way}_ssim"].append(ssim(o, r))
        if data.flow64 is not None:
            h = flow.shape[-1]
            gt = torch.from_numpy(np.asarray(data.flow64[idx])[:, APEX].astype(np.float32))   # [b, 12, 64, 64, 2]
            gt = to_latent_grid(gt.flatten(0, 1).permute(0, 3, 1, 2), h) * (m.image_size / GT_SIZE)
            scale = GT_SIZE / m.image_size                                        # in pixels of the 64 px frame
            p = (flow * scale).permute(0, 2, 3, 1).numpy()
            g = (gt * scale).permute(0, 2, 3, 1).numpy()
            moving = np.linalg.norm(g, axis=-1) > 0.5
            rows["epe"].append(epe(p, g))
            rows["epe_zero"].append(epe(np.zeros_like(g), g))
            if moving.any():
                rows["epe_moving"].append(epe(p[moving], g[moving]))
                rows["epe_zero_moving"].append(epe(np.zeros_like(g[moving]), g[moving]))
    return {k: float(np.mean(v)) if v else None for k, v in rows.items()} | {"videos": n, "frames": n * len(APEX)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", type=Path, default=Path("data/synth_v2"))
    ap.add_argument("--videos", type=int, default=144)
    ap.add_argument("--out", type=Path, default=Path("runs/benchmarks/lfae_quality.json"))
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    config, lfae = load_lfae(a.checkpoint)
    res = measure(config, lfae, load_split(a.data, "test"), a.videos)
    print(f"LFAE of {a.checkpoint} on {res['videos']} test clips of {a.data}, apex frames 10-21 ({res['frames']} frames)")
    print("| frame t from | PSNR (dB) | SSIM |\n|---|---|---|")
    print(f"| LFAE (frame 0 warped + decoded) | {res['rebuilt_psnr']:.2f} | {res['rebuilt_ssim']:.3f} |")
    print(f"| copy of frame 0 | {res['copy_psnr']:.2f} | {res['copy_ssim']:.3f} |")
    print(f"| frame 0's pixels moved by the LFAE's flow | {res['pixels_psnr']:.2f} | {res['pixels_ssim']:.3f} |")
    if res["gt_pixels_psnr"] is not None:
        print(f"| frame 0's pixels moved by the true flow | {res['gt_pixels_psnr']:.2f} | {res['gt_pixels_ssim']:.3f} |")
    if res["epe"] is not None:
        print("| flow EPE (px at 64) | all points | moving (> 0.5 px) |\n|---|---|---|")
        print(f"| LFAE | {res['epe']:.3f} | {res['epe_moving']:.3f} |")
        print(f"| zero flow | {res['epe_zero']:.3f} | {res['epe_zero_moving']:.3f} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps({"checkpoint": str(a.checkpoint), "data": str(a.data), **res}, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
