"""Several models through HTTP: `model` in requests, per-model ranges and defaults, images, /api/info, /health.

Light: the models are folders holding what the web side reads of them
(model_index.json, a 1.5 transformer's target size), so no model is built and no
runner runs; generating with each family end to end is the runner's tests' job.
"""

import base64
import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from hunyuan_core import families

from .conftest import ROOT, make_app
from .server import free_port
from .test_catalog import model_folder

PROMPT = "A cat walks on the grass, realistic style."


def png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def data_url(data):
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture
def folders(tmp_path):
    """A folder of each family: 13B text-to-video, 1.5 text-to-video (480p), 1.5 and 13B image-to-video."""
    root = tmp_path / "models"
    return {
        "hv": model_folder(root, "HunyuanVideo", "HunyuanVideoPipeline"),
        "hv15": model_folder(root, "hv15-480p", "HunyuanVideo15Pipeline", 640),
        "hv15i2v": model_folder(root, "hv15-480p-i2v", "HunyuanVideo15ImageToVideoPipeline", 640),
        "hvi2v": model_folder(root, "HunyuanVideo-I2V", "HunyuanVideoImageToVideoPipeline"),
    }


@pytest.fixture
def app(tmp_path, folders):
    models = (f"hv={folders['hv']}, hv15={folders['hv15']}, i2v={folders['hv15i2v']}, "
              f"fast={folders['hv15']};min_steps=8;default_steps=8;max_steps=12, hvi2v={folders['hvi2v']}")
    return make_app(tmp_path / "data", ENVIRON={"MODELS": models})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def store(app):
    return app.extensions["hunyuan_api"].store


def post(client, body, status=200):
    response = client.post("/api/generate", json=body)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_an_unknown_model_is_a_422_listing_the_known_ones(client):
    body = post(client, {"prompt": PROMPT, "model": "hv2"}, 422)
    assert body["detail"] == "Invalid request: model: Unknown model 'hv2'; known models: hv, hv15, i2v, fast, hvi2v."
    assert body["errors"] == {"json": {"model": ["Unknown model 'hv2'; known models: hv, hv15, i2v, fast, hvi2v."]}}
    assert post(client, {"prompt": PROMPT, "model": 5}, 422)["detail"] == "Invalid request: model: Not a valid string."
    detail = post(client, {"prompt": PROMPT, "model": "\x1b[2J" + "x" * 5000}, 422)["detail"]
    assert "\x1b" not in detail and len(detail) < 300 and "'\\x1b[2J" in detail


def test_without_model_the_first_one_is_used_with_the_api_documents_defaults(client, store, folders):
    body = post(client, {"prompt": PROMPT})
    assert (body["params"]["width"], body["params"]["video_length"], body["params"]["num_inference_steps"]) == (
        640, 61, 30)
    assert body["params"]["embedded_guidance_scale"] == 6.0
    job = store.get(body["job_id"])
    assert job["model"] == {"name": "HunyuanVideo", "path": str(folders["hv"]), "demo": False,
                            "family": "hunyuanvideo", "task": "text-to-video", "served_as": "hv"}
    assert "model" not in job["request"] and "image" not in job and "image" not in job["request"]


def test_each_model_has_its_own_ranges_with_the_same_words(client):
    # 1.5 makes at most 121 frames; the 13B model 129.
    detail = post(client, {"prompt": PROMPT, "model": "hv15", "video_length": 125}, 422)["detail"]
    assert detail == "Invalid request: video_length: Must be between 13 and 121; got 125."
    assert post(client, {"prompt": PROMPT, "model": "hv", "video_length": 125})["params"]["video_length"] == 125
    # 1.5 takes 4 steps (step-distilled checkpoints); the 13B model's range is the API document's 10-50.
    assert post(client, {"prompt": PROMPT, "model": "hv15", "num_inference_steps": 4})["params"][
        "num_inference_steps"] == 4
    detail = post(client, {"prompt": PROMPT, "num_inference_steps": 4}, 422)["detail"]
    assert detail == "Invalid request: num_inference_steps: Must be between 10 and 50; got 4."
    # A model's own options.
    assert post(client, {"prompt": PROMPT, "model": "fast"})["params"]["num_inference_steps"] == 8
    detail = post(client, {"prompt": PROMPT, "model": "fast", "num_inference_steps": 13}, 422)["detail"]
    assert detail == "Invalid request: num_inference_steps: Must be between 8 and 12; got 13."
    # An unknown model's other errors are judged by the default model's ranges, and all are named.
    detail = post(client, {"prompt": PROMPT, "model": "nope", "video_length": 125}, 422)["detail"]
    assert "model: Unknown model 'nope'" in detail and "video_length" not in detail


def test_a_15_model_gets_its_familys_defaults_and_names_the_fields_it_does_not_use(client):
    body = post(client, {"prompt": PROMPT, "model": "hv15"})
    used = body["params"]
    assert (used["width"], used["height"], used["video_length"], used["fps"]) == (848, 480, 121, 24)
    assert (used["guidance_scale"], used["flow_shift"], used["num_inference_steps"]) == (6.0, 5.0, 50)
    assert "embedded_guidance_scale" not in used
    assert not any("not used" in a for a in body["adjustments"])
    # The API document's own client sends embedded_guidance_scale: accepted, and named.
    body = post(client, {"prompt": PROMPT, "model": "hv15", "embedded_guidance_scale": 6.0})
    assert "embedded_guidance_scale" not in body["params"]
    assert any(a.startswith("embedded_guidance_scale is not used by hunyuanvideo-1.5 models: ")
               for a in body["adjustments"]), body["adjustments"]


def test_sizes_are_rounded_to_the_15_buckets_and_reported(client):
    body = post(client, {"prompt": PROMPT, "model": "hv15", "width": 640, "height": 480})
    assert (body["params"]["width"], body["params"]["height"]) == (720, 544) == families.nearest_bucket(640, 480, 640)
    assert "size 640x480 changed to 720x544: the nearest of the model's size buckets" in " ".join(body["adjustments"])
    body = post(client, {"prompt": PROMPT, "model": "hv15", "width": 1280, "height": 720})
    assert (body["params"]["width"], body["params"]["height"]) == (848, 480)
    body = post(client, {"prompt": PROMPT, "model": "hv15", "width": 360, "height": 640})
    assert (body["params"]["width"], body["params"]["height"]) == (480, 848)
    body = post(client, {"prompt": PROMPT, "model": "hv15", "width": 640, "height": 640})
    assert (body["params"]["width"], body["params"]["height"]) == (640, 640)
    assert not any(a.startswith("size") for a in body["adjustments"])
    # The 13B model still rounds to multiples of 16, in today's words.
    body = post(client, {"prompt": PROMPT, "width": 650})
    assert "width 650 rounded to 656: the model needs a multiple of 16" in body["adjustments"]


def test_an_image_for_a_text_to_video_model_and_none_for_an_image_to_video_model_are_422(client, store):
    image = data_url(png(64, 36))
    body = post(client, {"prompt": PROMPT, "model": "hv15", "image": image}, 422)
    assert body["detail"] == ("Invalid request: image: hv15 is a text-to-video model and takes no image; name an "
                              "image-to-video model in `model`.")
    body = post(client, {"prompt": PROMPT, "model": "i2v"}, 422)
    assert body["detail"].startswith("Invalid request: image: Required: i2v is an image-to-video model")
    response = client.post("/api/generate", data={"prompt": PROMPT, "model": "i2v"}, content_type="multipart/form-data")
    assert response.status_code == 422 and list(response.get_json()["errors"]["form"]) == ["image"]
    response = client.post("/api/generate", data={"prompt": PROMPT, "image": (io.BytesIO(png(64, 36)), "a.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "hv is a text-to-video model" in response.get_json()["detail"]
    assert store.list()[0] == [] and not any(store.inputs_dir.iterdir())


def test_a_json_data_url_image_makes_a_job_with_its_stored_image_and_a_size_from_its_shape(client, store):
    image = png(64, 36)  # 16:9
    body = post(client, {"prompt": PROMPT, "model": "i2v", "image": data_url(image)})
    job = store.get(body["job_id"])
    assert (body["params"]["width"], body["params"]["height"]) == (848, 480)
    assert "size 848x480: follows the image's aspect ratio (64x36)" in " ".join(body["adjustments"])
    assert job["image"]["width"] == 64 and job["image"]["height"] == 36 and len(job["image"]["sha256"]) == 64
    stored = store.input_path(body["job_id"])
    assert stored.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and job["image"]["file"] == stored.name
    assert "image" not in job["request"] and job["model"]["task"] == "image-to-video"
    assert client.delete(f"/api/jobs/{body['job_id']}").status_code == 200
    assert not stored.exists()


def test_a_multipart_submission_makes_the_same_job_with_typed_fields(client, store):
    form = {"prompt": PROMPT, "model": "i2v", "num_inference_steps": "8", "guidance_scale": "4.5", "seed": "7",
            "image": (io.BytesIO(png(36, 64)), "portrait.png")}
    response = client.post("/api/generate", data=form, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["params"]["width"], body["params"]["height"]) == (480, 848)
    assert (body["params"]["num_inference_steps"], body["params"]["guidance_scale"], body["params"]["seed"]) == (
        8, 4.5, 7)
    job = store.get(body["job_id"])
    assert job["image"]["width"] == 36 and store.input_path(body["job_id"]).is_file()
    # width and height do not steer a 1.5 image-to-video model: sent, they are named.
    form = {"prompt": PROMPT, "model": "i2v", "width": "640", "image": (io.BytesIO(png(36, 64)), "p.png")}
    body = client.post("/api/generate", data=form, content_type="multipart/form-data").get_json()
    assert any(a.startswith("width is not used by hunyuanvideo-1.5-i2v models") for a in body["adjustments"])


def test_the_13b_image_to_video_model_takes_the_image_shape_at_the_requested_area(client):
    body = post(client, {"prompt": PROMPT, "model": "hvi2v", "image": data_url(png(64, 36))})
    assert (body["params"]["width"], body["params"]["height"]) == (1280, 720)
    body = post(client, {"prompt": PROMPT, "model": "hvi2v", "image": data_url(png(64, 36)), "width": 848,
                         "height": 480})
    assert (body["params"]["width"], body["params"]["height"]) == families.nearest_bucket(64, 36, 640, 16)


def test_the_idempotency_key_covers_the_model_and_the_image(client):
    key = {"Idempotency-Key": "order-1"}
    first = client.post("/api/generate", json={"prompt": PROMPT, "model": "i2v", "image": data_url(png(64, 36))},
                        headers=key)
    again = client.post("/api/generate", json={"prompt": PROMPT, "model": "i2v", "image": data_url(png(64, 36))},
                        headers=key)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["job_id"] == first.get_json()["job_id"]
    other_image = client.post("/api/generate", json={"prompt": PROMPT, "model": "i2v",
                                                      "image": data_url(png(64, 37))}, headers=key)
    assert other_image.status_code == 409
    key = {"Idempotency-Key": "order-2"}
    assert client.post("/api/generate", json={"prompt": PROMPT, "model": "hv15"}, headers=key).status_code == 200
    assert client.post("/api/generate", json={"prompt": PROMPT, "model": "fast"}, headers=key).status_code == 409


def test_info_lists_every_model_with_ranges_size_rules_and_task(client):
    info = client.get("/api/info").get_json()
    models = {m["name"]: m for m in info["models"]}
    assert list(models) == ["hv", "hv15", "i2v", "fast", "hvi2v"]
    assert [m["default"] for m in info["models"]] == [True, False, False, False, False]
    assert models["hv"]["parameters"] == info["parameters"] and models["hv"]["family"] == "hunyuanvideo"
    assert models["hv15"]["parameters"]["video_length"]["maximum"] == 121
    assert "embedded_guidance_scale" not in models["hv15"]["parameters"]
    assert models["hv15"]["unused_fields"] == ["embedded_guidance_scale"]
    assert models["fast"]["parameters"]["num_inference_steps"] == {
        **models["hv15"]["parameters"]["num_inference_steps"], "minimum": 8, "default": 8, "maximum": 12}
    assert models["hv15"]["size_rules"]["buckets"] == {"16:9": "848x480", "9:16": "480x848", "1:1": "640x640"}
    assert models["hv15"]["size_rules"]["target_size"] == 640 and models["hv"]["size_rules"]["sizes"] == "multiples"
    assert (models["i2v"]["task"], models["i2v"]["takes_image"], models["hv"]["takes_image"]) == (
        "image-to-video", True, False)
    assert all(m["ready"] and m["demo"] is False and "path" not in m for m in info["models"])
    # The keys that were there before stay: the default model, its parameters, precision.
    assert info["model"]["name"] == "HunyuanVideo" and "precision" in info


def test_health_is_healthy_only_when_every_model_is_ready(tmp_path, folders):
    models = f"hv={folders['hv']}, later={tmp_path / 'not-yet'}"
    client = make_app(tmp_path / "data", ENVIRON={"MODELS": models}).test_client()
    health = client.get("/health").get_json()
    assert health["status"] == "starting" and health["model_loaded"] is False
    assert [(m["served_as"], m["ready"]) for m in health["models"]] == [("hv", True), ("later", False)]
    assert health["problems"] == ["later: MODELS does not exist or is not a folder"]
    assert str(tmp_path) not in json.dumps(health)
    # The ready model takes jobs meanwhile; the missing one says why it cannot.
    assert post(client, {"prompt": PROMPT})["status"] == "queued"
    body = post(client, {"prompt": PROMPT, "model": "later"}, 503)
    assert body["detail"] == f"Model not available: MODELS {tmp_path / 'not-yet'} does not exist or is not a folder."
    model_folder(tmp_path, "not-yet", "HunyuanVideo15Pipeline", 640)
    health = client.get("/health").get_json()
    assert health["status"] == "healthy" and health["problems"] == []
    assert [m["family"] for m in health["models"]] == ["hunyuanvideo", "hunyuanvideo-1.5"]


def test_openapi_documents_both_bodies_with_model_and_image(client):
    spec = client.get("/openapi.json").get_json()
    content = spec["paths"]["/api/generate"]["post"]["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/GenerateRequest"}
    assert content["multipart/form-data"]["schema"] == {"$ref": "#/components/schemas/GenerateFormRequest"}
    schemas = spec["components"]["schemas"]
    json_body, form_body = schemas["GenerateRequest"]["properties"], schemas["GenerateFormRequest"]["properties"]
    assert json_body["model"]["type"] == "string" and "data:" in json_body["image"]["description"]
    assert form_body["image"]["format"] == "binary" and set(form_body) == set(json_body)
    # The default model's ranges and defaults, in both.
    for body in (json_body, form_body):
        assert (body["width"]["minimum"], body["width"]["maximum"], body["width"]["default"]) == (256, 1280, 640)
        assert body["num_inference_steps"]["default"] == 30


def test_an_unknown_family_stops_the_app_naming_models(tmp_path):
    folder = model_folder(tmp_path, "sd", "StableDiffusionPipeline")
    with pytest.raises(ValueError, match="^MODELS: sd: "):
        make_app(tmp_path / "data", ENVIRON={"MODELS": f"demo-hunyuanvideo, {folder}"})


def test_gunicorn_refuses_to_start_with_a_folder_of_no_hunyuanvideo_family(tmp_path):
    folder = model_folder(tmp_path, "sd", "StableDiffusionPipeline")
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data"), "HOST": "127.0.0.1", "PORT": str(free_port()),
           "WEB_CONCURRENCY": "1", "MODELS": f"demo-hunyuanvideo, {folder}"}
    command = [sys.executable, "-m", "gunicorn", "-c", "python:hunyuan_api.gunicorn_conf", "wsgi:app"]
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"gunicorn kept running with a StableDiffusion folder in MODELS:\n{exc.stdout}")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "invalid configuration: MODELS: sd: " in output and "StableDiffusionPipeline" in output
    # Nothing was built or started first: the check comes before the demo models are built.
    assert not (tmp_path / "data" / "models").exists()


def test_a_15_model_of_another_resolution_class_defaults_to_its_own_16_9_size_and_shift(tmp_path):
    demo_sized = model_folder(tmp_path, "hv15-demo-sized", "HunyuanVideo15Pipeline", 256)  # the demos' class
    hd = model_folder(tmp_path, "hv15-720p", "HunyuanVideo15Pipeline", 960)
    hd_i2v = model_folder(tmp_path, "hv15-720p-i2v", "HunyuanVideo15ImageToVideoPipeline", 960)
    tuned = f"tuned={hd};default_flow_shift=8"
    client = make_app(tmp_path / "data", ENVIRON={"MODELS": f"{demo_sized}, {hd}, {hd_i2v}, {tuned}"}).test_client()
    models = {m["name"]: m["parameters"] for m in client.get("/api/info").get_json()["models"]}
    small = models["hv15-demo-sized"]
    assert (small["width"]["default"], small["height"]["default"], small["height"]["minimum"]) == (336, 192, 192)
    assert small["flow_shift"]["default"] == 5.0
    assert (models["hv15-720p"]["width"]["default"], models["hv15-720p"]["height"]["default"]) == (1280, 720)
    assert models["hv15-720p"]["flow_shift"]["default"] == 9.0
    assert models["hv15-720p-i2v"]["flow_shift"]["default"] == 7.0
    assert models["tuned"]["flow_shift"]["default"] == 8.0
    body = post(client, {"prompt": PROMPT, "model": "hv15-demo-sized"})
    assert (body["params"]["width"], body["params"]["height"]) == (336, 192)
    assert not any(a.startswith("size") for a in body["adjustments"])
    # The size a default request gets is one a client may send back.
    assert post(client, {"prompt": PROMPT, "model": "hv15-demo-sized", "width": 336, "height": 192})["params"][
        "height"] == 192
