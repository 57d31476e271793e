"""The body of POST /api/generate in either of its shapes: JSON, or multipart/form-data with an image file.

JSON bodies carry an image (for image-to-video models) as a base64 `data:` URL in
their `image` key; multipart bodies as an `image` file part, with every other field
a form field. Both come out the same: the fields for the request schema, the
image's bytes (still undecoded: hunyuan_core.images.decode_image judges them) and
where they came from. Form fields are text; `form_values` turns those of number
fields into numbers, because the request schema's Integer and Float fields are
strict (a JSON string "256" must stay an error) and refuse text.

Every refusal is an InvalidInput naming the field (422), as schema errors are.
"""

import re
from dataclasses import dataclass

import marshmallow as ma
from webargs.core import missing

from hunyuan_core.errors import InvalidInput
from hunyuan_core.images import parse_data_url

from .api import RequestParser
from .body_limits import UPLOAD_MIMETYPE

IMAGE_FIELD = "image"
FROM_FILE_PART = "multipart file part"
FROM_DATA_URL = "JSON data: URL"
_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")
_DECIMAL = re.compile(r"[+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][+-]?[0-9]{1,4})?")


@dataclass(frozen=True)
class GenerateBody:
    """A POST /api/generate body: `fields` for the request schema (without `image`), `image` the image's
    bytes or None, and `source` where they came from (FROM_FILE_PART, FROM_DATA_URL, or None)."""

    fields: dict
    image: bytes | None
    source: str | None

    def __iter__(self):
        return iter((self.fields, self.image, self.source))


def generate_body(flask_request, schema=None, image_field=IMAGE_FIELD):
    """Read the body of POST /api/generate into a GenerateBody; raise InvalidInput (422) for a bad one.

    `image_field` names the image's field (POST /v1/videos calls it `input_reference`).
    multipart/form-data: one `image` file part, every other field a form field
    (converted by `form_values` for `schema` when one is given). Anything else is
    read as JSON (a malformed body is the same 400 as everywhere); its `image`,
    if present and not null, must be a data: URL. A non-object JSON body is handed
    back as is, for the schema to refuse.
    """
    if flask_request.mimetype == UPLOAD_MIMETYPE:
        return _multipart(flask_request, schema, image_field)
    data = RequestParser().load_json(flask_request, schema)
    if data is missing:
        data = {}
    if not isinstance(data, dict) or data.get(image_field) is None:
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if key != image_field}
        return GenerateBody(data, None, None)
    fields = {key: value for key, value in data.items() if key != image_field}
    return GenerateBody(fields, parse_data_url(data[image_field], image_field), FROM_DATA_URL)


def _multipart(flask_request, schema, image_field):
    # A browser sends an empty, nameless part for a file input left empty: that is no image.
    parts = [part for part in flask_request.files.getlist(image_field) if part.filename or _has_data(part)]
    if len(parts) > 1:
        raise InvalidInput(image_field, f"{len(parts)} images given; send one image file part")
    if image_field in flask_request.form:
        if parts:
            raise InvalidInput(image_field, "Given both as a file part and as a form field; send it once, as a file")
        raise InvalidInput(image_field, "Must be a file part (an image file) in a multipart body, not a text field")
    for name in flask_request.files:
        if name != image_field:
            raise InvalidInput(name, f"Must be a form field, not a file part; only {image_field} is a file")
    fields = {}
    for name in flask_request.form:
        values = flask_request.form.getlist(name)
        if len(values) > 1:
            raise InvalidInput(name, f"Given {len(values)} times; send each field once")
        fields[name] = values[0]
    if schema is not None:
        fields = form_values(fields, schema)
    if not parts:
        return GenerateBody(fields, None, None)
    return GenerateBody(fields, parts[0].read(), FROM_FILE_PART)


def _has_data(part):
    """Whether a file part holds any bytes (read without moving its position)."""
    stream = part.stream
    position = stream.tell()
    found = bool(stream.read(1))
    stream.seek(position)
    return found


def form_values(fields, schema):
    """The form fields `fields` (text) as JSON would carry them, for `schema` (a marshmallow Schema or class).

    Text that spells a number becomes that number for the schema's Integer and
    Float fields; other text is left for the schema to refuse with its own words
    ("Not a valid integer."). An empty form field is left out, as browsers send one
    for every input left empty, except for text fields, where "" is a value.
    """
    schema_fields = (schema() if isinstance(schema, type) else schema).fields
    values = {}
    for name, text in fields.items():
        field = schema_fields.get(name)
        if text == "" and not _is_plain_text(field):
            continue
        if isinstance(field, ma.fields.Integer):
            values[name] = int(text) if _INTEGER.fullmatch(text.strip()) else text
        elif isinstance(field, ma.fields.Number) and _DECIMAL.fullmatch(text.strip()):
            values[name] = float(text)
        else:
            values[name] = text
    return values


def _is_plain_text(field):
    # Url and Email are Strings too, but "" is no address: an empty one means none was given.
    return isinstance(field, ma.fields.String) and not isinstance(field, (ma.fields.Url, ma.fields.Email))
