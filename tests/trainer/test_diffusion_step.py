"""The diffusion trainer's noisy inputs come from the same schedule the samplers invert (thesis eq. 3.2)."""

import contextlib
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from fv.engine.families import build_model
from fv.engine.samplers import ddim_step
from fv.trainer.batches import step_generator
from fv.trainer.diffusion_step import DiffusionStep
from tests.export.conftest import tiny_config


def _step_and_record(p_uncond=0.0, objective="frame-eps"):
    cfg = tiny_config("onlyDM")
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, batch_mode="full_video", p_uncond=p_uncond,
                                                objective=objective))
    torch.manual_seed(0)
    model = build_model(cfg)
    step = DiffusionStep(cfg, model, torch.device("cpu"), contextlib.nullcontext)
    seen = {}
    original = model["unet"].denoise              # what the loss is taken on (eps, or x0)

    def recording(x_t, ref, t, motion, emotion):
        out = original(x_t, ref, t, motion, emotion)
        seen.update(x_t=x_t.detach().clone(), t=t.clone(), pred=out.detach().clone(),
                    motion=motion.clone(), emotion=emotion.clone())
        return out

    model["unet"].denoise = recording
    video = torch.rand(2, 32, 3, 32, 32) * 2 - 1
    batch = {"video": video, "emotion": torch.tensor([1, 4]), "subject": torch.tensor([0, 1]),
             "index": torch.tensor([0, 1])}
    losses = step(batch, gen=step_generator(0, 0), step=0)
    return step, video, seen, losses


@pytest.mark.parametrize("target,predict", [("frame", "eps"), ("residual", "x0")])
def test_noisy_inputs_are_the_schedules_add_noise(target, predict):
    step, video, seen, losses = _step_and_record(objective=f"{target}-{predict}")
    if target == "residual":                              # frame - x_ref, x_ref = the video's first frame
        video = video - video[:, :1]
    x0 = video.reshape(64, 3, 32, 32)                     # full_video: every frame, in order
    sched = step.schedule                                 # the samplers' DiffusionSchedule
    eps = sched.predict_eps(seen["x_t"], x0, seen["t"])   # invert x_t = sqrt(ab) x0 + sqrt(1-ab) eps
    # the loss the trainer reported is the MSE against exactly that eps (eps prediction, the thesis), or
    # against the clean target itself (x0 prediction, fv's --residual)
    want = F.mse_loss(seen["pred"], eps if predict == "eps" else x0).item()
    assert abs(want - losses["loss"]) < 1e-4 * max(1.0, losses["loss"])
    torch.testing.assert_close(sched.add_noise(x0, eps, seen["t"]), seen["x_t"], atol=1e-5, rtol=1e-5)
    assert 0.8 < eps.std().item() < 1.2                   # and it is standard Gaussian noise
    # a deterministic DDIM step to t_prev = -1 with the true eps recovers the clean frames
    x_rec = ddim_step(sched, seen["x_t"], eps, seen["t"], -1, 0.0, None)
    torch.testing.assert_close(x_rec, x0, atol=2e-3, rtol=1e-3)
    assert seen["t"].min() >= 0 and seen["t"].max() < sched.num_steps


def test_guidance_dropout_zeroes_motion_and_emotion_together():
    _, _, seen, _ = _step_and_record(p_uncond=1.0)
    assert seen["motion"].abs().sum() == 0 and seen["emotion"].abs().sum() == 0
    _, _, seen, _ = _step_and_record(p_uncond=0.0)
    assert seen["motion"].abs().sum() > 0 and (seen["emotion"].sum(1) == 1).all()
