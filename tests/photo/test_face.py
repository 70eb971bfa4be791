"""A photo's face (fv.photo.face.load_face): the photo is decoded once, and both crops are what the aligner makes
of the file; messages still name the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import fv.photo.aligner as aligner_module
import fv.photo.image as image_module
from fv.photo.errors import NoFaceError
from fv.photo.face import load_face


@pytest.fixture
def reads(monkeypatch):
    """How often a photo file is decoded (fv.photo.image.read_image, wherever it is called from)."""
    count = []
    real = image_module.read_image

    def read(path):
        count.append(path)
        return real(path)
    monkeypatch.setattr(image_module, "read_image", read)
    monkeypatch.setattr(aligner_module, "read_image", read)
    return count


def test_the_photo_is_decoded_once_and_the_crops_are_the_aligner_s(frames, aligner, tmp_path, reads):
    path = tmp_path / "woman.png"
    Image.fromarray(frames[0]).save(path)
    face = load_face(path, 64)
    assert len(reads) == 1
    small, al = aligner.face_crops(path, 64)                  # what the aligner makes of the file itself
    np.testing.assert_array_equal(face.crop, small)
    np.testing.assert_array_equal(face.hires, al.image)
    np.testing.assert_array_equal(face.photo, frames[0])
    np.testing.assert_array_equal(face.aligned.landmarks, al.landmarks)


def test_no_face_names_the_file(tmp_path, reads):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(blank)
    with pytest.raises(NoFaceError, match="no face found in .*blank.png"):
        load_face(blank, 64)
    assert len(reads) == 1
