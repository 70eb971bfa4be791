"""The synthetic stand-in (fv.photo.standin): its eyes on the template, drawn as the checkpoint's training faces
were, cached once per size and version; and what a checkpoint was trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fv.engine.config import default_config
from fv.photo.geometry import face_targets, warp_affine
from fv.photo.standin import standin, standin_version, trained_on_synthetic


@pytest.mark.parametrize("size, version", [(64, 1), (16, 1), (64, 2), (16, 2)])
def test_stand_in_eyes_land_on_the_template(size, version):
    """Mapped by its matrix, the stand-in's pupils (the darkest spots) sit on the template's eye centres."""
    face, m = standin(size, version)
    aligned = warp_affine(face, m, size, size).astype(float).sum(-1)
    for x, y in face_targets(size):
        r = max(2, size // 16)
        y0, x0 = int(round(y)) - r, int(round(x)) - r
        win = aligned[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1]
        dy, dx = np.unravel_index(win.argmin(), win.shape)
        assert abs(x0 + dx - x) <= 1.0 + size / 64 and abs(y0 + dy - y) <= 1.0 + size / 64, (size, x, y, dx, dy)


def test_trained_on_synthetic_reads_the_data_folder(tmp_path):
    cfg = default_config("baseline", "demo")
    assert not trained_on_synthetic(cfg.replace(data=""))
    synth, mug = tmp_path / "a", tmp_path / "synth_named_but_mug"
    for d, name in ((synth, "synthetic"), (mug, "mug")):
        d.mkdir()
        (d / "meta.json").write_text(json.dumps({"name": name}))
    assert trained_on_synthetic(cfg.replace(data=str(synth)))
    assert not trained_on_synthetic(cfg.replace(data=str(mug)))           # meta.json wins over the name
    assert trained_on_synthetic(cfg.replace(data="/elsewhere/data/synth"))  # not here: the folder's name
    assert not trained_on_synthetic(cfg.replace(data="/elsewhere/data/mug"))


def test_stand_in_is_drawn_as_the_checkpoints_training_faces():
    from fv.engine.config import RunConfig
    cfg = default_config("onlyDM")
    assert standin_version(cfg.replace(data="/x/synth", synth_version=2)) == 2
    # a synthetic-trained checkpoint saved before the version was recorded learned version 1
    old = cfg.to_dict()
    del old["synth_version"]
    old["data"] = "data/synth"
    assert RunConfig.from_dict(old).synth_version == 0 and standin_version(RunConfig.from_dict(old)) == 1
    assert standin_version(cfg.replace(data="/x/mug")) is None            # real faces: fv's default stand-in
    assert RunConfig.from_dict(cfg.replace(synth_version=2).to_dict()).synth_version == 2


def test_the_stand_in_is_built_once_per_size_and_version(monkeypatch):
    """A render asks for the stand-in's face, matrix and landmarks several times (at the model's size and the face's):
    the generator builds the identity once, draws the face and maps its eyes once per (size, version), and None and
    the default version are one key; callers get copies, so writing into one leaves the cache as it was."""
    from collections import Counter

    import fv.data.synth as synth
    import fv.data.synth_face as synth_face
    from fv.photo import standin as st
    from fv.photo.standin import standin_landmarks, standin_matrix
    for cached in (st.standin_identity, st._drawn, st._matrix, st._landmarks):
        cached.cache_clear()
    calls = Counter()

    def counting(module, name):
        real = getattr(module, name)

        def call(*a, **k):
            calls[name] += 1
            return real(*a, **k)
        monkeypatch.setattr(module, name, call)
    counting(synth, "synthetic_identity")
    counting(synth_face, "render_frame")
    counting(synth_face, "rest_pixels")
    face, m = standin(32, 2)
    again, m2 = standin(32, None)                      # fv's default version is 2: the same stand-in
    np.testing.assert_array_equal(face, again)
    np.testing.assert_array_equal(standin_matrix(32, 2), m)
    standin_landmarks(32, 2)
    standin_landmarks(32)
    assert calls == {"synthetic_identity": 1, "render_frame": 1, "rest_pixels": 1}, calls
    face[:] = 0
    m2[:] = 0
    assert standin(32, 2)[0].any() and standin_matrix(32).any()
    standin(48, 2)
    assert calls == {"synthetic_identity": 1, "render_frame": 2, "rest_pixels": 2}, calls
