"""The AU readout (fv.photo.au_readout) against numpy's least squares and the AU intensities a clip was rendered
with; its files fail with one line; `python -m fv.photo.au_readout DATA OUT` fits one."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fv.data.synth import synthetic_identity
from fv.data.synth_face import AUS, render_clip
from fv.photo.au_readout import AUReadoutError, features, fit, load, read
from tests.photo.test_standin_motion import prototype


def test_ridge_readout_is_the_least_squares_solution():
    rng = np.random.default_rng(2)
    clips = rng.integers(0, 256, (5, 4, 16, 16, 3), dtype=np.uint8)
    aus = rng.uniform(0, 1, (5, 4, 3))
    r = fit(clips, aus, ["A", "B", "C"], 2, lam=0.5)
    X = np.concatenate([features(c) for c in clips]).astype(np.float64)
    Y = aus.reshape(-1, 3)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    A = np.concatenate([Xc, np.sqrt(0.5) * np.eye(X.shape[1])])
    W = np.linalg.lstsq(A, np.concatenate([Yc, np.zeros((X.shape[1], 3))]), rcond=None)[0]
    np.testing.assert_allclose(r.weight, W, atol=2e-4)
    np.testing.assert_allclose(r.bias, Y.mean(0), atol=1e-6)
    with pytest.raises(AUReadoutError, match="do not match"):
        fit(clips, aus[:4], ["A", "B", "C"], 2)


def test_shipped_readout_reads_held_out_faces_action_units():
    """Clips of two test identities (48, 50: never in the readout's train split) rendered with known AU ramps
    for four emotions: the shipped readout reads them back."""
    r = load()
    assert r.aus == tuple(AUS) and r.version == 2
    truth, got = [], []
    for i in (48, 50):
        idt = synthetic_identity(0, i)
        for emotion in ("happiness", "surprise", "sadness", "anger"):
            traj = np.stack([prototype(emotion, s) for s in (0, 0.3, 0.6, 1.0)])
            got.append(read(r, render_clip(idt, traj, 64, version=2)))
            truth.append(traj)
    truth, got = np.concatenate(truth), np.concatenate(got)
    assert np.abs(got - truth).mean() < 0.08, np.abs(got - truth).mean()
    active = truth > 0.25
    assert np.corrcoef(got[active], truth[active])[0, 1] > 0.8


def test_readout_files_fail_with_one_line(tmp_path):
    with pytest.raises(AUReadoutError, match="no AU readout there"):
        load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 40)
    with pytest.raises(AUReadoutError, match="not a readable AU readout"):
        load(bad)


def test_the_module_fits_a_readout_on_a_synthetic_set(tmp_path):
    """The shipped readout's provenance command, on a tiny version-2 set (2 train identities x 6 emotions)."""
    from fv.data.synth import make_synthetic
    data = make_synthetic(tmp_path / "synth", n_identities=3, n_test_identities=1, takes=1, workers=1,
                          progress=False)
    out = tmp_path / "readout.safetensors"
    r = subprocess.run([sys.executable, "-m", "fv.photo.au_readout", str(data), str(out)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and f"wrote {out}" in r.stdout, r.stdout + r.stderr
    got = load(out)
    assert got.aus == tuple(AUS) and got.version == 2 and got.weight.shape == (32 * 32 * 3, len(AUS))
