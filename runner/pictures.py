"""A real picture of any shape (gradients and a square), for image-to-video probes, checks and tests.

Image-to-video models need a first frame wherever a job is made without a user:
calibration probes, bench/gpu_check.py, bench/eta_accuracy.py and the tests. Noise
would do for timing, but a picture with structure lets a person looking at the
output see that the image went in.
"""

import io

import numpy as np
from PIL import Image


def picture(width, height):
    """An RGB PIL image of `width` x `height`: two gradients and a yellow square."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    pixels = np.stack([x, y, 255 - x], axis=-1)
    pixels[height // 4: height // 2, width // 4: width // 2] = (250, 220, 30)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def picture_png(width, height):
    """`picture(width, height)` as PNG file bytes, as a client would upload it."""
    out = io.BytesIO()
    picture(width, height).save(out, format="PNG")
    return out.getvalue()
