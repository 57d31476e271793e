"""Input images (issue 12 item 4): decoding and refusing real image bytes made with Pillow here, storing
them beside the job, and the two shapes of a POST /api/generate body with their size limits.

No torch and no model: a tiny Flask app carries the real error handler, body limits and
upload helper; the real app shows that a text-only service keeps its small JSON limit.
"""

import base64
import hashlib
import io
import struct
import warnings
import zlib
from datetime import datetime, timedelta, timezone

import marshmallow as ma
import pytest
from flask import Flask, jsonify
from flask import request as flask_request
from PIL import Image

from hunyuan_api import api as api_errors
from hunyuan_api import body_limits, uploads
from hunyuan_api.api import API_SETTINGS, Api
from hunyuan_api.schemas.submission import GenerateRequestSchema
from hunyuan_cli.ops import inventory
from hunyuan_core import config, params
from hunyuan_core.errors import InvalidInput
from hunyuan_core.housekeeping import Housekeeping
from hunyuan_core.images import MAX_SIDE, decode_image, parse_data_url
from hunyuan_core.job_record import new_job, new_job_id
from hunyuan_core.job_schema import JobSchemaError, check_job
from hunyuan_core.job_store import JobStore

from .conftest import make_app

MB = 1024 * 1024


def encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header(width, height):
    """A PNG whose header claims `width`x`height` with almost no pixel data: what a decompression bomb starts as."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + pixels + chunk(b"IEND", b"")


def data_url(data, media_type="image/png"):
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def refusal(data):
    with pytest.raises(InvalidInput) as caught:
        decode_image(data)
    error = caught.value
    assert (error.status_code, error.kind, error.field) == (422, "invalid_input", "image")
    assert error.detail == f"Invalid request: image: {error.message}" and error.detail.endswith(".")
    return error.detail


RED_PNG = encoded(Image.new("RGB", (30, 20), (255, 0, 0)), "PNG")


# -- decoding -------------------------------------------------------------------------------------------------


def test_a_png_becomes_a_normalized_png_with_its_size_and_digest():
    image = decode_image(RED_PNG)
    assert (image.width, image.height, image.source_format, image.source_bytes) == (30, 20, "PNG", len(RED_PNG))
    assert image.sha256 == hashlib.sha256(image.png).hexdigest()
    stored = Image.open(io.BytesIO(image.png))
    assert (stored.format, stored.mode, stored.size, stored.getpixel((5, 5))) == ("PNG", "RGB", (30, 20), (255, 0, 0))
    assert decode_image(RED_PNG).sha256 == image.sha256  # the same image, the same digest


def test_a_jpeg_with_exif_orientation_6_is_turned_upright():
    # Stored 40x20: the left half red, the right half blue. Orientation 6 means "rotate 90 degrees clockwise
    # to display", so upright it is 20x40 with red on top.
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = decode_image(encoded(stored, "JPEG", exif=exif, quality=95))
    assert (image.width, image.height, image.source_format) == (20, 40, "JPEG")
    upright = Image.open(io.BytesIO(image.png))
    top, bottom = upright.getpixel((10, 5)), upright.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
    assert "exif" not in upright.info  # the stored PNG carries no metadata


def test_a_webp_is_accepted_by_its_content_whatever_it_is_declared_as():
    webp = encoded(Image.new("RGB", (16, 24), (0, 255, 0)), "WEBP", lossless=True)
    image = decode_image(parse_data_url(data_url(webp, "image/png")))
    assert (image.width, image.height, image.source_format) == (16, 24, "WEBP")
    assert Image.open(io.BytesIO(image.png)).getpixel((3, 3)) == (0, 255, 0)


def test_alpha_is_flattened_onto_white():
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))  # transparent pixels storing black
    rgba.putpixel((1, 1), (255, 0, 0, 255))
    rgba.putpixel((2, 2), (0, 0, 255, 128))
    flat = Image.open(io.BytesIO(decode_image(encoded(rgba, "PNG")).png))
    assert flat.mode == "RGB"
    assert flat.getpixel((5, 5)) == (255, 255, 255)
    assert flat.getpixel((1, 1)) == (255, 0, 0)
    assert flat.getpixel((2, 2)) in ((127, 127, 255), (126, 126, 255), (128, 128, 255))
    # A palette image with a transparent colour is flattened the same way.
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((0, 0), 1)
    flat = Image.open(io.BytesIO(decode_image(encoded(palette, "PNG", transparency=0)).png))
    assert (flat.getpixel((0, 0)), flat.getpixel((3, 3))) == ((255, 0, 0), (255, 255, 255))


def test_sixteen_bit_grey_is_scaled_not_clipped():
    grey = decode_image(encoded(Image.new("I;16", (4, 4), 32768), "PNG"))
    assert Image.open(io.BytesIO(grey.png)).getpixel((0, 0)) == (128, 128, 128)


def test_a_camera_mpo_is_a_still_jpeg_its_first_view():
    first, second = Image.new("RGB", (8, 6), (255, 0, 0)), Image.new("RGB", (8, 6), (0, 0, 255))
    image = decode_image(encoded(first, "MPO", save_all=True, append_images=[second]))
    assert (image.width, image.height, image.source_format) == (8, 6, "JPEG")
    assert Image.open(io.BytesIO(image.png)).getpixel((4, 3))[0] > 200


def test_other_formats_are_refused_by_content():
    gif = encoded(Image.new("RGB", (5, 5)), "GIF")
    assert "Not a PNG, JPEG or WebP image" in refusal(gif)
    assert "Not a PNG, JPEG or WebP image" in refusal(encoded(Image.new("RGB", (5, 5)), "BMP"))
    assert "Not a PNG, JPEG or WebP image" in refusal(b"%PDF-1.7 not an image at all")


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animations_are_refused(fmt):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue", "green")]
    animated = encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    assert refusal(animated) == "Invalid request: image: An animated image (3 frames); send a still image."


def test_empty_zero_sized_and_truncated_files_are_refused():
    assert refusal(b"") == "Invalid request: image: The file is empty; send a PNG, JPEG or WebP image."
    assert refusal(png_header(0, 10)) == "Invalid request: image: The image has no pixels (0x10 px)."
    assert refusal(png_header(7, 0)) == "Invalid request: image: The image has no pixels (7x0 px)."
    assert refusal(RED_PNG[:30]) == "Invalid request: image: Not a decodable image (a PNG file whose header is broken)."
    truncated = encoded(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    assert refusal(truncated[: len(truncated) // 2]).startswith("Invalid request: image: Not a decodable image (")
    jpeg = encoded(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    assert "Not a decodable image" in refusal(jpeg[: len(jpeg) // 2])


def test_a_side_over_4096_px_is_refused_and_4096_is_not():
    assert MAX_SIDE == 4096
    assert decode_image(encoded(Image.new("L", (4096, 1)), "PNG")).width == 4096
    detail = refusal(encoded(Image.new("L", (4097, 1)), "PNG"))
    assert detail == "Invalid request: image: The image is 4097x1 px; at most 4096 px on each side are accepted."
    assert "1x4097 px" in refusal(encoded(Image.new("L", (1, 4097)), "PNG"))


def test_decompression_bombs_are_refused_from_their_header():
    # 400 million pixels: Pillow's own bomb error, answered as a refusal.
    assert "too many pixels" in refusal(png_header(20000, 20000))
    # 25 million pixels (between the cap and twice it): Pillow only warns; refused all the same,
    # and still a refusal where warnings are errors.
    assert "5000x5000 px" in refusal(png_header(5000, 5000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "too many pixels" in refusal(png_header(5000, 5000))


# -- data: URLs -----------------------------------------------------------------------------------------------


def test_data_urls_give_their_bytes():
    assert parse_data_url(data_url(RED_PNG)) == RED_PNG
    wrapped = "data:image/jpeg;name=a.jpg;base64," + "\n".join(
        base64.b64encode(RED_PNG).decode()[i:i + 76] for i in range(0, 200, 76))
    assert decode_image(parse_data_url(wrapped)).width == 30


@pytest.mark.parametrize("text, words", [
    ("https://example.com/cat.png", "not a web address; nothing is fetched from a URL."),
    ("HTTP://example.com/cat.png", "nothing is fetched from a URL."),
    ("cat.png", "Must be a data: URL (data:image/png;base64,...); nothing is fetched from a URL."),
    ("data:image/png;base64,iVBOR!!!", "The data: URL's data is not valid base64."),
    ("data:image/png;base64,iVBORw0", "The data: URL's data is not valid base64."),
    ("data:image/png;base64,ü", "The data: URL's data is not valid base64."),
    ("data:image/png,rawbytes", "The data: URL must be base64-encoded (data:image/png;base64,...)."),
    ("data:image/gif;base64,R0lG", "The data: URL's media type is 'image/gif'; use one of image/jpeg, image/png, "
                                   "image/webp."),
    ("data:image/png;base64", "The data: URL has no comma before its data."),
    (42, "Must be a data: URL string (data:image/png;base64,...)."),
])
def test_anything_but_a_base64_image_data_url_is_refused(text, words):
    with pytest.raises(InvalidInput) as caught:
        parse_data_url(text, field="picture")
    assert caught.value.field == "picture"
    assert caught.value.detail.startswith("Invalid request: picture: ") and caught.value.detail.endswith(words)


# -- beside the job -------------------------------------------------------------------------------------------


def stored_job(status="completed", **fields):
    job_id = new_job_id()
    job = new_job(job_id, request={"prompt": "a cat"}, params={"prompt": "a cat"}, adjustments=[],
                  model={"name": "tiny", "path": "/nowhere", "demo": True})
    job.update(status=status, **fields)
    return job


def test_the_input_is_stored_beside_the_job_recorded_and_removed_with_it(tmp_path):
    store = JobStore(tmp_path / "data")
    assert store.inputs_dir.is_dir()
    job = stored_job()
    image = decode_image(RED_PNG)
    job["image"] = store.save_input(job["job_id"], image)
    store.create(job)
    path = store.input_path(job["job_id"])
    assert path == tmp_path / "data" / "inputs" / f"{job['job_id']}.png"
    assert path.read_bytes() == image.png and oct(path.stat().st_mode & 0o777) == "0o644"
    assert store.get(job["job_id"])["image"] == {"file": f"{job['job_id']}.png", "width": 30, "height": 20,
                                                 "sha256": image.sha256, "bytes": len(image.png)}
    assert not [p for p in store.inputs_dir.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert inventory.job_bytes(store, job["job_id"]) >= len(image.png)
    assert inventory.disk_usage(store.root)["folders"]["inputs"] == len(image.png)
    store.delete(job["job_id"])
    assert not path.exists()
    # An input whose submission failed goes without a job.
    other = new_job_id()
    store.save_input(other, image)
    store.discard_input(other)
    assert not store.input_path(other).exists()


def test_the_image_field_is_checked_like_every_field():
    job = stored_job()
    for image in (None, {"file": "x.png", "width": 1, "height": 1, "sha256": "a" * 64, "bytes": 9}):
        assert check_job(dict(job, image=image), job["job_id"])
    for image, words in (("x.png", "image must be an object or null"),
                         ({"file": "x.png", "width": 1, "height": 1, "sha256": "A" * 64}, "image.sha256"),
                         ({"file": "x.png", "width": 0, "height": 1, "sha256": "a" * 64}, "image.width"),
                         ({"file": "x.png"}, "image lacks width, height, sha256")):
        with pytest.raises(JobSchemaError, match=words.replace(".", r"\.")):
            check_job(dict(job, image=image), job["job_id"])


def test_retention_and_prune_remove_the_input(tmp_path):
    store = JobStore(tmp_path / "data")
    past = (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat(timespec="milliseconds")
    expired, pruned = stored_job(finished_at=past, expires_at=past), stored_job(finished_at=past)
    for job in (expired, pruned):
        job["image"] = store.save_input(job["job_id"], decode_image(RED_PNG))
        store.create(job)
    assert Housekeeping(store, video_ttl=60).run() == [expired["job_id"]]
    assert not store.input_path(expired["job_id"]).exists() and store.input_path(pruned["job_id"]).exists()
    chosen, _ = inventory.prune_candidates(store, 3600, {"completed"})
    assert inventory.prune(store, chosen) == [pruned["job_id"]]
    assert list(store.inputs_dir.iterdir()) == []


# -- the body of POST /api/generate ---------------------------------------------------------------------------


def tiny_app(accepts_images=True, **environ):
    """The real error handler, body limits and upload helper around a route that reports what it was given."""
    app = Flask(__name__)
    app.config.update(API_SETTINGS)
    app.config.update(config.from_environ({"MAX_UPLOAD_MB": "1", **environ}))
    app.config.update(PARAMETERS=params.parameter_table(app.config), ACCEPTS_IMAGES=accepts_images, TESTING=True)
    api = Api(app)
    api_errors.install(app, api)
    body_limits.install(app, api)

    @app.post("/api/generate")
    def generate():
        fields, data, source = uploads.generate_body(flask_request, GenerateRequestSchema)
        try:
            loaded = GenerateRequestSchema().load(fields)
        except ma.ValidationError as error:
            return jsonify(fields=fields, errors=error.messages), 422
        image = decode_image(data) if data is not None else None
        return jsonify(request=loaded, source=source, size=image and [image.width, image.height])

    @app.post("/api/other")
    def other():
        return jsonify(length=len(flask_request.get_data()))

    return app


def noise_png(side):
    return encoded(Image.effect_noise((side, side), 100).convert("RGB"), "PNG")


def test_a_multipart_body_gives_its_image_part_and_typed_fields():
    client = tiny_app().test_client()
    form = {"prompt": "a cat", "width": "256", "guidance_scale": "2.5", "seed": "", "negative_prompt": "",
            "image": (io.BytesIO(RED_PNG), "cat.png")}
    answer = client.post("/api/generate", data=form, content_type="multipart/form-data")
    assert answer.status_code == 200, answer.json
    assert answer.json["source"] == uploads.FROM_FILE_PART and answer.json["size"] == [30, 20]
    request = answer.json["request"]
    assert (request["width"], request["guidance_scale"], request["seed"]) == (256, 2.5, None)
    assert request["negative_prompt"] == "" and "image" not in request
    # Text that spells no number is left for the schema, which names the field in its own words.
    answer = client.post("/api/generate", data={"prompt": "a cat", "width": "wide"}, content_type="multipart/form-data")
    assert answer.status_code == 422 and answer.json["errors"] == {"width": ["Not a valid integer."]}
    # A file input left empty in a browser form is no image.
    form = {"prompt": "a cat", "image": (io.BytesIO(b""), "")}
    answer = client.post("/api/generate", data=form, content_type="multipart/form-data")
    assert answer.status_code == 200 and answer.json["source"] is None


@pytest.mark.parametrize("form, detail", [
    ({"image": [(io.BytesIO(RED_PNG), "a.png"), (io.BytesIO(RED_PNG), "b.png")]},
     "Invalid request: image: 2 images given; send one image file part."),
    ({"image": [(io.BytesIO(RED_PNG), "a.png"), "data:image/png;base64,AAAA"]},
     "Invalid request: image: Given both as a file part and as a form field; send it once, as a file."),
    ({"image": data_url(RED_PNG)},
     "Invalid request: image: Must be a file part (an image file) in a multipart body, not a text field."),
    ({"prompt": ["a cat", "a dog"]}, "Invalid request: prompt: Given 2 times; send each field once."),
    ({"negative_prompt": (io.BytesIO(b"dogs"), "n.txt")},
     "Invalid request: negative_prompt: Must be a form field, not a file part; only image is a file."),
    ({"image": (io.BytesIO(b"GIF89a" + b"\x00" * 20), "a.png")},
     "Invalid request: image: Not a PNG, JPEG or WebP image (other formats are not accepted)."),
])
def test_bad_multipart_bodies_are_422_naming_the_field(form, detail):
    form.setdefault("prompt", "a cat")
    answer = tiny_app().test_client().post("/api/generate", data=form, content_type="multipart/form-data")
    assert answer.status_code == 422 and answer.json["detail"] == detail
    field = detail.split(": ")[1]
    assert list(answer.json["errors"]["form"]) == [field]


def test_a_json_body_gives_its_data_url_image():
    client = tiny_app().test_client()
    png = noise_png(200)  # over 64 KiB in base64: the raised JSON limit lets it in
    assert len(data_url(png)) > 64 * 1024
    answer = client.post("/api/generate", json={"prompt": "a cat", "image": data_url(png), "width": 256})
    assert answer.status_code == 200, answer.json
    assert answer.json["source"] == uploads.FROM_DATA_URL and answer.json["size"] == [200, 200]
    for body in ({"prompt": "a cat"}, {"prompt": "a cat", "image": None}):
        answer = client.post("/api/generate", json=body)
        assert answer.status_code == 200 and answer.json["source"] is None and answer.json["size"] is None
    answer = client.post("/api/generate", json={"prompt": "a cat", "image": "https://example.com/cat.png"})
    assert answer.status_code == 422 and "nothing is fetched from a URL" in answer.json["detail"]
    assert answer.json["detail"].startswith("Invalid request: image: ")
    assert list(answer.json["errors"]["json"]) == ["image"]
    answer = client.post("/api/generate", data="{", content_type="application/json")
    assert answer.status_code == 400 and answer.json["detail"].startswith("The body is not valid JSON")


def test_a_json_image_of_max_upload_mb_fits_and_one_byte_more_is_413():
    client = tiny_app().test_client()
    limit = body_limits.image_json_limit(config.from_environ({"MAX_UPLOAD_MB": "1"}))
    assert limit == -(-MB // 3) * 4 + 64 * 1024
    # An upload of exactly MAX_UPLOAD_MB as a data: URL gets through the limit (and is then judged on its content).
    answer = client.post("/api/generate", json={"prompt": "a cat", "image": data_url(b"\x00" * MB)})
    assert answer.status_code == 422 and "Not a PNG, JPEG or WebP image" in answer.json["detail"]
    body = io.BytesIO(b" " * (limit + 1))
    answer = client.post("/api/generate", input_stream=body, content_type="application/json")
    assert answer.status_code == 413 and "MAX_UPLOAD_MB in base64, plus MAX_BODY_KB" in answer.json["detail"]
    assert body.tell() == 0
    # Only POST /api/generate gets the larger limit.
    answer = client.post("/api/other", data=b" " * (65 * 1024), content_type="application/json")
    assert answer.status_code == 413 and "MAX_BODY_KB" in answer.json["detail"]


def test_without_image_models_a_json_data_url_keeps_the_small_limit(tmp_path):
    body = {"prompt": "a cat", "image": data_url(noise_png(200))}
    answer = tiny_app(accepts_images=False).test_client().post("/api/generate", json=body)
    assert answer.status_code == 413 and "(MAX_BODY_KB)" in answer.json["detail"]
    # The real app's default (a text-to-video model) too.
    answer = make_app(tmp_path / "data").test_client().post("/api/generate", json=body)
    assert answer.status_code == 413 and "(MAX_BODY_KB)" in answer.json["detail"]


def test_a_multipart_body_over_max_upload_mb_is_413():
    client = tiny_app().test_client()
    big = io.BytesIO(b"\x89PNG" + b"\x00" * MB)
    answer = client.post("/api/generate", data={"prompt": "a cat", "image": (big, "big.png")},
                         content_type="multipart/form-data")
    assert answer.status_code == 413 and "(MAX_UPLOAD_MB)" in answer.json["detail"]
