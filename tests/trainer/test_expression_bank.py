"""Expression embedder (fv.metrics.expression) and the motion-code bank of both_retrievedMcs (thesis 3.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fv.data.layout import load_split
from fv.engine.motion import MotionBank
from fv.engine.labels import APEX, N_FRAMES
from fv.metrics.emotion import FER_CLASSES, fer_preprocess
from fv.metrics.expression import (ExpressionInputError, crop_windows, default_features, embed_frames,
                                   fer_window)
from fv.trainer.expression_bank import (DEFAULT_EMBEDDER, FER_EMBEDDER, ExpressionBankError, ExpressionProjection,
                                        expression_codes, fill_bank, mix_sources, mixed_codes, parse_embedder,
                                        subject_centre)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from fv.data.synth import make_synthetic
    # workers=1: a forked render pool inside a process whose torch threads already ran can hang
    return make_synthetic(tmp_path_factory.mktemp("synth6"), n_identities=6, n_test_identities=2, takes=1,
                          workers=1, progress=False)


@pytest.fixture(scope="module")
def synth_codes(synth_root):
    """(split, codes [24, 32, 16]) of the 4 training identities x 6 emotions, from the FER2013 CNN's features
    (the embedder before issue 15; configs that name it keep working)."""
    data = load_split(synth_root, "train")
    codes, _, source = expression_codes(data, FER_EMBEDDER, progress=False)
    assert source == "clips64"
    return data, codes


# ------------------------------------------------------------------------------------------ embedder

def test_embedder_names():
    assert parse_embedder("fer2013-wtf-spca16") == parse_embedder(" FER2013-WTF-SPCA16 ")
    s = parse_embedder("fer2013-wtf-pca8")
    assert (s.subject_centred, s.dim) == (False, 8)
    for bad in ("", "fecnet16", "fer2013-wtf-lda16", "fer2013-wtf-spca0"):
        with pytest.raises(ExpressionBankError, match="unknown expression embedder"):
            parse_embedder(bad)


def test_fer_window_puts_the_eyes_where_fer2013_has_them():
    # 224 eye-centred crop (thesis 3.4.1): eyes at (111.5 -+ 27.5, 111.5); side 55 / 0.4 = 137.5
    assert fer_window(224) == (round(111.5 - 0.4 * 137.5), round(111.5 - 137.5 / 2), round(137.5)) == (56, 43, 138)
    # 64 face-centred crop (4.2.1): eyes y = 25.6, inter-ocular 0.28 * 64 = 17.92; side 44.8
    assert fer_window(64) == (round(25.6 - 0.4 * 44.8), round(31.5 - 22.4), round(44.8)) == (8, 9, 45)
    assert fer_window(64, "full") == (0, 0, 64)
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    assert np.array_equal(crop_windows(frames), frames[:, 8:53, 9:54])
    with pytest.raises(ExpressionInputError, match="square"):
        crop_windows(frames[:, :, :60])
    with pytest.raises(ExpressionInputError, match="layout"):
        embed_frames(frames, layout="mouth")


def test_features_are_the_classifiers_penultimate_layer_and_batching_is_exact():
    net = default_features()
    frames = np.random.default_rng(1).integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)
    feats = embed_frames(frames, batch_size=4)
    assert feats.shape == (9, 304) and feats.dtype == np.float32
    # the classifier's own logits are fc3(relu(features)): the hook took the right layer
    x = fer_preprocess(torch.from_numpy(crop_windows(frames)))
    with torch.no_grad():
        logits = net.net(x)
        via_feats = net.head(torch.relu(torch.from_numpy(feats)))
    torch.testing.assert_close(via_feats, logits, rtol=1e-5, atol=1e-5)
    assert (feats < 0).mean() > 0.3            # pre-activation: negative values are kept
    np.testing.assert_allclose(embed_frames(frames, batch_size=512), feats, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(embed_frames(frames[3:4]), feats[3:4], rtol=1e-5, atol=1e-5)


def test_real_video_happy_frames_embed_apart_from_sad_frames(pexels_video):
    """Pexels video (sad -> crying -> fear -> happy): 16 frames of its first third, 16 of its last third,
    eye-aligned at 224 by dlib (thesis 3.4.1)."""
    from fv.data.video_io import count_frames, read_video
    from fv.photo.aligner import FaceAligner
    n = count_frames(pexels_video)
    sad = np.linspace(0, n // 3 - 1, 16).round().astype(int)
    happy = np.linspace(n - n // 3, n - 1, 16).round().astype(int)
    aligner = FaceAligner()
    crops = np.stack([aligner.align_eyes(f).image for f in read_video(pexels_video, np.r_[sad, happy])])
    feats = embed_frames(crops)                                           # [32, 304]
    # the FER window: the CNN's own head reads these frames as sad and happy (FER class order)
    net = default_features()
    labels = net.head(torch.relu(torch.from_numpy(feats))).argmax(1).numpy()
    assert (labels[:16] == FER_CLASSES.index("sad")).sum() >= 12
    assert (labels[16:] == FER_CLASSES.index("happy")).sum() >= 14
    # features: happy frames are closer to each other than to sad frames
    d = np.linalg.norm(feats[:, None] - feats[None], axis=-1)
    within_happy = d[16:, 16:][np.triu_indices(16, 1)].mean()
    within_sad = d[:16, :16][np.triu_indices(16, 1)].mean()
    cross = d[:16, 16:].mean()
    assert within_happy < 0.6 * cross and within_sad < 0.6 * cross
    # 16-D whitened codes: leave-one-out nearest centroid tells the thirds apart
    z = ExpressionProjection.fit(feats, 16)(feats)
    y = np.r_[np.zeros(16), np.ones(16)]
    hits = []
    for i in range(32):
        rest = np.arange(32) != i
        c = [z[rest & (y == k)].mean(0) for k in (0, 1)]
        hits.append(np.argmin([np.linalg.norm(z[i] - ck) for ck in c]) == y[i])
    assert np.mean(hits) >= 0.9


# ---------------------------------------------------------------------------------------- projection

def test_projection_is_whitened_pca():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(12, 12))
    x = rng.normal(size=(600, 12)) @ a + 3.0                              # correlated, off-centre
    proj = ExpressionProjection.fit(x, 5)
    z = proj(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(np.cov(z.T, bias=True), np.eye(5), atol=1e-4)
    # independent reference: the top-5 eigenvectors of the covariance (eigh, not SVD)
    lam, vec = np.linalg.eigh(np.cov(x.T, bias=True))
    top = vec[:, ::-1][:, :5]
    np.testing.assert_allclose(np.abs(top.T @ proj.components), np.eye(5), atol=1e-6)
    np.testing.assert_allclose(proj.scale ** 2, lam[::-1][:5], rtol=1e-8)
    assert proj.explained == pytest.approx(lam[::-1][:5].sum() / lam.sum())
    # fewer axes in the data than D: the missing axes are 0, never amplified noise
    flat = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 7))
    zf = ExpressionProjection.fit(flat, 4)(flat)
    assert np.abs(zf[:, 2:]).max() == 0 and np.allclose(zf[:, :2].std(0), 1, atol=1e-4)


def test_subject_centre():
    f = np.arange(3 * 2 * 2, dtype=np.float64).reshape(3, 2, 2)         # videos of subjects 0, 1, 0
    g = subject_centre(f, np.array([0, 1, 0]))
    mu0 = (f[0].sum(0) + f[2].sum(0)) / 4
    np.testing.assert_allclose(g[0], f[0] - mu0)
    np.testing.assert_allclose(g[1], f[1] - f[1].mean(0))
    np.testing.assert_allclose(g.reshape(-1, 2).mean(0), 0, atol=1e-12)


# -------------------------------------------------------------------------------------------- bank

def test_fill_bank_writes_codes_and_labels(synth_codes):
    data, codes = synth_codes
    bank = MotionBank(len(data), N_FRAMES, 16)
    lines = []
    fill_bank(bank, data, FER_EMBEDDER, lines.append, progress=False)
    assert len(lines) == 1 and "24 videos" in lines[0] and "subject-centred" in lines[0]
    torch.testing.assert_close(bank.codes, torch.from_numpy(codes), rtol=1e-4, atol=1e-4)
    names = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    assert bank.emotions.tolist() == [names.index(r["emotion"]) for r in data.rows]
    subjects = sorted({r["subject"] for r in data.rows})
    assert bank.subjects.tolist() == [subjects.index(r["subject"]) for r in data.rows]
    flat = bank.codes.reshape(-1, 16).double()                            # standardised over training frames
    torch.testing.assert_close(flat.mean(0), torch.zeros(16, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.std(0, unbiased=False), torch.ones(16, dtype=torch.float64), atol=1e-3, rtol=0)
    with pytest.raises(ExpressionBankError, match="slots"):
        fill_bank(MotionBank(len(data) - 1, N_FRAMES, 16), data, FER_EMBEDDER, progress=False)
    with pytest.raises(ExpressionBankError, match="motion_dim"):
        fill_bank(MotionBank(len(data), N_FRAMES, 10), data, DEFAULT_EMBEDDER, progress=False)


def test_synthetic_emotions_separate_across_identities(synth_codes):
    """Leave one identity out: apex-frame codes (frames 10-21) go to the nearest emotion centroid of
    the other identities' apex frames. Chance is 1/6."""
    data, codes = synth_codes
    emo, subj = data.emotions, data.subject_ids
    apex = codes[:, list(APEX)]                                           # [24, 12, 16]
    hits = []
    for s in np.unique(subj):
        cent = np.stack([apex[(subj != s) & (emo == k)].reshape(-1, 16).mean(0) for k in range(6)])
        d = ((apex[subj == s][..., None, :] - cent) ** 2).sum(-1)        # [4, 12, 6]
        hits.append(d.argmin(-1) == emo[subj == s][:, None])
    assert np.concatenate(hits).mean() > 0.5


# ------------------------------------------------------------------------------------------ mixing

def hand_bank(emotions, subjects, dim=3, seed=0) -> MotionBank:
    bank = MotionBank(len(emotions), N_FRAMES, dim)
    bank.codes.copy_(torch.randn(len(emotions), N_FRAMES, dim, generator=torch.Generator().manual_seed(seed)))
    bank.emotions.copy_(torch.tensor(emotions))
    bank.subjects.copy_(torch.tensor(subjects))
    return bank


# 12 videos: emotion e = i % 3, subject s = i // 3 (4 subjects); video 12 is the only "surprise"
EMO = [i % 3 for i in range(12)] + [5]
SUBJ = [i // 3 for i in range(12)] + [0]


def test_no_mixing_returns_own_codes_exactly():
    bank = hand_bank(EMO, SUBJ)
    index = torch.tensor([4, 0, 12, 7, 7])
    out = mixed_codes(bank, index, 0.0, torch.Generator().manual_seed(3))
    assert torch.equal(out, bank.codes[index])


def test_full_mixing_takes_same_emotion_other_subject():
    bank = hand_bank(EMO, SUBJ)
    index = torch.arange(13).repeat(20)
    src = mix_sources(bank, index, 1.0, torch.Generator().manual_seed(4))
    emo, subj = torch.tensor(EMO), torch.tensor(SUBJ)
    mixed = index != 12
    assert torch.equal(emo[src], emo[index])
    assert (subj[src][mixed] != subj[index][mixed]).all()
    assert (src[~mixed] == 12).all()                 # no other-subject surprise video: keeps its own
    out = mixed_codes(bank, index, 1.0, torch.Generator().manual_seed(4))
    assert torch.equal(out, bank.codes[src])


def test_partial_mixing_rate_is_binomial_and_partners_uniform():
    bank = hand_bank(EMO, SUBJ)
    n, p = 6000, 0.3
    index = torch.randint(0, 12, (n,), generator=torch.Generator().manual_seed(5))
    src = mix_sources(bank, index, p, torch.Generator().manual_seed(6))
    k = int((src != index).sum())                   # every video 0-11 has 3 partners: mixed <=> changed
    assert abs(k - n * p) < 4 * math.sqrt(n * p * (1 - p))
    # video 0 (emotion 0, subject 0) mixes into videos 3, 6, 9 with equal chance
    src0 = mix_sources(bank, torch.zeros(3000, dtype=torch.long), 1.0, torch.Generator().manual_seed(7))
    counts = np.array([(src0 == j).sum().item() for j in (3, 6, 9)])
    assert counts.sum() == 3000 and stats.chisquare(counts).pvalue > 1e-3
    # seeded: the same generator state gives the same swaps
    again = mix_sources(bank, index, p, torch.Generator().manual_seed(6))
    assert torch.equal(again, src)


def test_mixing_rejects_bad_requests():
    bank = hand_bank(EMO, SUBJ)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ExpressionBankError, match=r"\[0, 1\]"):
        mixed_codes(bank, torch.tensor([0]), 1.5, g)
    with pytest.raises(ExpressionBankError, match="indices"):
        mixed_codes(bank, torch.tensor([13]), 0.5, g)
    with pytest.raises(ExpressionBankError, match="fill_bank"):
        mixed_codes(MotionBank(3, N_FRAMES, 3), torch.tensor([0]), 0.5, g)


# -------------------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_train_and_sample_both_retrieved_mcs(synth_root, synth_codes, tmp_path):
    """3 training steps of both_retrievedMcs (bank filled from the synthetic train split by the embedder before
    issue 15, as an older config names it), then sampling."""
    from fv.engine.checkpoint import load_checkpoint
    from fv.engine.engine import Engine
    from fv.trainer.run import train_setting
    logs = []
    # sample_every=0: the trainer's preview renders 12 videos x 25 DDIM steps, minutes on 2 CPU cores
    last = train_setting("both_retrievedMcs", synth_root, run_dir=tmp_path, progress=False, resume=False,
                         overrides=dict(steps=3, batch_size=2, ckpt_every=3, sample_every=0, log_every=1),
                         log=logs.append, embedder=FER_EMBEDDER)
    assert any(line.startswith("motion-code bank: 24 videos") for line in logs)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3
    config, model = load_checkpoint(last, settings=("both_retrievedMcs",))
    assert config.model.embedder == FER_EMBEDDER and config.model.bank_size == 24
    data, codes = synth_codes
    torch.testing.assert_close(model["bank"].codes, torch.from_numpy(codes), rtol=1e-4, atol=1e-4)
    assert model["bank"].emotions.tolist() == data.emotions.tolist()

    x_ref = load_split(synth_root, "test").videos([0, 5])[:, 0]          # [2, 3, 64, 64]
    emotions = torch.tensor([3, 0])
    # retrieval: each request's trajectory is a training video of its target emotion
    engine = Engine(last, sampler="ddim", steps=2, eta=0.0, guidance=2.0)
    z = engine.renderer.motion.codes(emotions, [11, 12])
    for zi, e in zip(z, emotions):
        rows = [i for i in range(24) if torch.equal(model["bank"].codes[i], zi)]
        assert rows and all(data.emotions[i] == e for i in rows)
    videos = engine.sample(x_ref, emotions, [11, 12])
    assert videos.shape == (2, N_FRAMES, 3, 64, 64) and torch.isfinite(videos).all()
    assert videos.abs().max() <= 1.0 + 1e-6
    # batch == single, up to float noise: ddim2's first jump divides eps by sqrt(abar_999) = 0.0064
    single = engine.sample(x_ref[1:], emotions[1:], [12])
    diff = (single[0] - videos[1]).abs()
    assert diff.max() < 1e-2 and diff.mean() < 1e-4
