"""An image file for POST /api/generate, as a multipart/form-data body (standard library only).

Image-to-video models take their first frame as an `image` file part, every other
field a form field (the server reads them as it reads JSON's). The part's content
type is read from the file's first bytes, not its name: `cat.png` that holds a JPEG
is sent as image/jpeg, and a file that is no PNG, JPEG or WebP goes as
application/octet-stream for the server to refuse in its own words (422 naming
`image`), so what it accepts is decided in one place.
"""

import os
import secrets

OCTET_STREAM = "application/octet-stream"
# Quoted header values (the form field's name, the file's name) escape these as browsers do (WHATWG).
_HEADER_ESCAPES = {'"': "%22", "\r": "%0D", "\n": "%0A"}


class ImageFileError(Exception):
    """The image file cannot be used: missing, a folder, or unreadable. The message names it."""


def content_type_of(data):
    """The image type of `data` by its magic bytes: image/png, image/jpeg, image/webp, or application/octet-stream."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return OCTET_STREAM


def read_image(path):
    """The file at `path` as `(file name, bytes, content type)`; raise ImageFileError saying why it cannot be read."""
    if os.path.isdir(path):
        raise ImageFileError(f"--image {path}: is a folder, not an image file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ImageFileError(f"--image {path}: no such file") from None
    except OSError as error:
        raise ImageFileError(f"--image {path}: cannot be read ({error.strerror or error})") from None
    return os.path.basename(path) or "image", data, content_type_of(data)


def _quoted(text):
    return "".join(_HEADER_ESCAPES.get(char, char) for char in text)


def _ascii_name(name):
    # The name is only a label for the server; header bytes outside ASCII are read differently by each parser.
    cleaned = "".join(char if " " <= char <= "~" else "_" for char in name)
    return cleaned.strip() or "image"


def multipart_body(fields, file_field, file_name, data, content_type):
    """`(body, Content-Type header)` of a multipart/form-data request.

    `fields` maps form field names to values (sent as text, UTF-8); the file goes
    last as the part `file_field`. The boundary is random and checked against every
    part, so no file can end the body early.
    """
    parts = [(name, str(value).encode()) for name, value in fields.items()]
    while True:
        boundary = "hunyuan-video-" + secrets.token_hex(16)
        marker = boundary.encode()
        if marker not in data and not any(marker in value for _name, value in parts):
            break
    chunks = []
    for name, value in parts:
        chunks += [f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'.encode(),
                   value, b"\r\n"]
    chunks += [
        (f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(file_field)}"; '
         f'filename="{_quoted(_ascii_name(file_name))}"\r\nContent-Type: {content_type}\r\n\r\n').encode(),
        data, f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
