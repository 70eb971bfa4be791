"""Pasting a crop back into its photo (fv.photo.paste), on a frame of the real Pexels video; the template's mouth."""

from __future__ import annotations

import numpy as np

from fv.photo.geometry import face_targets
from fv.photo.paste import paste_back, template_mouth


def test_paste_back_round_trip(aligner, frames):
    rgb = frames[0]
    al = aligner.align(rgb)
    out = paste_back(rgb, al, al.image)
    diff = np.abs(out.astype(int) - rgb).max(-1)
    face = al.photo_landmarks
    fx0, fy0 = face.min(0).astype(int)
    fx1, fy1 = face.max(0).astype(int)
    assert diff[fy0:fy1, fx0:fx1].mean() < 4           # the crop's own pixels go back where they came from
    assert (out[:, :fx0 - 60] == rgb[:, :fx0 - 60]).all()   # far from the face: untouched

    green = np.zeros((64, 64, 3), np.uint8)
    green[..., 1] = 255
    out = paste_back(rgb, al, green)
    nx, ny = face[30].round().astype(int)              # nose tip: fully inside the mask
    assert abs(int(out[ny, nx, 1]) - 255) <= 2 and out[ny, nx, 0] <= 2
    changed = np.abs(out.astype(int) - rgb).sum(-1) > 30
    cy, cx = np.argwhere(changed).mean(0)
    width = face[:, 0].max() - face[:, 0].min()
    assert abs(cx - face[:17, 0].mean()) < 0.1 * width   # the pasted ellipse sits on the face
    assert fy0 - 0.5 * width < cy < fy1


def test_template_mouth_is_below_the_eyes():
    m = template_mouth(128)
    ys, xs = np.nonzero(m)
    assert ys.min() > face_targets(128)[0, 1] + 20 and abs(xs.mean() - 63.5) < 1
