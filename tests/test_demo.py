"""The demo end to end on a small synthetic set: training baseline, onlyDM and LFDM briefly and rendering."""

import pytest

from fv.data.synth import make_synthetic
from fv.demo import run_demo
from fv.engine.checkpoint import read_checkpoint
from fv.engine.labels import EMOTIONS


@pytest.mark.slow
def test_demo_trains_and_renders(tmp_path):
    make_synthetic(tmp_path / "data" / "synth", n_identities=4, n_test_identities=2, takes=1, workers=1,
                   progress=False)
    logs = []
    result = run_demo(tmp_path, baseline_steps=2, dm_steps=2, n_faces=1, sample_steps=2, progress=False,
                      log=logs.append, lfdm_steps=2)
    assert read_checkpoint(result["checkpoints"]["baseline"]).step == 2
    assert read_checkpoint(result["checkpoints"]["onlyDM"]).config.setting == "onlyDM"
    assert read_checkpoint(result["checkpoints"]["LFDM"]).step == 2
    for setting in ("baseline", "onlyDM", "LFDM"):
        assert (tmp_path / f"{setting}_strip.png").stat().st_size > 0
        mp4s = sorted((tmp_path / "videos" / setting).glob("*.mp4"))
        gifs = sorted((tmp_path / "videos" / setting).glob("*.gif"))
        assert len(mp4s) == len(gifs) == len(EMOTIONS)
    assert any("4/4" in m for m in logs)
    # the shipped real portrait, every emotion: the face at its own resolution and pasted into the whole photo
    import imageio.v3 as iio
    from PIL import Image

    from fv.demo import PORTRAIT
    for folder in ("portrait", "portrait_LFDM"):                  # onlyDM's transfer, LFDM's own flows
        faces = sorted((tmp_path / folder).glob("*_face.mp4"))
        photos = sorted((tmp_path / folder).glob("*_photo.mp4"))
        assert len(faces) == len(photos) == len(EMOTIONS)
        width, height = Image.open(PORTRAIT).size
        assert iio.imread(photos[0]).shape[1:3] == (height, width)
        assert iio.imread(faces[0]).shape[1] > 64                 # larger than the model's 64 px frames
        assert (tmp_path / f"{folder}_strip.png").stat().st_size > 0
