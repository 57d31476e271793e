"""Input images for image-to-video models: decoding an upload into one normalized PNG, and data: URLs.

Whatever the client sends (PNG, JPEG or WebP, recognised by content, never by a file
name or a declared type) becomes an 8-bit RGB PNG, upright (EXIF orientation
applied) and opaque (alpha flattened onto white), with no metadata: what the model
is given, what is stored beside the job (inputs/<job_id>.png) and what its SHA-256
in the job file is of. Everything else is refused with an InvalidInput naming the
field: other formats, files Pillow cannot decode whole, animations, images with no
pixels or a side over MAX_SIDE, and decompression bombs. Nothing is ever fetched
from a URL: an image comes in the request body or not at all.

Pillow is the only decoder; it is a dependency of diffusers anyway, and the web
face needs no torch for it.
"""

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass

from PIL import Image, ImageOps

from .errors import InvalidInput

# The largest side an input image may have; the models' largest sizes are far below it.
MAX_SIDE = 4096
MAX_PIXELS = MAX_SIDE * MAX_SIDE
# Pillow refuses (DecompressionBombError) images over twice this many pixels when it reads the
# header, before decoding anything, and warns over it. Its default (about 89 million pixels) is
# far more than any image this service accepts; the explicit cap holds for the whole process.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Only these decoders are tried: a GIF, TIFF or BMP is not an accepted image, whatever it is called.
FORMATS = ("PNG", "JPEG", "WEBP")
MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
# The flattened colour behind transparent pixels: transparent areas (logos, cut-out products,
# stickers) are drawn to be seen on a light page, as a browser shows them; the colour a plain
# conversion would expose is whatever the transparent pixels happen to store, often black.
BACKGROUND = (255, 255, 255)
_SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_ASCII_SPACE = re.compile(rb"[ \t\r\n\f]+")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The first bytes of each accepted format, to tell "broken" from "another format" when Pillow gives up.
_SIGNATURES = {
    "PNG": lambda data: data.startswith(_PNG_SIGNATURE),
    "JPEG": lambda data: data.startswith(b"\xff\xd8\xff"),
    "WebP": lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP",
}


@dataclass(frozen=True)
class InputImage:
    """A decoded input image: `png` is the normalized RGB PNG; `sha256` its digest (hex);
    `source_format` the upload's format (PNG, JPEG or WEBP); `source_bytes` the upload's size in bytes."""

    png: bytes
    width: int
    height: int
    sha256: str
    source_format: str
    source_bytes: int

    def __repr__(self):
        return (f"InputImage({self.width}x{self.height}, {len(self.png)} bytes PNG, sha256={self.sha256[:12]}..., "
                f"from {self.source_bytes} bytes {self.source_format})")

    @property
    def aspect_ratio(self):
        """Width over height, for choosing an output size."""
        return self.width / self.height

    def record(self, file_name):
        """The job file's `image` field for this image stored under `file_name` (docs/job-file.md)."""
        return {"file": file_name, "width": self.width, "height": self.height, "sha256": self.sha256,
                "bytes": len(self.png)}


def decode_image(data, field="image"):
    """Decode the bytes of an uploaded image into an InputImage; raise InvalidInput naming `field` if unusable."""
    if not data:
        raise InvalidInput(field, "The file is empty; send a PNG, JPEG or WebP image")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.UnidentifiedImageError:
        raise InvalidInput(field, _unidentified_words(data)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # The warning arrives as an exception only where warnings are errors; elsewhere the checks below refuse.
        raise InvalidInput(field, _too_large_words()) from None
    except Exception as exc:  # noqa: BLE001 - a header Pillow chokes on is a bad upload, never a 500
        raise InvalidInput(field, f"Not a decodable image ({_reason(exc)})") from None
    with image:
        source_format = "JPEG" if image.format == "MPO" else image.format
        _check_size(image, field)
        # MPO (a JPEG with extra views, as some cameras write) is a still photo: its first view is used.
        if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
            raise InvalidInput(field, f"An animated image ({image.n_frames} frames); send a still image")
        try:
            image.load()
            rgb = _normalized(image)
        except InvalidInput:
            raise
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt data: the upload's fault
            raise InvalidInput(field, f"Not a decodable image ({_reason(exc)})") from None
    _check_size(rgb, field)  # again: EXIF rotation swaps the sides
    buffer = io.BytesIO()
    rgb.save(buffer, "PNG")
    png = buffer.getvalue()
    return InputImage(png=png, width=rgb.width, height=rgb.height, sha256=hashlib.sha256(png).hexdigest(),
                      source_format=source_format, source_bytes=len(data))


def _unidentified_words(data):
    """Why Pillow recognised no image: another format, or one of ours with a header it refuses."""
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if not width or not height:
            return f"The image has no pixels ({width}x{height} px)"
    for name, matches in _SIGNATURES.items():
        if matches(data):
            return f"Not a decodable image (a {name} file whose header is broken)"
    return "Not a PNG, JPEG or WebP image (other formats are not accepted)"


def _too_large_words():
    return f"The image has too many pixels (at most {MAX_SIDE}x{MAX_SIDE} px are accepted)"


def _check_size(image, field):
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidInput(field, f"The image has no pixels ({width}x{height} px)")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InvalidInput(field, f"The image is {width}x{height} px; at most {MAX_SIDE} px on each side are accepted")
    if width * height > MAX_PIXELS:
        raise InvalidInput(field, _too_large_words())


def _normalized(image):
    """The image upright, opaque and in 8-bit RGB."""
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - broken EXIF: shown as stored, as browsers do, rather than refused
        pass
    if image.mode in _SIXTEEN_BIT:
        # A plain conversion clips 16-bit grey at 255 (nearly everything turns white): scale it down instead.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _reason(exc):
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def parse_data_url(text, field="image"):
    """The bytes of a `data:image/png;base64,...` URL (png, jpeg or webp); raise InvalidInput naming `field`.

    Only base64 data: URLs are taken; an http(s) URL or any other text is refused,
    since the service fetches nothing from a URL. Line breaks and spaces in the
    base64 text are allowed (some encoders wrap it). The media type is checked as
    given, but the content decides what the image is (decode_image).
    """
    if not isinstance(text, str):
        raise InvalidInput(field, "Must be a data: URL string (data:image/png;base64,...)")
    head = text[:16].lstrip().lower()
    if head.startswith(("http://", "https://")):
        raise InvalidInput(field, "Must be a data: URL (data:image/png;base64,...), not a web address; "
                                  "nothing is fetched from a URL")
    if not head.startswith("data:"):
        raise InvalidInput(field, "Must be a data: URL (data:image/png;base64,...); nothing is fetched from a URL")
    header, comma, payload = text.lstrip()[5:].partition(",")
    if not comma:
        raise InvalidInput(field, "The data: URL has no comma before its data")
    parameters = [part.strip().lower() for part in header.split(";")]
    media_type = parameters[0]
    if media_type not in MEDIA_TYPES:
        shown = media_type[:40] or "none"
        raise InvalidInput(field, f"The data: URL's media type is {shown!r}; "
                                  f"use one of {', '.join(sorted(MEDIA_TYPES))}")
    if parameters[-1] != "base64" or len(parameters) < 2:
        raise InvalidInput(field, "The data: URL must be base64-encoded (data:image/png;base64,...)")
    try:
        return base64.b64decode(_ASCII_SPACE.sub(b"", payload.encode("ascii")), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidInput(field, "The data: URL's data is not valid base64") from None
