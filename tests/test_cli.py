"""The `hunyuan-video` command line against a real gunicorn server, run as a subprocess."""

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from io import BytesIO

import pytest
import requests
from PIL import Image
from werkzeug.formparser import parse_form_data

from hunyuan_core.images import decode_image
from hunyuan_core.job_store import JobStore
from hunyuan_core.model_source import EMBEDDED_MODEL_NAME

from .conftest import ROOT
from .light_models import light_demo
from .mp4_check import assert_playable_mp4, inspect_image
from .server import GunicornServer, free_port, kill_all_runners

# Small enough to finish in seconds on two cores; the server allows 2 steps (MIN_STEPS=1).
SMALL_FLAGS = ["--width", "256", "--height", "256", "--frames", "13", "--fps", "8", "--steps", "2"]
PROMPT = "a cat walks on the grass"
I2V_DEMO = "demo-hunyuanvideo-1.5-i2v"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(tiny_model, host_calibration, tmp_path_factory):
    """One server for the module, on a data folder set up as conftest's data_dir is.

    It also offers an image-to-video demo (a light folder: its jobs are recorded, not
    rendered); the default model, which every other test uses, is the built demo.
    """
    data_dir = tmp_path_factory.mktemp("cli") / "data"
    (data_dir / "models").mkdir(parents=True)
    (data_dir / "models" / EMBEDDED_MODEL_NAME).symlink_to(tiny_model, target_is_directory=True)
    shutil.copytree(host_calibration, data_dir / "stats")
    light_demo(data_dir, I2V_DEMO)
    with GunicornServer(data_dir, workers=2, MAX_WORKERS=2, MIN_STEPS=1, MAX_UPLOAD_MB=1,
                        MODELS=f"demo-hunyuanvideo, {I2V_DEMO}") as running:
        yield running
    kill_all_runners(data_dir)


def cli(*args, url=None, env=None, cwd=None, timeout=300):
    """Run `python -m hunyuan_cli ARGS` (what the hunyuan-video script runs)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HUNYUAN_API_")}
    if url:
        environment["HUNYUAN_API_URL"] = url
    environment.update(env or {})
    environment["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "hunyuan_cli", *args], capture_output=True, text=True,
                          env=environment, cwd=cwd, timeout=timeout)


def test_generate_waits_shows_progress_and_saves_a_playable_video(server, tmp_path):
    # Denoising long enough (~0.5 s here) for polls every 0.1 s to see it: at the smallest
    # size two steps take a few milliseconds and no poll need land in them.
    flags = ["--width", "480", "--height", "368", "--frames", "29", "--fps", "8", "--steps", "12"]
    result = cli("generate", PROMPT, *flags, "--seed", "1", "--wait", "--poll-interval", "0.1", "-o", "cat.mp4",
                 url=server.base_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "cat.mp4")
    assert_playable_mp4(tmp_path / "cat.mp4", frames=29, width=480, height=368, fps=8)
    # Not a terminal: plain progress lines on stderr, no carriage returns, ending at 100%.
    lines = result.stderr.splitlines()
    assert "\r" not in result.stderr
    assert lines[0].startswith("job ") and "queued" in lines[0]
    progress_lines = [line for line in lines if line.startswith("[")]
    assert any("denoising" in line for line in progress_lines), result.stderr
    assert "100%  done" in progress_lines[-1] and lines[-1].startswith("saved cat.mp4 (")
    percents = [int(line.split("]")[1].split("%")[0]) for line in progress_lines]
    assert percents == sorted(percents)


def test_status_list_download_and_delete(server, tmp_path):
    submitted = cli("generate", PROMPT, *SMALL_FLAGS, "--seed", "2", "--json", "--url", server.base_url)
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["job_id"]
    waited = cli("generate", "second", *SMALL_FLAGS, "--wait", "--json", "--url", server.base_url)
    assert waited.returncode == 0, waited.stderr

    def status():
        result = cli("status", job_id, "--json", url=server.base_url)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    deadline = time.monotonic() + 240
    while (job := status())["status"] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job["status"] == "completed", job
    assert job["params"]["seed"] == 2 and job["poster_url"] == f"/api/posters/{job_id}.jpg"

    text = cli("status", job_id, url=server.base_url)
    assert text.returncode == 0 and f"job: {job_id}" in text.stdout and "100%  done" in text.stdout

    listed = cli("list", "--status", "completed", "--limit", "5", "--json", url=server.base_url)
    assert job_id in [j["job_id"] for j in json.loads(listed.stdout)["jobs"]]
    table = cli("list", url=server.base_url)
    assert table.returncode == 0 and table.stdout.startswith("JOB") and job_id in table.stdout

    downloaded = cli("download", job_id, "-o", str(tmp_path / "copy.mp4"), url=server.base_url)
    assert downloaded.returncode == 0, downloaded.stderr
    assert (tmp_path / "copy.mp4").read_bytes() == server.get(job["video_url"]).content
    assert_playable_mp4(tmp_path / "copy.mp4", frames=13, width=256, height=256, fps=8)
    poster = server.get(job["poster_url"])
    assert poster.headers["Content-Type"] == "image/jpeg"
    assert inspect_image(poster.content)["width"] == 256

    deleted = cli("delete", job_id, url=server.base_url)
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    gone = cli("status", job_id, url=server.base_url)
    assert gone.returncode == 3 and "error: Job not found (HTTP 404)" in gone.stderr
    assert server.get(job["poster_url"]).status_code == 404


def test_errors_print_the_servers_detail_with_distinct_exit_codes(server, tmp_path):
    bad = cli("generate", PROMPT, "--width", "5000", url=server.base_url)
    assert bad.returncode == 3
    assert "width: Must be between 256 and 1280; got 5000." in bad.stderr and "(HTTP 422)" in bad.stderr

    unknown = cli("cancel", "00000000-0000-4000-8000-000000000000", url=server.base_url)
    assert unknown.returncode == 3 and "(HTTP 404)" in unknown.stderr

    nowhere = cli("list", "--url", f"http://127.0.0.1:{free_port()}")
    assert nowhere.returncode == 4 and "cannot reach" in nowhere.stderr

    usage = cli("generate", url=server.base_url)
    assert usage.returncode == 2

    # A job that has only just been submitted has no video yet.
    job_id = cli("generate", PROMPT, *SMALL_FLAGS, url=server.base_url).stdout.strip()
    early = cli("download", job_id, "-o", str(tmp_path / "early.mp4"), url=server.base_url)
    assert early.returncode == 1 and "has no video" in early.stderr
    assert not (tmp_path / "early.mp4").exists()

    impatient = cli("generate", PROMPT, *SMALL_FLAGS, "--wait", "--timeout", "0.5", url=server.base_url)
    assert impatient.returncode == 5 and "gave up waiting after 0.5 s" in impatient.stderr

    unwritable = cli("generate", PROMPT, *SMALL_FLAGS, "-o", str(tmp_path / "missing" / "x.mp4"), url=server.base_url)
    assert unwritable.returncode == 6 and "cannot write" in unwritable.stderr


def test_on_a_terminal_the_progress_is_one_redrawn_bar(server, tmp_path):
    # A real pseudo-terminal as stderr, as when a person runs the command.
    primary, secondary = pty.openpty()
    environment = dict(os.environ, PYTHONPATH=str(ROOT), HUNYUAN_API_URL=server.base_url)
    process = subprocess.Popen([sys.executable, "-m", "hunyuan_cli", "generate", PROMPT, *SMALL_FLAGS, "--wait"],
                               stdout=subprocess.PIPE, stderr=secondary, env=environment, cwd=tmp_path)
    os.close(secondary)
    output = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=300)
    os.close(primary)
    text = output.decode()
    assert process.returncode == 0, text
    assert "\r\x1b[K[" in text and "[" + "#" * 30 + "] 100%  done" in text


def test_the_api_key_comes_from_the_flag_or_the_environment(data_dir):
    with GunicornServer(data_dir, workers=1, API_KEY="cli-secret") as keyed:
        if requests.get(keyed.base_url + "/api/jobs", timeout=10).status_code != 401:
            pytest.skip("this server does not ask for API keys yet (API_KEY comes with issue 4 part A)")
        refused = cli("list", url=keyed.base_url)
        assert refused.returncode == 3 and "(HTTP 401)" in refused.stderr and "HUNYUAN_API_KEY" in refused.stderr
        assert cli("list", "--api-key", "cli-secret", url=keyed.base_url).returncode == 0
        assert cli("list", url=keyed.base_url, env={"HUNYUAN_API_KEY": "cli-secret"}).returncode == 0


def test_the_console_script_is_declared_and_needs_no_torch():
    setup = (ROOT / "setup.cfg").read_text()
    assert "hunyuan-video = hunyuan_cli.main:main" in setup and "hunyuan-ops = hunyuan_cli.ops.main:main" in setup
    check = subprocess.run([sys.executable, "-c", "import sys, hunyuan_cli.main; "
                            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                            "('torch', 'diffusers', 'flask', 'hunyuan_api', 'hunyuan_core')))"],
                           capture_output=True, text=True, cwd=ROOT, check=True)
    assert check.stdout.strip() == "[]"


def test_progress_lines_say_phase_step_and_time_left():
    from hunyuan_cli.progress import describe, format_seconds

    assert [format_seconds(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]
    running = {"status": "processing", "progress": 0.42, "phase": "denoising", "step": 12, "steps": 30,
               "eta_seconds": 19.0}
    assert describe(running) == " 42%  denoising 12/30  ~19 s left"
    queued = {"status": "queued", "progress": 0.0, "phase": "queued", "queue_position": 2, "eta_seconds": 80}
    assert describe(queued) == "  0%  queued, position 2  ~1 min 20 s left"
    assert describe({"status": "canceled", "progress": 0.3, "phase": "canceled", "eta_seconds": 0}) == " 30%  canceled"


def jpeg(width, height):
    """A JPEG photo-like picture (a gradient): the bytes."""
    buffer = BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_generate_with_a_model_and_an_image_sends_it_as_multipart_and_the_job_keeps_it(server, tmp_path):
    # A JPEG under a .png name: sent for what it is.
    picture = jpeg(120, 200)
    (tmp_path / "frame.png").write_bytes(picture)
    result = cli("generate", PROMPT, "--model", I2V_DEMO, "--image", "frame.png", "--steps", "4", "--frames", "13",
                 "--json", url=server.base_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    submitted = json.loads(result.stdout)
    job_id = submitted["job_id"]
    assert any("follows the image's aspect ratio (120x200)" in a for a in submitted["adjustments"]), submitted
    assert (submitted["params"]["num_inference_steps"], submitted["params"]["video_length"]) == (4, 13)
    job = JobStore(server.data_dir).get(job_id)
    assert job["model"]["served_as"] == I2V_DEMO and job["model"]["task"] == "image-to-video"
    stored = server.data_dir / "inputs" / f"{job_id}.png"
    assert job["image"] == decode_image(picture).record(stored.name) and stored.is_file()
    assert (job["image"]["width"], job["image"]["height"]) == (120, 200)
    shown = cli("status", job_id, url=server.base_url)
    assert f"   model: {job['model']['name']}" in shown.stdout.splitlines()
    server.post(f"/api/jobs/{job_id}/cancel")  # a light model: nothing to render


def test_an_image_the_model_cannot_take_or_a_missing_file_is_an_error(server, tmp_path):
    (tmp_path / "frame.jpg").write_bytes(jpeg(64, 36))
    before = server.get("/api/jobs").json()["total"]
    refused = cli("generate", PROMPT, "--image", "frame.jpg", url=server.base_url, cwd=tmp_path)
    assert refused.returncode == 3 and "(HTTP 422)" in refused.stderr
    assert ("error: Invalid request: image: demo-hunyuanvideo is a text-to-video model and takes no image"
            in refused.stderr)
    assert "hint: `hunyuan-video models`" in refused.stderr
    needed = cli("generate", PROMPT, "--model", I2V_DEMO, url=server.base_url)
    assert needed.returncode == 3 and "image: Required" in needed.stderr
    (tmp_path / "notes.png").write_text("\x1b[2J not a picture")
    garbage = cli("generate", PROMPT, "--model", I2V_DEMO, "--image", "notes.png", url=server.base_url, cwd=tmp_path)
    assert garbage.returncode == 3 and "image: Not a PNG, JPEG or WebP image" in garbage.stderr

    missing = cli("generate", PROMPT, "--model", I2V_DEMO, "--image", "nowhere.png", url=server.base_url, cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (2, "error: --image nowhere.png: no such file\n")
    folder = cli("generate", PROMPT, "--model", I2V_DEMO, "--image", str(tmp_path), url=server.base_url)
    assert folder.returncode == 2 and "is a folder, not an image file" in folder.stderr
    if os.geteuid() != 0:  # root reads any file
        (tmp_path / "locked.png").write_bytes(jpeg(8, 8))
        (tmp_path / "locked.png").chmod(0)
        locked = cli("generate", PROMPT, "--image", "locked.png", url=server.base_url, cwd=tmp_path)
        assert locked.returncode == 2 and "cannot be read (Permission denied)" in locked.stderr
    # Over the server's upload limit (1 MiB here): said before sending, not a broken pipe halfway.
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(3 << 19))
    huge = cli("generate", PROMPT, "--model", I2V_DEMO, "--image", "huge.png", url=server.base_url, cwd=tmp_path)
    assert huge.returncode == 3, huge.stderr
    assert "this server takes at most 1048576 bytes (MAX_UPLOAD_MB). Nothing was sent. (HTTP 413)" in huge.stderr
    assert server.get("/api/jobs").json()["total"] == before  # nothing was submitted


def test_models_lists_each_model_with_its_task_and_ranges(server):
    listed = cli("models", url=server.base_url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "demo-hunyuanvideo (default): text-to-video, hunyuanvideo, demo, ready"
    assert "  --steps                    1-50, default 30" in lines  # MIN_STEPS=1 on this server
    at = lines.index(f"{I2V_DEMO}: image-to-video, hunyuanvideo-1.5-i2v, demo, ready")
    own = lines[at + 1:]
    assert own[0].startswith("  --image FILE               required (PNG, JPEG or WebP)")
    assert "  --frames                   13-121, default 121" in own
    assert "  not used: --width, --height, --embedded-guidance-scale" in own
    assert "  sizes: 16:9 336x192, 1:1 256x256, 9:16 192x336" in own
    as_json = json.loads(cli("models", "--json", url=server.base_url).stdout)
    assert [(m["name"], m["task"], m["takes_image"]) for m in as_json] == [
        ("demo-hunyuanvideo", "text-to-video", False), (I2V_DEMO, "image-to-video", True)]


def test_the_multipart_body_holds_the_fields_and_the_file_as_a_server_reads_them():
    from hunyuan_cli.upload import content_type_of, multipart_body

    webp = b"RIFF\x24\x00\x00\x00WEBPVP8 "
    assert [content_type_of(d) for d in (jpeg(8, 8), b"\x89PNG\r\n\x1a\n....", webp, b"GIF89a", b"")] == [
        "image/jpeg", "image/png", "image/webp", "application/octet-stream", "application/octet-stream"]
    # Bytes that look like multipart framing, and a prompt and file name with quotes and line breaks.
    data = jpeg(16, 16) + b"\r\n--hunyuan-video-\r\n\r\n--"
    fields = {"prompt": 'a "cat"\r\nContent-Type: x ☃', "num_inference_steps": 8, "guidance_scale": 4.5}
    body, content_type = multipart_body(fields, "image", 'fr"a\nme☃.png', data, content_type_of(data))
    boundary = content_type.split("boundary=")[1]
    assert content_type.startswith("multipart/form-data; boundary=hunyuan-video-") and boundary.encode() not in data
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": BytesIO(body)}
    _stream, form, files = parse_form_data(environ)
    assert form.to_dict() == {"prompt": fields["prompt"], "num_inference_steps": "8", "guidance_scale": "4.5"}
    assert list(files) == ["image"]
    part = files["image"]
    assert part.read() == data and part.mimetype == "image/jpeg" and part.filename == 'fr"a_me_.png'
    assert b'filename="fr%22a_me_.png"' in body  # the quote escaped on the wire, the line break and snowman gone
