"""The official `openai` Python SDK (pinned in requirements-test.txt) against real gunicorn: /v1/videos end to end.

One server for the module, with two demo models (text-to-video and image-to-video)
and three API keys (alice, bob, and an admin), so key scoping is exercised the way
a team sharing one service would meet it. Renders are the smallest the demo model
takes: 256x256, 17 frames (2 s at 8 fps), 10 steps.
"""

import io
import shutil

import openai
import pytest
import requests
from PIL import Image

from hunyuan_core.model_source import EMBEDDED_MODEL_NAME

from .conftest import copy_artifact
from .mp4_check import assert_playable_mp4, decode_image
from .server import GunicornServer, kill_all_runners

pytestmark = [pytest.mark.timeout(600), pytest.mark.demo_model]

KEYS = {"alice": "alice-secret", "bob": "bob-secret", "admin": "admin-secret"}
I2V_MODEL = "demo-hunyuanvideo-i2v"
# 2 s at 8 fps is 16 frames, rounded to the 4k+1 the model makes: 17 frames, 2.125 s.
SMALL = {"size": "256x256", "seconds": "2"}
SMALL_EXTRA = {"fps": 8, "num_inference_steps": 10}


@pytest.fixture(scope="module")
def server(tiny_model, host_calibration, tmp_path_factory):
    """gunicorn on a data folder holding the session's demo model and calibration; the i2v demo is built at start."""
    folder = tmp_path_factory.mktemp("openai-sdk") / "data"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / EMBEDDED_MODEL_NAME).symlink_to(tiny_model, target_is_directory=True)
    shutil.copytree(host_calibration, folder / "stats")
    server = GunicornServer(folder, workers=2, MODELS=f"demo-hunyuanvideo,{I2V_MODEL}",
                            API_KEY=",".join(f"{name}:{key}" for name, key in KEYS.items()), ADMIN_API_KEYS="admin")
    try:
        yield server.start(timeout=300)
    finally:
        server.stop()
        kill_all_runners(folder)


def sdk(server, key_name="alice", key=None):
    """The official client, pointed at this service; no retries, so each error shows up as itself."""
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=key or KEYS[key_name], max_retries=0, timeout=60)


def api(server, method, path, key_name="alice", headers=None, **kwargs):
    """A plain HTTP request to the service (its own /api/*, or /v1 without the SDK), with a key."""
    headers = dict(headers or {}, Authorization=f"Bearer {KEYS[key_name]}")
    return requests.request(method, server.base_url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def rendered(server):
    """A text-to-video video made with create_and_poll, with this service's own fields in extra_body."""
    video = sdk(server).videos.create_and_poll(prompt="A cat walks on the grass, realistic style.",
                                               extra_body=dict(SMALL_EXTRA, seed=1234), **SMALL)
    return video


def test_create_and_poll_renders_the_video_and_reports_what_was_made(server, rendered):
    assert rendered.status == "completed", rendered
    assert rendered.object == "video" and rendered.progress == 100 and rendered.error is None
    assert rendered.model == "demo-hunyuanvideo" and rendered.size == "256x256" and rendered.seconds == "2.125"
    assert rendered.prompt == "A cat walks on the grass, realistic style."
    assert rendered.created_at <= rendered.completed_at and rendered.expires_at is None
    assert rendered.remixed_from_video_id is None
    # The same job through /api: extra_body's fields reached its parameters.
    job = api(server, "GET", f"/api/status/{rendered.id}").json()
    assert job["status"] == "completed"
    assert {k: job["params"][k] for k in ("seed", "num_inference_steps", "fps", "video_length", "width", "height")} \
        == {"seed": 1234, "num_inference_steps": 10, "fps": 8, "video_length": 17, "width": 256, "height": 256}


def test_retrieve_answers_the_video_object(server, rendered):
    client = sdk(server)
    again = client.videos.retrieve(rendered.id)
    assert again == rendered
    raw = client.videos.with_raw_response.retrieve(rendered.id)
    assert 500 <= int(raw.headers["openai-poll-after-ms"]) <= 10_000


def test_download_content_is_the_mp4_and_its_thumbnail(server, rendered, tmp_path):
    client = sdk(server)
    path = tmp_path / "video.mp4"
    client.videos.download_content(rendered.id).write_to_file(path)
    assert_playable_mp4(path, frames=17, width=256, height=256, fps=8)
    copy_artifact(path, "openai-sdk-256x256x17.mp4")
    thumbnail = client.videos.download_content(rendered.id, variant="thumbnail")
    assert thumbnail.response.headers["content-type"] == "image/jpeg" and thumbnail.content[:2] == b"\xff\xd8"
    assert decode_image(thumbnail.content).shape == (256, 256, 3)
    # Served by the same file helper as /api/videos: ranges work.
    part = api(server, "GET", f"/v1/videos/{rendered.id}/content", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100 and part.content == path.read_bytes()[:100]


def test_a_spritesheet_is_a_not_found_that_says_what_is_made(server, rendered):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(server).videos.download_content(rendered.id, variant="spritesheet")
    assert "variant=video" in caught.value.message and "thumbnail" in caught.value.message


def test_remix_makes_a_new_video_with_the_same_settings_and_seed(server, rendered):
    client = sdk(server)
    remix = client.videos.remix(rendered.id, prompt="A dog walks on the grass, realistic style.")
    assert remix.id != rendered.id and remix.remixed_from_video_id == rendered.id
    assert (remix.size, remix.seconds, remix.model) == (rendered.size, rendered.seconds, rendered.model)
    done = client.videos.poll(remix.id)
    assert done.status == "completed" and done.remixed_from_video_id == rendered.id
    job = api(server, "GET", f"/api/status/{remix.id}").json()
    assert job["params"]["seed"] == 1234 and job["params"]["num_inference_steps"] == 10
    assert job["params"]["prompt"] == "A dog walks on the grass, realistic style."


def test_list_pages_through_the_keys_own_videos(server, rendered):
    client = sdk(server)
    # Queued ones too: a listing is by creation time whatever the state.
    made = [client.videos.create(prompt=f"listing {i}", **SMALL, extra_body=SMALL_EXTRA).id for i in range(3)]
    first = client.videos.list(limit=2)
    assert [v.id for v in first.data] == made[::-1][:2] and first.has_more is True
    second = first.get_next_page()
    assert second.data[0].id == made[0]
    everything = [v.id for v in client.videos.list(limit=2)]  # the SDK follows last_id / has_more
    assert everything[:3] == made[::-1] and rendered.id in everything and len(everything) == len(set(everything))
    oldest_first = [v.id for v in client.videos.list(limit=100, order="asc")]
    assert oldest_first == everything[::-1]
    last = client.videos.list(after=everything[-2], limit=5)
    assert [v.id for v in last.data] == everything[-1:] and last.has_more is False
    # Another key lists none of alice's; the admin key lists them all.
    assert not set(everything) & {v.id for v in sdk(server, "bob").videos.list(limit=100)}
    assert set(everything) <= {v.id for v in sdk(server, "admin").videos.list(limit=100)}
    for video_id in made:
        api(server, "POST", f"/api/jobs/{video_id}/cancel")


def test_a_canceled_video_ends_poll_as_failed_with_code_canceled(server):
    client = sdk(server)
    video = client.videos.create(prompt="A long one.", size="640x480", seconds="8",
                                 extra_body={"num_inference_steps": 50})
    assert video.status == "queued"
    assert api(server, "POST", f"/api/jobs/{video.id}/cancel").status_code == 200
    ended = client.videos.poll(video.id)
    assert ended.status == "failed" and ended.error.code == "canceled" and ended.error.message
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)


def _png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def test_image_to_video_with_input_reference(server):
    client = sdk(server)
    video = client.videos.create(prompt="The picture comes to life.", model=I2V_MODEL,
                                 input_reference=("frame.png", _png(320, 240), "image/png"), **SMALL,
                                 extra_body=SMALL_EXTRA)
    assert video.model == I2V_MODEL and video.status in ("queued", "in_progress") and video.seconds == "2.125"
    width, height = map(int, video.size.split("x"))
    assert width > height  # the image's 4:3 shape, at about 256x256's area
    job = api(server, "GET", f"/api/status/{video.id}").json()
    assert job["params"]["video_length"] == 17
    # A text-to-video model refuses an image, and the image-to-video one needs one: both name input_reference.
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.videos.create(prompt="x", input_reference=("frame.png", _png(64, 64), "image/png"))
    assert caught.value.param == "input_reference"
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.videos.create(prompt="x", model=I2V_MODEL)
    assert caught.value.param == "input_reference"
    done = client.videos.poll(video.id)
    assert done.status == "completed", done
    content = client.videos.download_content(video.id).content
    path = server.data_dir.parent / "i2v.mp4"
    path.write_bytes(content)
    assert_playable_mp4(path, frames=17, width=width, height=height, fps=8)


@pytest.mark.parametrize("fields, param, code", [
    ({"seconds": "100"}, "seconds", "invalid_value"),
    ({"size": "12x12"}, "size", "invalid_value"),
    ({"size": "big"}, "size", "invalid_value"),
    ({"extra_body": {"seed": -1}}, "seed", "invalid_value"),
    ({"extra_body": {"num_inference_steps": "many"}}, "num_inference_steps", "invalid_value"),
    ({"extra_body": {"colour": "blue"}}, "colour", "unknown_parameter"),
    ({"model": "sora-2"}, "model", "invalid_value"),
    ({"prompt": "   "}, "prompt", "invalid_value"),
])
def test_bad_fields_are_unprocessable_entity_errors_naming_the_param(server, fields, param, code):
    fields = dict(fields)
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        sdk(server).videos.create(prompt=fields.pop("prompt", "A cat."), **fields)
    error = caught.value
    assert (error.status_code, error.param, error.code, error.type) == (422, param, code, "invalid_request_error")
    assert param in error.message
    if param == "model":
        assert "demo-hunyuanvideo" in error.message and I2V_MODEL in error.message


def test_a_malformed_request_is_a_bad_request_error(server):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(server).videos.create(prompt="A cat.", extra_headers={"Idempotency-Key": "x" * 300}, **SMALL)
    assert "Idempotency-Key" in caught.value.message and caught.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize("key", ["", "not-a-key"], ids=["no-key", "wrong-key"])
def test_without_a_valid_key_every_call_is_an_authentication_error(server, key):
    # The SDK insists on a key: "no key" leaves its Authorization header out of each call.
    client = sdk(server, key=key or "unused")
    headers = {"Authorization": openai.Omit()} if not key else None
    with pytest.raises(openai.AuthenticationError) as caught:
        client.videos.list(extra_headers=headers)
    assert caught.value.type == "authentication_error"
    assert ("Missing API key" if not key else "Invalid API key") in caught.value.message
    with pytest.raises(openai.AuthenticationError):
        client.videos.create(prompt="A cat.", extra_headers=headers, **SMALL)


def test_unknown_ids_and_another_keys_videos_are_not_found(server, rendered):
    bob = sdk(server, "bob")
    for call in (bob.videos.retrieve, bob.videos.download_content, bob.videos.delete):
        with pytest.raises(openai.NotFoundError) as caught:
            call(rendered.id)
        assert caught.value.code == "not_found"
    with pytest.raises(openai.NotFoundError):
        bob.videos.remix(rendered.id, prompt="mine now")
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(server).videos.retrieve("00000000-0000-4000-8000-000000000000")
    assert "00000000-0000-4000-8000-000000000000" in caught.value.message
    # The admin key sees it; its owner still does.
    assert sdk(server, "admin").videos.retrieve(rendered.id).id == rendered.id
    assert sdk(server).videos.retrieve(rendered.id).status == "completed"
