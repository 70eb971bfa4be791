"""The batched engine: batch == per-request, chunking changes nothing, GAN and diffusion settings, the
diffusion path against a one-step hand formula and a several-step DDPM / DDIM loop written from the papers
driving the same U-Net, ONNX Runtime against torch, clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fv.engine.families import build_model
from fv.engine.checkpoint import load_checkpoint, save_checkpoint, state_tensors
from fv.engine.config import DiffusionConfig, GANConfig, RunConfig, default_config
from fv.engine.diffusion import DiffusionSchedule
from fv.engine.engine import Engine, to_uint8_video
from fv.engine.gan_sampling import gan_video
from fv.engine.labels import one_hot
from fv.engine.models.mixer import motion_windows
from fv.engine.models.unet import UNetConfig
from fv.engine.motion import motion_noise
from fv.engine.requests import EngineError, RenderRequest
from fv.engine.sample_options import SampleOptions

S = 16     # tiny U-Net frame size (the GAN is fixed at 64)
ATOL = 2e-5  # batched kernels may round differently from single ones; nothing else may differ


# ---------------------------------------------------------------- tiny checkpoints (also used by tests/cli)

def tiny_gan_checkpoint(path, setting="baseline", seed=0):
    cfg = default_config(setting, "demo")
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, gen_ch=4, disc_ch=4, dim_z_content=8, n_identities=3))
    torch.manual_seed(seed)
    model = build_model(cfg)
    return save_checkpoint(path, cfg, 1, state_tensors("model", model.state_dict()))


def tiny_unet(motion_dim=10) -> UNetConfig:
    # 16 x 16 frames and 4 levels: the same engine logic as 64 x 64 at 1/16 of the CPU time
    return UNetConfig.demo(image_size=S, base_ch=4, ch_mult=(1, 1, 2, 2), groups=2, time_dim=16, mixer_depth=1,
                           mixer_ch=8, mixer_hidden=16, face_ch=(4, 4, 4, 4), attn_heads=2, motion_dim=motion_dim)


def tiny_diffusion_checkpoint(path, setting="onlyDM", seed=0, num_steps=100, objective="frame-eps", **sampling):
    retrieved = setting == "both_retrievedMcs"
    motion = None if retrieved else GANConfig(emotion_in_gru=setting == "EM-DM")
    model_cfg = DiffusionConfig(unet=tiny_unet(16 if retrieved else 10), num_steps=num_steps, objective=objective,
                                motion_source="retrieved" if retrieved else "gru", motion=motion,
                                bank_size=12 if retrieved else 0,
                                sampling=SampleOptions(**{"steps": 4, "ref_strength": 1.0, **sampling}))
    cfg = RunConfig(setting=setting, preset="demo", model=model_cfg)
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():  # the last conv starts near zero in some inits; make eps clearly input-dependent
        for p in model["unet"].out.parameters():
            p.normal_(0, 0.3)
        if retrieved:
            bank = model["bank"]
            bank.codes.normal_()
            bank.emotions.copy_(torch.arange(12) % 6)
            bank.subjects.copy_(torch.arange(12) // 6)
    return save_checkpoint(path, cfg, 1, state_tensors("model", model.state_dict()))


@pytest.fixture(autouse=True)
def _one_thread():
    # one intra-op thread: on a shared 2-core machine two OpenMP threads per process can run 50x slower
    torch.set_num_threads(1)
    yield


def faces(n, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine_ckpts")
    return {"baseline": tiny_gan_checkpoint(d / "baseline.safetensors"),
            "onlyEM": tiny_gan_checkpoint(d / "onlyEM.safetensors", "onlyEM", seed=1),
            "onlyDM": tiny_diffusion_checkpoint(d / "onlyDM.safetensors"),
            # what `fv train --residual` makes: residual target, the U-Net predicts it (x0)
            "onlyDM-residual": tiny_diffusion_checkpoint(d / "onlyDM_res.safetensors", objective="residual-x0"),
            "EM-DM": tiny_diffusion_checkpoint(d / "EM-DM.safetensors", "EM-DM", seed=2),
            "both_retrievedMcs": tiny_diffusion_checkpoint(d / "both.safetensors", "both_retrievedMcs", seed=3)}


def eng_size(path) -> int:
    return 64 if "baseline" in str(path) or "onlyEM" in str(path) else S


def per_request(engine, x, emotions, seeds):
    return torch.cat([engine.sample(x[i:i + 1], [emotions[i]], [seeds[i]]) for i in range(len(x))])


# ---------------------------------------------------------------- GAN settings

@pytest.mark.parametrize("setting", ["baseline", "onlyEM"])
def test_gan_batch_equals_single_and_direct_torch(ckpts, setting):
    eng = Engine(ckpts[setting])
    x, emo, seeds = faces(3), [0, 3, 5], [11, 12, 13]
    batch = eng.sample(x, emo, seeds)
    assert batch.shape == (3, 32, 3, 64, 64) and batch.abs().max() <= 1
    torch.testing.assert_close(batch, per_request(eng, x, emo, seeds), atol=ATOL, rtol=0)
    # the direct module path: R then G with the request's own motion stream
    _, model = load_checkpoint(ckpts[setting])
    noise, h0 = motion_noise(seeds, 10)
    ref, codes = gan_video(model["R"], model["G"], x, one_hot(torch.tensor(emo)), noise, h0)
    torch.testing.assert_close(batch, ref, atol=ATOL, rtol=0)
    assert codes.std(1).mean() > 0  # the GRU moves: frames differ over time
    assert (batch[:, 0] - batch[:, 20]).abs().mean() > 1e-4


def test_gan_chunking_and_sub_batches_change_nothing(ckpts):
    x, emo, seeds = faces(3, seed=1), [1, 2, 4], [5, 6, 7]
    big = Engine(ckpts["baseline"], max_frames_per_call=1024)
    small = Engine(ckpts["baseline"], max_frames_per_call=20)  # 1 video per chunk, 2 decoder calls per video
    assert big.videos_per_chunk == 32 and small.videos_per_chunk == 1
    a, b = big.sample(x, emo, seeds), small.sample(x, emo, seeds)
    assert small.nets["decoder"].calls == 3 * 2 and big.nets["decoder"].calls == 1
    # the neutral face is encoded once per video, not once per frame
    assert small.nets["encoder"].calls == 3 and big.nets["encoder"].calls == 1
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


# ---------------------------------------------------------------- diffusion settings

@pytest.mark.parametrize("setting", ["onlyDM", "EM-DM", "both_retrievedMcs"])
def test_diffusion_batch_equals_single(ckpts, setting):
    eng = Engine(ckpts[setting], sampler="ddpm", steps=4, guidance=2.0, ref_strength=0.5)  # from the noised face
    x, emo, seeds = faces(3, S, seed=2), [3, 0, 3], [7, 8, 9]
    batch = eng.sample(x, emo, seeds)
    assert batch.shape == (3, 32, 3, S, S) and torch.isfinite(batch).all()
    torch.testing.assert_close(batch, per_request(eng, x, emo, seeds), atol=ATOL, rtol=0)
    # same seed and emotion, another face: only the identity differs; another seed: another sample
    assert not torch.allclose(batch[0], batch[2], atol=1e-3)


def test_diffusion_chunking_changes_nothing(ckpts):
    x, emo, seeds = faces(3, S, seed=3), [5, 4, 1], [1, 2, 3]
    big = Engine(ckpts["onlyDM"], sampler="ddim", steps=3, eta=0.5, max_frames_per_call=512)
    small = Engine(ckpts["onlyDM"], sampler="ddim", steps=3, eta=0.5, max_frames_per_call=40)
    assert big.videos_per_chunk == 8 and small.videos_per_chunk == 1
    a, b = big.sample(x, emo, seeds), small.sample(x, emo, seeds)
    # big: 3 steps of one call of 2 x 3 x 32 rows; small: 3 chunks x 3 steps x ceil(64 / 40) = 2 calls
    assert big.nets["denoiser"].calls == 3 and small.nets["denoiser"].calls == 3 * 3 * 2
    assert big.nets["face_encoder"].calls == 1 and small.nets["face_encoder"].calls == 3
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    # uint8 outputs: at most one grey level apart where rounding falls on a boundary
    assert np.abs(to_uint8_video(a).astype(int) - to_uint8_video(b).astype(int)).max() <= 1


def unet_halves(path, x, seed: int, emotion: int):
    """The checkpoint's U-Net driven directly, without the engine: raw(x_t [32, 3, S, S], t) -> (conditional,
    unconditional) raw outputs; the request's motion windows come from its GRU on its own motion stream, and the
    unconditional half zeroes motion and emotion (thesis 3.2.3)."""
    config, model = load_checkpoint(path)
    unet, R = model["unet"], model["R"]
    noise, h0 = motion_noise([seed], 10)
    z_a = one_hot(torch.tensor([emotion]))
    win = motion_windows(R(noise, h0, z_a), 7)[0]                            # [T, W, D]
    with torch.no_grad():
        ref = tuple(f.expand(32, -1, -1, -1) for f in unet.encode_reference(x))

    def raw(x_t, t: int):
        t_vec = torch.full((32,), t)
        with torch.no_grad():
            return (unet.denoise(x_t, ref, t_vec, win, z_a.expand(32, -1)),
                    unet.denoise(x_t, ref, t_vec, torch.zeros_like(win), torch.zeros(32, 7)))
    return config, raw


@pytest.mark.parametrize("frame_noise,target", [("video", "frame"), ("frame", "frame"), ("video", "residual")])
def test_one_ddim_step_matches_the_hand_formula(ckpts, frame_noise, target):
    """One DDIM step from t = L-1 to clean data: x0 = clip((x_T - sqrt(1 - abar) eps) / sqrt(abar)) with
    eps = eps_u + g (eps_c - eps_u), x_T = the request's first N(0, I) draw (its own CPU generator): one
    [3, S, S] image shared by the 32 frames ("video") or [32, 3, S, S] ("frame"). A residual target
    diffuses frame - x_ref: the frame is x_ref + that x0, clipped so the frame stays in [-1, 1]. Its U-Net
    predicts x0 (r = its raw output), which the sampler turns into eps = (x_T - sqrt(abar) r) / sqrt(1 - abar),
    so the step's x0 is r_u + g (r_c - r_u), computed here from the raw outputs."""
    g, seed, emotion = 3.0, 21, 3
    name = "onlyDM" if target == "frame" else "onlyDM-residual"
    eng = Engine(ckpts[name], sampler="ddim", steps=1, guidance=g, frame_noise=frame_noise)
    x = faces(1, S, seed=4)
    out = eng.sample(x, [emotion], [seed])[0]                                # [T, 3, S, S]

    config, raw = unet_halves(ckpts[name], x, seed, emotion)
    assert config.model.parameterisation.target == target
    gen = torch.Generator().manual_seed(seed)
    x_T = (torch.randn(1, 3, S, S, generator=gen).expand(32, -1, -1, -1) if frame_noise == "video"
           else torch.randn(32, 3, S, S, generator=gen))
    abar = float(torch.prod(1 - torch.linspace(1e-4, 0.02, 100, dtype=torch.float64)))
    raw_c, raw_u = raw(x_T, 99)
    if target == "frame":                                                    # eps prediction
        eps = raw_u + g * (raw_c - raw_u)
        x0 = (x_T - (1 - abar) ** 0.5 * eps) / abar ** 0.5
    else:                                                                    # x0 prediction
        assert config.model.parameterisation.prediction == "x0"
        x0 = raw_u + g * (raw_c - raw_u)
    want = x0.clamp(-1, 1) if target == "frame" else (x[0] + x0).clamp(-1, 1)
    torch.testing.assert_close(out, want, atol=1e-4, rtol=0)
    if target == "residual":  # x_ref shows through: not the frame formula
        assert (out - x0.clamp(-1, 1)).abs().max() > 0.1


# atol: float32 round-off through the network is ~1e-6 here. With x0 prediction the engine turns x0 into eps and
# back through eps_from's float32 tables, which are built from the float32-rounded abar: 1 - abar_0 = 1e-4 carries
# ~1e-4 relative error, about 1e-4 on the frames (2e-6 with tables from the float64 abar); one grey level is 8e-3.
@pytest.mark.parametrize("name,sampler,eta,frame_noise,ref_strength,atol", [
    ("onlyDM", "ddpm", 0.0, "frame", 1.0, 1e-5),            # the thesis: eps prediction, ancestral, noise per frame
    ("onlyDM-residual", "ddim", 0.5, "video", 0.5, 2e-4)],  # fv's demo: x0 prediction, SDEdit, noise per video
    ids=["thesis-ddpm", "demo-ddim-sdedit"])
def test_several_steps_match_a_hand_loop(ckpts, name, sampler, eta, frame_noise, ref_strength, atol):
    """The engine against DDPM (Ho et al. 2020 eqs. 6-7, sigma^2 = beta-tilde with the respaced
    beta' = 1 - abar_t / abar_prev) or DDIM (Song et al. 2021 eq. 12, sigma from eq. 16) written here from the
    papers, on the L = 100 linear schedule: the same U-Net, the request's own noise stream (x_T, then one draw
    per step that ends above the data), guidance on the prediction, x0 clipped so frames stay in [-1, 1]
    (clip_x0 = 1) and eps re-derived from the clipped x0. SDEdit starts at the highest visited t <= s (L-1) from
    the reference's x0 (x_ref for a frame target, 0 for a residual one) noised there with the x_T draw."""
    g, seed, emotion = 2.0, 5, 1
    eng = Engine(ckpts[name], sampler=sampler, steps=10, eta=eta, guidance=g, frame_noise=frame_noise,
                 ref_strength=ref_strength)
    x = faces(1, S, seed=8)
    out = eng.sample(x, [emotion], [seed])[0]                                # [T, 3, S, S]

    config, raw = unet_halves(ckpts[name], x, seed, emotion)
    residual = config.model.parameterisation.target == "residual"
    ab = np.cumprod(1 - np.linspace(1e-4, 0.02, 100))                        # abar_t, float64
    ts = [t for t in range(0, 100, 11) if t <= ref_strength * 99]            # 10 steps: stride 99 // 9 = 11
    gen = torch.Generator().manual_seed(seed)

    def draw():
        return (torch.randn(1, 3, S, S, generator=gen).expand(32, -1, -1, -1) if frame_noise == "video"
                else torch.randn(32, 3, S, S, generator=gen)).double()
    x, x_t = x.double(), draw()
    if ref_strength < 1:
        x0_ref = torch.zeros_like(x_t) if residual else x.expand(32, -1, -1, -1)
        x_t = ab[ts[-1]] ** 0.5 * x0_ref + (1 - ab[ts[-1]]) ** 0.5 * x_t
    lo, hi = (-1 - x[0], 1 - x[0]) if residual else (-torch.ones(1).double(), torch.ones(1).double())
    clipped = 0
    for t, tp in zip(ts[::-1], ts[::-1][1:] + [-1]):
        a, ap = ab[t], (ab[tp] if tp >= 0 else 1.0)
        raw_c, raw_u = (r.double() for r in raw(x_t.float(), t))             # the loop itself runs in float64
        pred = raw_u + g * (raw_c - raw_u)                                   # affine: guidance on eps or on x0
        x0 = pred if residual else (x_t - (1 - a) ** 0.5 * pred) / a ** 0.5
        clipped += int(((x0 < lo) | (x0 > hi)).any())
        x0 = torch.maximum(torch.minimum(x0, hi), lo)
        eps = (x_t - a ** 0.5 * x0) / (1 - a) ** 0.5
        z = draw() if tp >= 0 and (sampler == "ddpm" or eta > 0) else torch.zeros_like(x_t)
        if sampler == "ddpm":
            beta = 1 - a / ap
            x_t = (ap ** 0.5 * beta / (1 - a) * x0 + (1 - beta) ** 0.5 * (1 - ap) / (1 - a) * x_t
                   + (beta * (1 - ap) / (1 - a)) ** 0.5 * z)
        else:
            sigma = eta * ((1 - ap) / (1 - a)) ** 0.5 * (1 - a / ap) ** 0.5
            x_t = ap ** 0.5 * x0 + (1 - ap - sigma ** 2) ** 0.5 * eps + sigma * z
    want = x[0] + x_t if residual else x_t
    assert clipped > 0, "the clip was never exercised"
    torch.testing.assert_close(out, want.float(), atol=atol, rtol=0)


def test_retrieved_codes_are_training_trajectories_of_the_target_emotion(ckpts):
    eng = Engine(ckpts["both_retrievedMcs"])
    emotions, seeds = torch.tensor([0, 5, 5, 2]), [1, 2, 3, 1]
    source = eng.renderer.motion
    codes = source.codes(emotions, seeds)                                  # [4, T, 16]
    bank = source.bank
    for c, e in zip(codes, emotions):
        match = [i for i in range(len(bank.codes)) if torch.equal(bank.codes[i], c)]
        assert len(match) == 1 and int(bank.emotions[match[0]]) == int(e)
    torch.testing.assert_close(codes[1:3], source.codes(emotions[1:3], seeds[1:3]))  # per request, not per batch


def test_guidance_one_runs_a_single_half(ckpts):
    eng = Engine(ckpts["onlyDM"], sampler="ddim", steps=2, guidance=1.0, max_frames_per_call=64)
    assert eng.halves == 1 and eng.videos_per_chunk == 2
    x = faces(2, S, seed=5)
    a = eng.sample(x, [0, 1], [3, 4])
    assert eng.nets["denoiser"].calls == 2  # 2 steps x one call of 2 x 32 frames (no unconditional half)
    torch.testing.assert_close(a, per_request(eng, x, [0, 1], [3, 4]), atol=ATOL, rtol=0)


def test_requests_and_seeds(ckpts):
    eng = Engine(ckpts["baseline"])
    x = faces(1, seed=6)
    crop = to_uint8_video(x[:, None])[0, 0]                                 # uint8 [64, 64, 3]
    xq = torch.from_numpy(crop).permute(2, 0, 1).float().div(255).sub(0.5).div(0.5)[None]
    got = eng.render_requests([RenderRequest(crop, "happy", 4), RenderRequest(xq[0], 3, 5)])
    assert got.dtype == np.uint8 and got.shape == (2, 32, 64, 64, 3)
    single = eng.render(xq, [3], [4])[0]                                    # the same request alone
    assert np.abs(got[0].astype(int) - single.astype(int)).max() <= 1 and (got[0] != single).mean() < 1e-3
    assert not np.array_equal(got[0], got[1])                               # another seed, another motion
    np.testing.assert_array_equal(eng.render(xq, [3], [4]), eng.render(xq, [3], [4]))


def test_bad_input_is_a_clear_engine_error(ckpts):
    eng = Engine(ckpts["baseline"])
    with pytest.raises(EngineError, match=r"\[-1, 1\]"):
        eng.render(faces(1) * 3, [0], [0])
    with pytest.raises(EngineError, match=r"\[N, 3, 64, 64\]"):
        eng.render(torch.zeros(1, 3, 32, 32), [0], [0])
    with pytest.raises(EngineError, match="2 emotions and 2 seeds"):
        eng.render(faces(2), [0], [0, 1])
    with pytest.raises(EngineError, match="0..5"):
        eng.render(faces(1), [6], [0])
    with pytest.raises(EngineError, match="seeds must be integers"):
        eng.render(faces(1), [0], [-1])
    with pytest.raises(EngineError, match="unknown sampler"):
        Engine(ckpts["onlyDM"], sampler="euler")
    with pytest.raises(EngineError, match="bad --steps"):
        Engine(ckpts["onlyDM"], steps=500)  # the tiny schedule has L = 100
    with pytest.raises(EngineError, match="max_frames_per_call"):
        Engine(ckpts["baseline"], max_frames_per_call=0)


def test_engine_takes_schedule_and_defaults_from_the_checkpoint(ckpts):
    eng = Engine(ckpts["onlyDM"])
    schedule = eng.renderer.schedule
    assert schedule.device == eng.device and eng.options.steps == 4  # the tiny config's sampling.steps
    torch.testing.assert_close(schedule.alphas_cumprod, DiffusionSchedule(100).alphas_cumprod)
    assert repr(eng).startswith("Engine(onlyDM, torch on cpu")
    assert eng.steps_per_chunk == 4 and Engine(ckpts["baseline"]).steps_per_chunk == 1
    # an SDEdit start runs only the steps at or below t = s (L-1): the progress bar counts those
    assert Engine(ckpts["onlyDM"], steps=10, ref_strength=0.5).steps_per_chunk == 5


# ---------------------------------------------------------------- ONNX Runtime (fv export's artefacts)

def _ort_available():
    try:
        import onnxruntime  # noqa: F401
        from fv.engine.backends import ort_backend  # noqa: F401
        from fv.export import stages  # noqa: F401 - fv export's staged ONNX export
    except ImportError as e:
        pytest.skip(f"ONNX Runtime backend or exporter not available: {e}")


@pytest.mark.parametrize("setting", ["baseline", "onlyDM", "onlyDM-residual"])
def test_onnxruntime_engine_matches_torch(ckpts, tmp_path, setting):
    _ort_available()
    from fv.export.stages import export_checkpoint
    export_checkpoint(ckpts[setting], tmp_path)                            # what `fv export` writes
    sampler = "dpmpp2m" if setting == "onlyDM-residual" else "ddpm"   # a multistep solver on one of them
    kw = dict(sampler=sampler, steps=3, guidance=2.0) if setting.startswith("onlyDM") else {}
    ort = Engine(ckpts[setting], backend="onnxruntime", artifacts_dir=tmp_path, **kw)
    ref = Engine(ckpts[setting], **kw)
    assert {type(n.backend).__name__ for n in ort.nets.values()} == {"OrtBackend"}
    x, emo, seeds = faces(2, eng_size(ckpts[setting]), seed=7), [3, 1], [1, 2]
    a = ort.sample(x, emo, seeds)
    torch.testing.assert_close(a, ref.sample(x, emo, seeds), atol=1e-3, rtol=0)
    torch.testing.assert_close(a, per_request(ort, x, emo, seeds), atol=ATOL, rtol=0)
