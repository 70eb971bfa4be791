"""The errors of a real photo's way in and out (fv.photo): one root, FaceError, that the CLI reports as one line."""

from __future__ import annotations


class FaceError(ValueError):
    """A photo or clip the face pipeline cannot use."""


class NoFaceError(FaceError):
    pass


class ImageReadError(FaceError):
    pass


class FaceModelError(FaceError):
    """The dlib model file is missing."""


class PhotoWarning(UserWarning):
    """Something about the photo worth one line before rendering it (the CLI prints each as one line)."""


class MultipleFacesWarning(PhotoWarning):
    pass


class MouthCoveredWarning(PhotoWarning):
    """Something covers the mouth (fv.photo.aligner.FaceAligner.mouth_covered): the modes leave it as it is."""
