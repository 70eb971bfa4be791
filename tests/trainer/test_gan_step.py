"""The GAN step's losses (thesis 2.2.2) and fv's paired warm start (GANConfig.lambda_rec), recomputed by hand
from the same networks and random numbers."""

import contextlib
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from fv.engine.families import build_model
from fv.engine.motion import motion_inputs
from fv.engine.labels import one_hot
from fv.trainer.gan_step import GANStep
from tests.tiny import tiny_gan_config


def _step_and_reference(lambda_rec: float):
    cfg = tiny_gan_config("baseline", lr=0.0)          # lr 0: the step leaves the weights as they were
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, lambda_rec=lambda_rec, n_identities=3))
    torch.manual_seed(0)
    model = build_model(cfg)
    step = GANStep(cfg, model, torch.device("cpu"), contextlib.nullcontext)
    real = torch.rand(3, 32, 3, 64, 64) * 2 - 1
    emotion, subject = torch.tensor([4, 0, 2]), torch.tensor([0, 1, 2])
    logs = step({"video": real, "emotion": emotion, "subject": subject}, torch.Generator().manual_seed(7), 0)

    # the same random numbers, drawn in the step's order: target emotions, then the GRU's inputs
    gen = torch.Generator().manual_seed(7)
    target = torch.randint(0, 6, (3,), generator=gen)
    if lambda_rec > 0:
        target = emotion
    noise, h0 = motion_inputs(3, cfg.model.dim_z_motion, cfg.model.n_frames, gen, torch.device("cpu"))
    model.eval()        # spectral norm: reuse the power iteration's last vectors, as the step's G pass did
    with torch.no_grad():
        codes = model["R"](noise, h0, one_hot(target))
        ref = model["G"].encode(real[:, 0])
        fake = torch.stack([model["G"].decode(ref, codes[:, t], one_hot(target)) for t in range(32)], 1)
        adv, emo, ide = model["D"](fake)
    return logs, fake, real, adv, emo, ide, target


def test_generator_loss_terms_by_hand():
    logs, fake, real, adv, emo, ide, target = _step_and_reference(0.0)
    assert "g_rec" not in logs
    assert logs["g_adv"] == pytest.approx(F.binary_cross_entropy_with_logits(adv, torch.ones_like(adv)).item(),
                                          rel=1e-4)
    assert logs["g_emo"] == pytest.approx(F.cross_entropy(emo, target).item(), rel=1e-4)
    assert logs["g_ide"] == pytest.approx(F.cross_entropy(ide, torch.tensor([0, 1, 2])).item(), rel=1e-4)
    assert logs["loss_g"] == pytest.approx(logs["g_adv"] + logs["g_emo"] + logs["g_ide"], rel=1e-5)


def test_paired_warm_start_targets_the_real_emotion_and_adds_the_pixel_term():
    logs, fake, real, adv, emo, ide, target = _step_and_reference(10.0)
    assert logs["g_emo"] == pytest.approx(F.cross_entropy(emo, torch.tensor([4, 0, 2])).item(), rel=1e-4)
    rec = (fake - real).abs().mean().item()
    assert logs["g_rec"] == pytest.approx(rec, rel=1e-4)
    assert logs["loss_g"] == pytest.approx(logs["g_adv"] + logs["g_emo"] + logs["g_ide"] + 10.0 * rec, rel=1e-5)


def test_thesis_preset_has_no_pixel_term():
    from fv.engine.config import default_config
    assert default_config("baseline", "thesis").model.lambda_rec == 0.0
    assert default_config("onlyEM", "demo").model.lambda_rec > 0
