"""The GAN step's losses (thesis 2.2.2), discriminator and generator, and fv's paired warm start
(GANConfig.lambda_rec), recomputed by hand (BCE and cross-entropy written out) from the same networks and random
numbers."""

import contextlib
import copy
import dataclasses

import pytest
import torch

from fv.engine.families import build_model
from fv.engine.motion import motion_inputs
from fv.engine.labels import one_hot
from fv.trainer.gan_step import GANStep
from tests.tiny import tiny_gan_config


def _step_and_reference(lambda_rec: float, spectral_norm: bool = True):   # the demo preset has it on
    cfg = tiny_gan_config("baseline", lr=0.0)          # lr 0: the step leaves the weights as they were
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, lambda_rec=lambda_rec, n_identities=3,
                                                disc_spectral_norm=spectral_norm))
    torch.manual_seed(0)
    model = build_model(cfg)
    disc_before = copy.deepcopy(model["D"])             # D as the step's discriminator pass saw it
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
        d_out = disc_before(torch.cat([real, fake]))   # train mode: the same power iteration as the step's D pass
    return logs, fake, real, adv, emo, ide, target, d_out


def bce_logits_by_hand(x: torch.Tensor, label: float) -> float:
    """mean -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], with log sigmoid(x) = -log(1 + e^-x)."""
    x = x.double().flatten()
    return float((label * torch.log1p(torch.exp(-x)) + (1 - label) * torch.log1p(torch.exp(x))).mean())


def ce_by_hand(logits: torch.Tensor, y: torch.Tensor) -> float:
    """mean over rows of log sum_k e^{l_k} - l_y."""
    lg = logits.double()
    return float((lg.exp().sum(1).log() - lg[torch.arange(len(y)), y]).mean())


def test_generator_loss_terms_by_hand():
    logs, fake, real, adv, emo, ide, target, _ = _step_and_reference(0.0)
    assert "g_rec" not in logs
    assert logs["g_adv"] == pytest.approx(bce_logits_by_hand(adv, 1.0), rel=1e-4)
    assert logs["g_emo"] == pytest.approx(ce_by_hand(emo, target), rel=1e-4)
    assert logs["g_ide"] == pytest.approx(ce_by_hand(ide, torch.tensor([0, 1, 2])), rel=1e-4)
    assert logs["loss_g"] == pytest.approx(logs["g_adv"] + logs["g_emo"] + logs["g_ide"], rel=1e-5)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_discriminator_loss_terms_by_hand(spectral_norm):
    # L_D = BCE(D(real), 1) + BCE(D(fake), 0) + l_emo CE(emo(real), y) + l_ide CE(ide(real), s), heads on real only
    logs, fake, real, adv, emo, ide, target, (adv_d, emo_d, ide_d) = _step_and_reference(0.0, spectral_norm)
    emotion, subject = torch.tensor([4, 0, 2]), torch.tensor([0, 1, 2])
    d_emo, d_ide = ce_by_hand(emo_d[:3], emotion), ce_by_hand(ide_d[:3], subject)
    assert logs["d_emo"] == pytest.approx(d_emo, rel=1e-4)
    assert logs["d_ide"] == pytest.approx(d_ide, rel=1e-4)
    d_adv = bce_logits_by_hand(adv_d[:3], 1.0) + bce_logits_by_hand(adv_d[3:], 0.0)
    assert logs["loss_d"] == pytest.approx(d_adv + 1.0 * d_emo + 1.0 * d_ide, rel=1e-4)


def test_paired_warm_start_targets_the_real_emotion_and_adds_the_pixel_term():
    logs, fake, real, adv, emo, ide, target, _ = _step_and_reference(10.0)
    assert logs["g_emo"] == pytest.approx(ce_by_hand(emo, torch.tensor([4, 0, 2])), rel=1e-4)
    rec = (fake - real).abs().mean().item()
    assert logs["g_rec"] == pytest.approx(rec, rel=1e-4)
    assert logs["loss_g"] == pytest.approx(logs["g_adv"] + logs["g_emo"] + logs["g_ide"] + 10.0 * rec, rel=1e-5)


def test_thesis_preset_has_no_pixel_term():
    from fv.engine.config import default_config
    assert default_config("baseline", "thesis").model.lambda_rec == 0.0
    assert default_config("onlyEM", "demo").model.lambda_rec > 0
