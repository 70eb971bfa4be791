"""AEA / DEA / WN variants and ACD-I / ACD-C against hand-computed values (thesis 4.4.2-4.4.4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial import distance as sp

from fv.engine.labels import CLASSES, NEUTRAL
from fv.metrics.scores import (THRESHOLDS, MetricInputError, continuity_distances, cosine_distance,
                               emotion_scores, euclidean_distance, identity_distances, identity_scores,
                               recognition_rate)

HAPPY, SAD, ANGER, FEAR = (CLASSES.index(c) for c in ("happiness", "sadness", "anger", "fear"))


def video(onset_right: int, apex_right: int, offset_right: int, target: int, wrong: int = FEAR) -> np.ndarray:
    """[32] labels with the first k frames of each segment right (neutral / target / neutral)."""
    y = np.full(32, wrong)
    y[0:onset_right] = NEUTRAL
    y[10:10 + apex_right] = target
    y[22:22 + offset_right] = NEUTRAL
    return y


def test_aea_dea_majority_is_strict():
    # 7 of 12 apex frames right -> AEA 7/12, DEA 1; 6 of 12 -> AEA 1/2, DEA 0 (eq. 4.5: > 0.5).
    r7 = emotion_scores(video(0, 7, 0, HAPPY)[None], [HAPPY]).groups["all"]
    r6 = emotion_scores(video(0, 6, 0, HAPPY)[None], [HAPPY]).groups["all"]
    assert r7.aea == pytest.approx(7 / 12) and r7.dea == 1.0
    assert r6.aea == pytest.approx(6 / 12) and r6.dea == 0.0
    both = emotion_scores(np.stack([video(0, 7, 0, HAPPY), video(0, 6, 0, HAPPY)]), [HAPPY, HAPPY])
    assert both.groups["all"].aea == pytest.approx((7 / 12 + 6 / 12) / 2)
    assert both.groups["all"].dea == 0.5


def test_with_neutral_variants():
    # onset 10/10, apex 7/12, offset 0/10 -> 17/32 right: AEA_WN 17/32, DEA_WN 1.
    # onset 10/10, apex 6/12, offset 0/10 -> 16/32: DEA_WN 0 (strict half).
    a = video(10, 7, 0, SAD)
    b = video(10, 6, 0, SAD)
    ra = emotion_scores(a[None], [SAD]).groups["all"]
    rb = emotion_scores(b[None], [SAD]).groups["all"]
    assert ra.aea_wn == pytest.approx(17 / 32) and ra.dea_wn == 1.0
    assert rb.aea_wn == pytest.approx(16 / 32) and rb.dea_wn == 0.0
    # a clip that is the target emotion throughout scores AEA 1 but AEA_WN only 12/32
    flat = np.full((1, 32), SAD)
    rf = emotion_scores(flat, [SAD]).groups["all"]
    assert (rf.aea, rf.dea) == (1.0, 1.0)
    assert rf.aea_wn == pytest.approx(12 / 32) and rf.dea_wn == 0.0


def test_per_emotion_groups_and_profiles():
    pred = np.stack([video(10, 12, 10, HAPPY),        # perfect happy clip
                     video(0, 3, 5, HAPPY),           # happy clip: apex 3/12, WN 8/32
                     video(4, 9, 10, ANGER)])         # anger clip: apex 9/12, WN 23/32
    rep = emotion_scores(pred, [HAPPY, HAPPY, ANGER])
    assert list(rep.groups) == ["all", "anger", "happiness"]
    h, a, al = rep.groups["happiness"], rep.groups["anger"], rep.groups["all"]
    assert h.n_videos == 2 and a.n_videos == 1 and al.n_videos == 3
    assert h.aea == pytest.approx((1 + 3 / 12) / 2) and h.dea == 0.5
    assert h.aea_wn == pytest.approx((1 + 8 / 32) / 2) and h.dea_wn == 0.5
    assert a.aea == pytest.approx(9 / 12) and a.aea_wn == pytest.approx(23 / 32) and a.dea_wn == 1.0
    assert al.aea == pytest.approx((1 + 3 / 12 + 9 / 12) / 3)
    # profile: frame 10 is the target in all three clips, frame 13 in two (clip 2 has 3 right: 10-12)
    assert al.profile[10] == 1.0 and al.profile[13] == pytest.approx(2 / 3)
    assert al.profile[0] == 0.0                       # onset frames are never the target emotion
    # profile_wn: frame 0 neutral in clips 0 and 2, frame 5 in clip 0 only, frame 31 in clips 0 and 2
    assert al.profile_wn[0] == pytest.approx(2 / 3) and al.profile_wn[5] == pytest.approx(1 / 3)
    assert al.profile_wn[31] == pytest.approx(2 / 3)
    assert len(al.profile) == len(al.profile_wn) == 32
    json.dumps(rep.to_dict())


@pytest.mark.parametrize("pred,targets", [
    (np.zeros((2, 31), int), [0, 0]),                 # not 32 frames
    (np.zeros((2, 32), int), [0]),                    # targets do not match N
    (np.full((1, 32), 7), [0]),                       # label out of range
    (np.zeros((1, 32), int), [NEUTRAL]),              # neutral is no target emotion
    (np.zeros((1, 32)), [0]),                         # float labels
])
def test_emotion_input_errors(pred, targets):
    with pytest.raises(MetricInputError):
        emotion_scores(pred, targets)


def test_distances_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    np.testing.assert_allclose(cosine_distance(a, b), [sp.cosine(x, y) for x, y in zip(a, b)], atol=1e-12)
    np.testing.assert_allclose(euclidean_distance(a, b), [sp.euclidean(x, y) for x, y in zip(a, b)], atol=1e-12)


def test_acd_identity_by_hand():
    # 1 video, 4 frames on the unit circle at 0, 60, 90, 180 degrees; reference at 0 degrees:
    # cosine distances 1 - cos(angle) = 0, 1/2, 1, 2; Euclidean |2 sin(angle/2)| = 0, 1, sqrt 2, 2.
    ang = np.deg2rad([0, 60, 90, 180])
    emb = np.stack([np.cos(ang), np.sin(ang)], -1)[None]        # [1, 4, 2]
    ref = np.array([[1.0, 0.0]])
    np.testing.assert_allclose(identity_distances(emb, ref, "cosine")[0], [0, 0.5, 1, 2], atol=1e-12)
    np.testing.assert_allclose(identity_distances(emb, ref, "euclidean")[0], [0, 1, np.sqrt(2), 2], atol=1e-12)
    rep = identity_scores(emb, ref, embedder="openface")
    s = rep.acd_i["cosine"]["all"]
    assert s.distance == pytest.approx(3.5 / 4)                   # eq. 4.13
    assert s.recognition_rate == pytest.approx(1 / 4) and s.threshold == 0.1   # only d = 0 <= 0.1
    assert rep.acd_i["euclidean"]["all"].recognition_rate == pytest.approx(1 / 4)   # 0 <= 0.55 < 1


def test_acd_continuity_is_cyclic():
    # 1-D embeddings e_t = t (t = 0..31): consecutive Euclidean distance 1 for 31 pairs, and the
    # wrap-around pair (31 -> 0) has distance 31: ACD-C = (31 + 31) / 32 (eq. 4.15, 32 pairs).
    emb = np.arange(32, dtype=float)[None, :, None]
    d = continuity_distances(emb, "euclidean")
    assert d.shape == (1, 32) and d[0, 31] == 31 and (d[0, :31] == 1).all()
    rep = identity_scores(emb, np.zeros((1, 1)), metrics=("euclidean",), embedder="dlib")
    assert rep.acd_c["euclidean"]["all"].distance == pytest.approx(62 / 32)
    assert rep.acd_c["euclidean"]["all"].recognition_rate == pytest.approx(0.0)   # 1 > 0.6 everywhere
    # ACD-I against 0: mean of 0..31 = 15.5; profile is the per-frame distance itself
    assert rep.acd_i["euclidean"]["all"].distance == pytest.approx(15.5)
    assert rep.acd_i["euclidean"]["all"].profile == pytest.approx(list(range(32)))


def test_recognition_rate_threshold_is_inclusive_and_per_emotion():
    # eq. 4.12 counts d <= tau; ArcFace Euclidean tau = 4.15.
    assert recognition_rate([4.15, 4.16, 0.0, 5.0], 4.15) == 0.5
    # two videos x 2 frames, 1-D embeddings, reference 0: distances |e|
    emb = np.array([[[1.0], [5.0]], [[2.0], [3.0]]])
    ref = np.zeros((2, 1))
    rep = identity_scores(emb, ref, emotions=[HAPPY, ANGER], embedder="ArcFace", metrics=("euclidean",))
    g = rep.acd_i["euclidean"]
    assert set(g) == {"all", "happiness", "anger"}
    assert g["happiness"].distance == 3.0 and g["happiness"].recognition_rate == 0.5
    assert g["anger"].distance == 2.5 and g["anger"].recognition_rate == 1.0
    assert g["all"].distance == pytest.approx(11 / 4) and g["all"].recognition_rate == 0.75
    assert g["all"].profile == pytest.approx([1.5, 4.0])
    json.dumps(rep.to_dict())


def test_thesis_thresholds_and_dlib_has_no_cosine_rate():
    assert THRESHOLDS["vgg-face"] == {"cosine": 0.4, "euclidean": 0.6}
    assert THRESHOLDS["openface"] == {"cosine": 0.1, "euclidean": 0.55}
    assert THRESHOLDS["arcface"] == {"cosine": 0.1, "euclidean": 4.15}
    rep = identity_scores(np.ones((1, 3, 4)), np.ones((1, 4)), embedder="dlib")
    assert rep.acd_i["cosine"]["all"].recognition_rate is None
    assert rep.acd_i["euclidean"]["all"].recognition_rate == 1.0


def test_identity_input_errors():
    with pytest.raises(MetricInputError):
        identity_distances(np.zeros((2, 3, 4)), np.zeros((2, 5)))
    with pytest.raises(MetricInputError):
        identity_distances(np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(MetricInputError):
        identity_distances(np.full((1, 2, 2), np.nan), np.zeros((1, 2)))
    with pytest.raises(MetricInputError):
        identity_distances(np.ones((1, 2, 2)), np.ones((1, 2)), metric="manhattan")
