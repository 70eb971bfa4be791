"""Reading a photo: any JPEG/PNG/... file -> uint8 RGB [H, W, 3], EXIF-rotated, alpha composited on white, a huge
photo shrunk while it is decoded (fv render, MUG's frame folders, fv.data.video_io's images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fv.photo.errors import FaceError, ImageReadError

PHOTO_PIXELS = 2 ** 26       # larger photos (> 67 MP) are read shrunk by a whole factor k to at most this
MAX_PHOTO_PIXELS = 10 ** 9   # larger ones (> 1 gigapixel) are refused from their header, before decoding


def read_image(path: str | Path) -> np.ndarray:
    """Any JPEG/PNG/... photo -> uint8 RGB [H, W, 3] (EXIF-rotated; alpha composited on white). A photo of
    more than PHOTO_PIXELS is read shrunk by the smallest whole factor k that fits (a JPEG is decoded at
    1/2, 1/4 or 1/8 scale directly, other formats are decoded and box-averaged, Image.reduce); one of more
    than MAX_PHOTO_PIXELS is refused. PIL's own decompression-bomb limit is lifted for this bounded size."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"cannot read image {path}: no such file")
    bomb_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None             # Image.open reads the header only; the size is checked here
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PHOTO_PIXELS:
                raise ImageReadError(f"cannot read image {path}: {w}x{h} px ({w * h / 1e6:.0f} megapixels) is "
                                     f"more than fv reads ({MAX_PHOTO_PIXELS / 1e6:.0f}); shrink it first")
            k = int(np.ceil(np.sqrt(w * h / PHOTO_PIXELS)))
            if k > 1:
                im.draft(None, (-(-w // k), -(-h // k)))   # JPEG: decode at 1/2..1/8 scale; others: no-op
            im.load()
            return _pil_to_rgb(ImageOps.exif_transpose(_shrink(im)))
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"cannot read image {path}: not an image file or damaged ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_limit


def _shrink(im: Image.Image) -> Image.Image:
    """`im` box-averaged by the smallest whole factor that brings it to PHOTO_PIXELS (its EXIF kept)."""
    k = int(np.ceil(np.sqrt(im.size[0] * im.size[1] / PHOTO_PIXELS)))
    if k <= 1:
        return im
    if im.mode in ("P", "1"):                      # palette indices and bits do not average
        im = im.convert("RGBA" if im.mode == "P" else "L")
    small = im.reduce(k)
    small.info = dict(im.info)
    return small


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im).astype(np.float64)
        hi = 1.0 if im.mode == "F" and a.max() <= 1.0 else (255.0 if a.max() <= 255 else 65535.0)
        grey = np.clip(np.round(a * (255.0 / hi)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        return composite_on_white(np.asarray(im.convert("RGBA")))
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 4] -> uint8 [H, W, 3]: c = alpha * rgb + (1 - alpha) * 255."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Check and normalise an in-memory image to uint8 [H, W, 3] (grey and RGBA accepted)."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise FaceError(f"expected a uint8 RGB image [H, W, 3], got {a.dtype} {a.shape}")
    if a.ndim == 2 or a.shape[2] == 1:
        a = np.repeat(a.reshape(a.shape[0], a.shape[1], 1), 3, axis=2)
    elif a.shape[2] == 4:
        a = composite_on_white(a)
    return np.ascontiguousarray(a)
