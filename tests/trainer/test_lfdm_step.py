"""LFDM's training step (fv.trainer.lfdm_step): the L1 pyramid and the ground truth's latent grid against numpy, and
the LFAE stage's ground-truth motion terms against the formula written out here."""

from __future__ import annotations

import contextlib
import copy
import dataclasses

import cv2
import numpy as np
import pytest
import torch

from fv.trainer.lfdm_step import LFDMStep, pyramid_l1, to_latent_grid
from tests.export.conftest import tiny_model


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """[..., H, W] -> [..., H / k, W / k]: the mean of each k x k block."""
    *lead, H, W = a.shape
    return a.reshape(*lead, H // k, k, W // k, k).mean(axis=(-3, -1))


def test_to_latent_grid_is_a_block_mean_down_and_bilinear_up():
    gt = np.random.default_rng(0).normal(size=(3, 2, 64, 64)).astype(np.float32)
    for size in (16, 8):
        got = to_latent_grid(torch.from_numpy(gt), size).numpy()
        np.testing.assert_allclose(got, block_mean(gt.astype(np.float64), 64 // size), atol=1e-6, rtol=0)
    # up (a 256 px setting's 128 px latent grid): bilinear with pixel centres at i + 0.5, cv2.resize's INTER_LINEAR
    up = to_latent_grid(torch.from_numpy(gt), 128).numpy()
    want = np.stack([[cv2.resize(c, (128, 128), interpolation=cv2.INTER_LINEAR) for c in n] for n in gt])
    np.testing.assert_allclose(up, want, atol=1e-5, rtol=0)


def test_pyramid_l1_by_hand():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 2, 3, 16, 16)).astype(np.float32)
    want = sum(np.abs(block_mean(x.astype(np.float64), k) - block_mean(y.astype(np.float64), k)).mean()
               for k in (1, 2, 4))
    got = pyramid_l1(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert abs(got - want) < 1e-6 * want
    # two levels: the coarsest term is gone
    two = sum(np.abs(block_mean(x.astype(np.float64), k) - block_mean(y.astype(np.float64), k)).mean() for k in (1, 2))
    assert abs(pyramid_l1(torch.from_numpy(x), torch.from_numpy(y), levels=2).item() - two) < 1e-6 * two


def test_lfae_step_supervises_with_the_ground_truth_motion():
    """With flow / occ in the batch the LFAE's loss gains lambda_flow mean|flow - gt| + lambda_vis BCE(vis, 1 - occ),
    the 64 px ground truth block-averaged to the 8 x 8 latent grid and scaled to pixels of the 32 px frame (x 1/2),
    BCE = -(y log s + (1 - y) log(1 - s)), s = sigmoid(logits); the rest of the loss is unchanged."""
    cfg, model = tiny_model("LFDM")
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, lambda_flow=0.7, lambda_vis=0.3))
    m = cfg.model
    assert m.image_size == 32 and m.latent_size == 8 and m.lfae_steps > 0
    B, T, k, seed = 2, 4, m.frames_per_video, 3
    rng = np.random.default_rng(2)
    video = torch.from_numpy(rng.uniform(-1, 1, (B, T, 3, 32, 32)).astype(np.float32))
    flow = rng.normal(0, 3, (B, T, 64, 64, 2)).astype(np.float16)   # as fv's layout stores it: [B, T, 64, 64, 2]
    occ = (rng.random((B, T, 64, 64)) < 0.3).astype(np.uint8)
    base = {"video": video, "emotion": torch.tensor([1, 4]), "subject": torch.tensor([0, 1]),
            "index": torch.tensor([0, 1])}
    supervised = {**base, "flow": torch.from_numpy(flow), "occ": torch.from_numpy(occ)}

    def losses(batch):   # a fresh copy of the weights each time: the optimiser step changes only its own copy
        step = LFDMStep(cfg, copy.deepcopy(model), torch.device("cpu"), contextlib.nullcontext)
        return step(batch, torch.Generator().manual_seed(seed), step=0)
    plain, sup = losses(base), losses(supervised)
    assert "flow" not in plain and {"flow", "vis", "rec"} <= set(sup)

    # the frames the step draws: k of T per video, from its generator (the same seed)
    gen = torch.Generator().manual_seed(seed)
    frames = torch.stack([torch.randperm(T, generator=gen)[:k] for _ in range(B)]).numpy()   # [B, k]
    x_t = torch.stack([video[b, frames[b]] for b in range(B)]).flatten(0, 1)
    with torch.no_grad():
        rebuilt, pred_flow, logits = model["lfae"](video[:, 0], x_t)
    pred_flow, logits = pred_flow.double().numpy(), logits.double().numpy()
    gt_flow = np.concatenate([flow[b, frames[b]] for b in range(B)]).astype(np.float64).transpose(0, 3, 1, 2)
    gt_flow = block_mean(gt_flow, 8) * (32 / 64)                      # [B k, 2, 8, 8], pixels of the 32 px frame
    y = 1 - block_mean(np.concatenate([occ[b, frames[b]] for b in range(B)]).astype(np.float64), 8)[:, None]
    s = 1 / (1 + np.exp(-logits))
    l_flow = np.abs(pred_flow - gt_flow).mean()
    l_vis = (-(y * np.log(s) + (1 - y) * np.log(1 - s))).mean()
    rec = sum(np.abs(block_mean(rebuilt.double().numpy(), j) - block_mean(x_t.double().numpy(), j)).mean()
              for j in (1, 2, 4))
    assert sup["flow"] == pytest.approx(l_flow, rel=1e-5) and sup["vis"] == pytest.approx(l_vis, rel=1e-5)
    assert plain["rec"] == pytest.approx(rec, rel=1e-5) and sup["rec"] == pytest.approx(rec, rel=1e-5)
    assert plain["loss"] == pytest.approx(rec, rel=1e-5)
    assert sup["loss"] == pytest.approx(plain["loss"] + 0.7 * l_flow + 0.3 * l_vis, rel=1e-5)


def test_the_paper_scale_preset_trains_on_128_px_clips_with_64_px_ground_truth(tmp_path):
    """`fv train LFDM --preset thesis` reads clips128.npy (the paper's 128x128) and the 64 px ground-truth motion;
    both stages run a step; its preview renders 128 px videos."""
    from fv.data.layout import write_meta, write_split
    from fv.engine.config import default_config
    from fv.engine.labels import EMOTIONS
    from fv.trainer.loop import Trainer
    from tests.tiny import tiny_lfdm_model
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        c128 = rng.integers(0, 256, (n, 32, 128, 128, 3), dtype=np.uint8)
        c64 = c128.reshape(n, 32, 64, 2, 64, 2, 3).mean((3, 5)).astype(np.uint8)
        rows = [dict(video_id=f"{split}{i}", subject=f"s{i % 2}", emotion=EMOTIONS[i]) for i in range(n)]
        write_split(tmp_path / "d", split, c64, rows, clips128=c128,
                    flow64=rng.normal(0, 1, (n, 32, 64, 64, 2)), occ64=rng.integers(0, 2, (n, 32, 64, 64)))
    write_meta(tmp_path / "d", name="tiny128")
    cfg = default_config("LFDM", "thesis", steps=2, batch_size=1, log_every=1, sample_every=2, ckpt_every=2)
    assert cfg.model.image_size == 128 and cfg.model.latent_size == 32
    cfg = cfg.replace(model=tiny_lfdm_model(cfg.model, image_size=128, lfae_steps=1,
                                            sampling=cfg.model.sampling.replace(steps=2)))   # a quick preview
    t = Trainer(cfg, tmp_path / "d", tmp_path / "run", progress=False, log=lambda m: None)
    assert tuple(t.batch(0)["video"].shape) == (1, 32, 3, 128, 128) and "flow" in t.batch(0)
    t.fit()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert '"flow"' in lines[0] and '"dm"' in lines[1]
    assert (tmp_path / "run" / "samples" / "step_000002.png").stat().st_size > 0
