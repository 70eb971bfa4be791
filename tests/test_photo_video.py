"""fv.photo_video: the modes, the stand-in face's eye geometry, and what a checkpoint was trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fv.engine.config import default_config
from fv.photo.geometry import face_targets, warp_affine
from fv.photo_video import (DEFAULT_MODE, MODES, RenderModeError, modes_help, parse_mode, standin, standin_version,
                            template_mouth, trained_on_synthetic)


def test_modes_parse_and_explain_themselves():
    assert parse_mode(" Transfer ") == "transfer" and DEFAULT_MODE in MODES
    assert set(MODES) == {"transfer", "transfer-self", "pixels", "flow", "flow-standin"}
    assert all(m in modes_help() for m in MODES) and f"Default: {DEFAULT_MODE}" in modes_help()
    with pytest.raises(RenderModeError, match="unknown mode 'warp'; choose one of: transfer, transfer-self, pixels, flow, flow-standin"):
        parse_mode("warp")


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


def test_template_mouth_is_below_the_eyes():
    m = template_mouth(128)
    ys, xs = np.nonzero(m)
    assert ys.min() > face_targets(128)[0, 1] + 20 and abs(xs.mean() - 63.5) < 1


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
