"""The /ui playground in a real browser (Debian's Chromium, driven by Playwright) against real gunicorn.

Screenshots of each state go to test-artifacts/ui/. With UPDATE_DOCS_SCREENSHOT=1 the
finished-job screenshot also replaces docs/ui.png.
"""

import hashlib
import io
import os
import shutil
from pathlib import Path

import pytest
import requests
from PIL import Image

from hunyuan_core import families
from hunyuan_core.images import decode_image
from hunyuan_core.job_store import JobStore

from .conftest import ROOT, artifact_path
from .light_models import light_demo
from .server import GunicornServer, kill_all_runners

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no browser: /usr/bin/chromium is missing (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1200, "height": 800}
# Small enough to finish in seconds on two cores; MIN_STEPS=1 lets it use 2 steps.
FORM_VALUES = {"width": "256", "height": "256", "video_length": "13", "fps": "8", "num_inference_steps": "2"}
PROMPT = "A cat walks on the grass, realistic style."
RUN_TIMEOUT_MS = 240_000

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = [pytest.mark.timeout(600), pytest.mark.demo_model]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    messages = []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: messages.append(f"page error: {error}"))
    page.console_messages = messages
    yield page
    context.close()


@pytest.fixture
def server(data_dir):
    with GunicornServer(data_dir, workers=2, MAX_WORKERS=1, MIN_STEPS=1) as running:
        yield running
    kill_all_runners(data_dir)


def shot(page, name):
    """Save a screenshot of the page as test-artifacts/ui/<name>.png."""
    path = artifact_path("ui") / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path))
    return path


def fill_form(page, prompt=PROMPT, **values):
    page.get_by_label("Prompt", exact=True).fill(prompt)
    for name, value in dict(FORM_VALUES, **values).items():
        page.locator(f"#param-{name}").fill(value)


def video_duration(page, job_card):
    """The <video>'s duration once its metadata has loaded (NaN until then)."""
    return job_card.locator("video").evaluate(
        """video => new Promise((resolve, reject) => {
            if (video.readyState >= 1) return resolve(video.duration);
            video.addEventListener('loadedmetadata', () => resolve(video.duration), {once: true});
            video.addEventListener('error', () => reject(new Error('video error ' + video.error.code)), {once: true});
        })"""
    )


def test_the_form_shows_the_configured_ranges_and_names_bad_fields(server, page):
    info = server.get("/api/info").json()["parameters"]
    page.goto(server.base_url + "/ui")
    steps = page.get_by_label("Inference steps")
    sync_api.expect(steps).to_have_attribute("min", "1")  # MIN_STEPS=1 on this server, not the document's 10
    for name, p in info.items():
        field = page.locator(f"#param-{name}")
        assert float(field.get_attribute("min")) == p["minimum"]
        assert float(field.get_attribute("max")) == p["maximum"]
        assert float(field.input_value()) == p["default"]
        sync_api.expect(page.locator(f"#param-{name}-range")).to_contain_text(f"default {p['default']:g}")
    sync_api.expect(page.locator("#model-note")).to_contain_text("demo model")
    # One model: nothing to pick, no image to give.
    sync_api.expect(page.locator("#model-field")).to_be_hidden()
    sync_api.expect(page.locator("#image-field")).to_be_hidden()
    fill_form(page, width="5000")
    page.get_by_role("button", name="Generate").click()
    sync_api.expect(page.get_by_role("alert").first).to_have_text("width: Must be between 256 and 1280; got 5000.")
    shot(page, "1-form-error")
    assert server.get("/api/jobs").json()["total"] == 0  # nothing was sent
    assert not [m for m in page.console_messages if m.startswith(("error", "page error"))], page.console_messages


def test_a_job_submitted_in_the_page_runs_plays_and_is_deleted(server, page, data_dir):
    page.goto(server.base_url + "/ui")
    sync_api.expect(page.locator("#no-jobs")).to_be_visible()
    fill_form(page)
    shot(page, "2-filled")
    # Record every value the progress bar shows, to check it only ever moves forward.
    page.evaluate("""() => { window.seenProgress = [];
        new MutationObserver(records => records.forEach(r => window.seenProgress.push(
            Number(r.target.getAttribute('aria-valuenow'))))).observe(document.querySelector('#jobs'),
            {subtree: true, attributes: true, attributeFilter: ['aria-valuenow']}); }""")
    page.get_by_role("button", name="Generate").click()

    card = page.locator("li.job")
    sync_api.expect(card).to_have_count(1)
    sync_api.expect(card.locator(".prompt")).to_have_text(PROMPT)
    job_id = card.get_attribute("data-job-id")
    bar = card.get_by_role("progressbar")
    sync_api.expect(bar).to_have_attribute("aria-label", f"Progress of job {job_id[:8]}")
    # Live progress: the page shows the runner's phases (with time left) before the end.
    sync_api.expect(card.locator(".phase")).to_contain_text("left", timeout=RUN_TIMEOUT_MS)
    sync_api.expect(card.locator(".badge")).to_have_text("processing", timeout=RUN_TIMEOUT_MS)
    sync_api.expect(card.locator(".phase")).not_to_contain_text("queue")
    shot(page, "3-running")
    sync_api.expect(bar).to_have_attribute("aria-valuenow", "100", timeout=RUN_TIMEOUT_MS)
    sync_api.expect(card.locator(".badge")).to_have_text("completed")
    sync_api.expect(card.locator(".percent")).to_have_text("100%")
    seen = page.evaluate("window.seenProgress")
    assert seen == sorted(seen) and seen[-1] == 100 and len(set(seen)) >= 2, seen

    status = server.get(f"/api/status/{job_id}").json()
    assert status["status"] == "completed" and status["poster_url"] == f"/api/posters/{job_id}.jpg"
    video = card.locator("video")
    sync_api.expect(video).to_be_visible()
    assert video.get_attribute("src") == status["video_url"]
    assert video.get_attribute("poster") == status["poster_url"]
    duration = video_duration(page, card)
    assert duration > 0 and abs(duration - 13 / 8) < 0.2, duration
    # Frames decode too, not only the header: a first frame is ready to show.
    video.evaluate("v => { v.preload = 'auto'; v.load(); }")
    page.wait_for_function("(v => v.readyState === 4 && v.networkState !== 2)(document.querySelector('li.job video'))",
                           timeout=30_000)
    # Seek into the video: a decoded frame other than the poster is shown.
    video.evaluate("""v => new Promise(resolve => {
        v.addEventListener('seeked', resolve, {once: true}); v.currentTime = v.duration / 2; })""")
    poster = server.get(status["poster_url"])
    assert poster.headers["Content-Type"] == "image/jpeg" and poster.content[:2] == b"\xff\xd8"
    sync_api.expect(card.locator(".download")).to_have_attribute("href", status["video_url"])
    sync_api.expect(card.get_by_role("button", name="Cancel")).to_be_hidden()
    path = shot(page, "4-completed")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copy(path, ROOT / "docs" / "ui.png")

    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Delete").click()
    sync_api.expect(card).to_have_count(0)
    sync_api.expect(page.locator("#no-jobs")).to_be_visible()
    shot(page, "5-deleted")
    assert server.get(f"/api/status/{job_id}").status_code == 404
    assert not list((data_dir / "videos").glob(f"*{job_id}*")), "video and poster are removed with the job"
    assert not [m for m in page.console_messages if m.startswith(("error", "page error"))], page.console_messages


@pytest.fixture
def server_with_key(data_dir):
    with GunicornServer(data_dir, workers=1, MAX_WORKERS=1, MIN_STEPS=1, API_KEY="playground-secret") as running:
        if requests.get(running.base_url + "/api/jobs", timeout=10).status_code != 401:
            pytest.skip("this server does not ask for API keys yet (API_KEY comes with issue 4 part A)")
        yield running
    kill_all_runners(data_dir)


def test_the_page_asks_for_the_api_key_and_then_works(server_with_key, page):
    server = server_with_key
    page.goto(server.base_url + "/ui")
    dialog = page.get_by_role("dialog")
    sync_api.expect(dialog).to_be_visible()
    shot(page, "6-api-key")
    dialog.get_by_label("API key").fill("playground-secret")
    dialog.get_by_role("button", name="Save").click()
    sync_api.expect(page.locator("#param-width")).to_have_value("640")
    assert page.evaluate("localStorage.getItem('hunyuan-video.api-key')") == "playground-secret"
    fill_form(page)
    page.get_by_role("button", name="Generate").click()
    card = page.locator("li.job")
    sync_api.expect(card.locator(".badge")).to_have_text("completed", timeout=RUN_TIMEOUT_MS)
    assert video_duration(page, card) > 0  # fetched with the key, played from a blob


def test_cancel_in_the_page_cancels_a_queued_job(server, page):
    if "/api/jobs/{job_id}/cancel" not in server.get("/openapi.json").json()["paths"]:
        pytest.skip("this server has no cancel endpoint yet (it comes with issue 4 part A)")
    # One runner slot: the first job keeps it busy while the second waits in the queue.
    busy = dict(prompt=PROMPT, width=640, height=480, video_length=61, num_inference_steps=30)
    first = server.post("/api/generate", json=busy).json()["job_id"]
    page.goto(server.base_url + "/ui")
    fill_form(page, prompt="waits in the queue")
    page.get_by_role("button", name="Generate").click()
    queued = page.locator("li.job", has_text="waits in the queue")
    sync_api.expect(queued.locator(".badge")).to_have_text("queued")
    queued.get_by_role("button", name="Cancel").click()
    sync_api.expect(queued.locator(".badge")).to_have_text("canceled")
    server.post(f"/api/jobs/{first}/cancel")


I2V_DEMO = "demo-hunyuanvideo-1.5-i2v"


@pytest.fixture
def two_models(data_dir):
    """The default demo (built) and a 1.5 image-to-video demo (configs only), one runner slot."""
    light_demo(data_dir, I2V_DEMO)
    with GunicornServer(data_dir, workers=1, MAX_WORKERS=1, MIN_STEPS=1,
                        MODELS=f"demo-hunyuanvideo, {I2V_DEMO}") as running:
        yield running
    kill_all_runners(data_dir)


def picture(path, width, height):
    """A PNG with a gradient (not one flat colour), saved at `path`; returns its bytes."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def assert_fields_follow(page, parameters, unused=()):
    """The form shows exactly the used `parameters`, each with its range, default and help."""
    shown = page.locator("#parameter-fields input").evaluate_all("inputs => inputs.map(i => i.name)")
    assert sorted(shown) == sorted(set(parameters) - set(unused))
    for name in shown:
        p = parameters[name]
        field = page.locator(f"#param-{name}")
        assert (float(field.get_attribute("min")), float(field.get_attribute("max"))) == (p["minimum"], p["maximum"])
        assert float(field.input_value()) == p["default"]
        sync_api.expect(page.locator(f"#param-{name}-help")).to_have_text(p["description"])


def test_the_model_picker_changes_ranges_and_an_image_goes_up_as_multipart(two_models, page, data_dir, tmp_path):
    server = two_models
    models = {m["name"]: m for m in server.get("/api/info").json()["models"]}
    i2v, default = models[I2V_DEMO], models["demo-hunyuanvideo"]
    page.goto(server.base_url + "/ui")
    picker = page.get_by_label("Model", exact=True)
    sync_api.expect(picker).to_be_visible()
    sync_api.expect(picker).to_have_value("demo-hunyuanvideo")
    assert picker.locator("option").all_text_contents() == [
        "demo-hunyuanvideo — text-to-video, demo", f"{I2V_DEMO} — image-to-video, demo"]
    sync_api.expect(page.locator("#image-field")).to_be_hidden()
    assert_fields_follow(page, default["parameters"])

    picker.select_option(I2V_DEMO)
    about = page.locator("#model-about")
    sync_api.expect(about).to_contain_text("image-to-video")
    sync_api.expect(about.locator(".badge.demo")).to_have_text("demo")
    sync_api.expect(about.locator(".badge.ready")).to_have_text("ready")
    sync_api.expect(about).to_contain_text("hunyuanvideo-1.5-i2v")
    # Its own ranges (1.5: at most 121 frames, 4 steps at least); width, height and embedded guidance unused.
    assert i2v["parameters"]["video_length"]["maximum"] == 121
    assert_fields_follow(page, i2v["parameters"], i2v["unused_fields"])
    sync_api.expect(page.locator("#param-width")).to_have_count(0)
    sync_api.expect(page.locator("#unused-note")).to_have_text(
        f"Not used by {I2V_DEMO}: Width (px), Height (px), Embedded guidance. "
        "Size: the output takes the image's aspect ratio: the nearest size bucket.")

    # No image yet: the page says so and sends nothing.
    page.get_by_label("Prompt", exact=True).fill("The cat turns its head")
    page.locator("#param-num_inference_steps").fill("4")
    page.locator("#param-video_length").fill("13")
    page.get_by_role("button", name="Generate").click()
    sync_api.expect(page.locator("#form-error")).to_have_text(
        f"image: Choose an image (PNG, JPEG or WebP): {I2V_DEMO} makes its video from it.")
    assert server.get("/api/jobs").json()["total"] == 0

    # A file that is no image: the server's detail, as the page shows every refusal.
    (tmp_path / "notes.png").write_text("not a picture")
    page.locator("#image").set_input_files(str(tmp_path / "notes.png"))
    sync_api.expect(page.locator("#image-size")).to_contain_text("cannot show it as an image")
    page.get_by_role("button", name="Generate").click()
    sync_api.expect(page.locator("#form-error")).to_contain_text("image: ")
    assert "Invalid request: image:" in page.locator("#form-error").text_content()
    assert server.get("/api/jobs").json()["total"] == 0

    original = picture(tmp_path / "first frame.png", 300, 200)
    page.locator("#image").set_input_files(str(tmp_path / "first frame.png"))
    preview = page.locator("#image-preview img")
    sync_api.expect(preview).to_be_visible()
    sync_api.expect(page.locator("#image-size")).to_contain_text("300×200 px · first frame.png")
    assert preview.get_attribute("src").startswith("blob:")
    assert preview.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [300, 200]
    sync_api.expect(page.locator("#form-error")).to_be_hidden()
    shot(page, "7-image-to-video")
    with page.expect_request(lambda r: r.url.endswith("/api/generate")) as sent:
        page.get_by_role("button", name="Generate").click()
    request = sent.value
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    card = page.locator("li.job")
    sync_api.expect(card).to_have_count(1)
    job_id = card.get_attribute("data-job-id")
    sync_api.expect(card.locator(".meta")).to_contain_text(families.by_demo_name(I2V_DEMO).demo_folder)
    sync_api.expect(page.locator("#form-note")).to_contain_text("follows the image's aspect ratio (300x200)")

    status = server.get(f"/api/status/{job_id}").json()
    assert status["model"] == families.by_demo_name(I2V_DEMO).demo_folder
    assert status["params"]["num_inference_steps"] == 4 and status["params"]["video_length"] == 13
    assert "embedded_guidance_scale" not in status["params"]
    job = JobStore(data_dir).get(job_id)
    assert job["model"]["served_as"] == I2V_DEMO and job["model"]["task"] == "image-to-video"
    stored = data_dir / "inputs" / f"{job_id}.png"
    assert job["image"]["file"] == stored.name and (job["image"]["width"], job["image"]["height"]) == (300, 200)
    assert job["image"]["sha256"] == decode_image(original).sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
    with Image.open(stored) as kept, Image.open(io.BytesIO(original)) as sent_image:
        assert kept.tobytes() == sent_image.convert("RGB").tobytes()

    # Back to the default model: its ranges again, no image input, and the same JSON body as ever.
    picker.select_option("demo-hunyuanvideo")
    sync_api.expect(page.locator("#image-field")).to_be_hidden()
    sync_api.expect(page.locator("#unused-note")).to_be_hidden()
    assert_fields_follow(page, default["parameters"])
    fill_form(page, prompt="A text-to-video job")
    with page.expect_request(lambda r: r.url.endswith("/api/generate")) as sent:
        page.get_by_role("button", name="Generate").click()
    assert sent.value.headers["content-type"] == "application/json"
    body = sent.value.post_data_json
    assert "model" not in body and "image" not in body
    assert body == {"prompt": "A text-to-video job", "width": 256, "height": 256, "video_length": 13, "fps": 8,
                    "num_inference_steps": 2, "guidance_scale": 1, "embedded_guidance_scale": 6, "flow_shift": 7}
    sync_api.expect(page.locator("li.job")).to_have_count(2)
    second = page.locator("li.job").first.get_attribute("data-job-id")
    assert JobStore(data_dir).get(second)["model"]["served_as"] == "demo-hunyuanvideo"
    assert "image" not in JobStore(data_dir).get(second)

    # Reset goes back to the default model too, and forgets the image.
    picker.select_option(I2V_DEMO)
    page.locator("#image").set_input_files(str(tmp_path / "first frame.png"))
    page.get_by_role("button", name="Reset to defaults").click()
    sync_api.expect(picker).to_have_value("demo-hunyuanvideo")
    sync_api.expect(page.locator("#param-width")).to_have_value(str(default["parameters"]["width"]["default"]))
    sync_api.expect(page.locator("#image-preview")).to_be_hidden()
    for job_id in (job_id, second):
        server.post(f"/api/jobs/{job_id}/cancel")
    assert not [m for m in page.console_messages if m.startswith("page error")], page.console_messages
