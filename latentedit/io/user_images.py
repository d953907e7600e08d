"""Images a user brings (``latentedit edit``): read any file PIL reads, refuse the rest naming the file, and bring
digits images to the canvas the DLSGAN encoder takes.

Faces images are cropped by :mod:`latentedit.faces.align` (FFHQ alignment or a centre crop).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

MIN_SIDE = 8  # pixels: a smaller image cannot hold a digit (the source glyphs are 8×8) nor a face detail


class ImageInputError(ValueError):
    """An input image cannot be used: missing, unreadable, not an image, or of a size the encoder cannot take. The
    message names the file."""


def read_image(path: str | os.PathLike, min_side: int = MIN_SIDE) -> Image.Image:
    """The image at ``path``, decoded (first frame), in mode ``RGB`` or ``L``; transparency is composited on black.

    Raises
    ------
    ImageInputError
        Naming the file: it does not exist, is not a regular file, cannot be decoded as an image, is truncated,
        too large to decode safely, or smaller than ``min_side`` pixels on a side.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageInputError(f"{path}: {'not a regular file' if path.exists() else 'file does not exist'}")
    try:
        with Image.open(path) as im:
            im.load()
            image = im.copy()
    except Image.DecompressionBombError as e:
        raise ImageInputError(f"{path}: too large to decode safely: {e}") from None
    except Image.UnidentifiedImageError:
        raise ImageInputError(f"{path}: not an image file PIL can read") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated data, permission denied, broken headers
        raise ImageInputError(f"{path}: cannot read the image: {e}") from None
    w, h = image.size
    if min(w, h) < min_side:
        raise ImageInputError(f"{path}: {w}×{h} pixels is smaller than the {min_side} px on a side the encoder "
                              "can take")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    return image


def digits_canvas(image: Image.Image, canvas: int, channels: int = 1) -> tuple[np.ndarray, list[str]]:
    """A user's image as the digits world draws it: light digits on a black square canvas, uint8
    (channels, canvas, canvas).

    Grayscale (an RGB image is converted); a mostly light image (median above mid-grey, e.g. ink on paper) is
    inverted; a non-square image is padded with black to a square; then resized to ``canvas`` (Lanczos).

    Returns
    -------
    image : ndarray, uint8 (channels, canvas, canvas)
    notes : list of str
        What was done beyond resizing (``inverted``, ``padded to square``), to tell the user.
    """
    notes = []
    gray = image.convert("L")
    if np.median(np.asarray(gray)) > 127:
        gray = Image.eval(gray, lambda v: 255 - v)
        notes.append("inverted (light background)")
    w, h = gray.size
    if w != h:
        side = max(w, h)
        square = Image.new("L", (side, side), 0)
        square.paste(gray, ((side - w) // 2, (side - h) // 2))
        gray = square
        notes.append(f"padded from {w}×{h} to a square")
    arr = np.asarray(gray.resize((canvas, canvas), Image.Resampling.LANCZOS), dtype=np.uint8)
    return np.repeat(arr[None], channels, axis=0), notes
