"""Hostile request bodies and text (issue 10, items 4-7): sizes, parser edge cases, terminal escapes, paths.

Attacks in the body go through the Flask test client; attacks on the wire (huge
bodies, chunked bodies) and the command lines run against real gunicorn and real
subprocesses.
"""

import io
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from hunyuan_cli.text import printable
from hunyuan_core import config, params
from hunyuan_core.job_record import mark_failed, new_job, new_job_id
from hunyuan_core.job_store import JobStore
from hunyuan_core.model_source import EMBEDDED_MODEL_NAME

from .conftest import ROOT, SMALL_REQUEST, make_app
from .server import GunicornServer, kill_all_runners

pytestmark = pytest.mark.timeout(300)

MB = 1024 * 1024
# The prompts the attacker sent: a lone surrogate, a window-title sequence, an erase-line sequence.
HOSTILE_PROMPTS = ["\ud800 cat", "\u001b]0;title\u0007 cat", "\u001b[2K\r cat"]


def post_json_text(client, text, **kwargs):
    """POST raw JSON text (json= would re-encode it) to /api/generate."""
    return client.post("/api/generate", data=text, content_type="application/json", **kwargs)


def seeded_data_dir(folder, tiny_model, host_calibration):
    """A data folder set up as conftest's `data_dir` is, at a path the test chooses."""
    (folder / "models").mkdir(parents=True)
    (folder / "models" / EMBEDDED_MODEL_NAME).symlink_to(tiny_model, target_is_directory=True)
    shutil.copytree(host_calibration, folder / "stats")
    return folder


def write_old_job(store, prompt, error=None):
    """A job file as the service wrote it before prompts were checked (through JobStore, as it did).

    With `error` the job has failed with that error, as the tokenizer made it fail.
    """
    job_id = new_job_id()
    request = dict(SMALL_REQUEST, prompt=prompt, negative_prompt=prompt)
    used, adjustments = params.resolve(request)
    job = new_job(job_id, request=request, params=used, adjustments=adjustments,
                  model={"name": "tiny", "path": "/nowhere", "demo": True})
    if error is not None:
        mark_failed(job, error)
    store.create(job)
    return job_id


# -- item 4: request bodies are bounded ------------------------------------------------


def unread_body(size):
    """A request body whose position says whether the server read any of it (tell() stays 0 if not)."""
    return io.BytesIO(b" " * size)


def test_a_json_body_over_the_limit_is_413_before_it_is_read(client):
    limit = config.from_environ({})["MAX_BODY_KB"] * 1024
    body = unread_body(limit + 1)
    response = client.post("/api/generate", input_stream=body, content_type="application/json")
    assert response.status_code == 413
    detail = response.get_json()["detail"]
    assert "MAX_BODY_KB" in detail and str(limit + 1) in detail
    assert body.tell() == 0
    # At the limit the body is read and judged on its content (here: blanks are no JSON).
    assert post_json_text(client, " " * limit).status_code == 400


def test_multipart_uploads_have_their_own_larger_limit(data_dir):
    client = make_app(data_dir, ENVIRON={"MAX_UPLOAD_MB": "1", "MAX_BODY_KB": "16"}).test_client()
    image = b"\x89PNG" + b"\x00" * (512 * 1024)  # half a MiB: over MAX_BODY_KB, within MAX_UPLOAD_MB
    response = client.post("/api/generate", data={"prompt": "a cat", "image": (io.BytesIO(image), "a.png")},
                           content_type="multipart/form-data")
    assert response.status_code != 413, response.get_json()
    too_big = unread_body(MB + 1)
    response = client.post("/api/generate", input_stream=too_big, content_type="multipart/form-data; boundary=x")
    assert response.status_code == 413 and "MAX_UPLOAD_MB" in response.get_json()["detail"]
    assert too_big.tell() == 0


def test_the_limits_are_settings_shown_on_api_info(data_dir):
    client = make_app(data_dir, ENVIRON={"MAX_BODY_KB": "100", "MAX_UPLOAD_MB": "8"}).test_client()
    limits = client.get("/api/info").get_json()["limits"]
    assert (limits["max_body_bytes"], limits["max_upload_bytes"]) == (100 * 1024, 8 * MB)
    defaults = config.from_environ({})
    assert (defaults["MAX_BODY_KB"], defaults["MAX_UPLOAD_MB"]) == (64, 32)
    for name in ("MAX_BODY_KB", "MAX_UPLOAD_MB"):
        with pytest.raises(ValueError, match=name):
            config.from_environ({name: "lots"})
        with pytest.raises(ValueError, match=name):
            config.from_environ({name: "0"})


def test_the_largest_legitimate_json_request_fits_the_default_limit(client):
    # Every character of both prompts an astral one, sent \u-escaped (12 bytes each), plus every field.
    request = dict(SMALL_REQUEST, prompt="\U0001F600" * params.MAX_PROMPT_CHARS,
                   negative_prompt="\U0001F600" * params.MAX_PROMPT_CHARS, seed=params.MAX_SEED,
                   guidance_scale=1.0, flow_shift=7.0, embedded_guidance_scale=6.0,
                   webhook_url="https://93.184.215.14/hooks/" + "a" * 1000)  # a public address: no DNS here
    text = json.dumps(request, ensure_ascii=True)
    assert len(text) > 48_000
    assert post_json_text(client, text).status_code == 200


def _send_body(port, headers, chunks):
    """Send a request whose body comes from `chunks`, stopping early once the server answers.

    Returns the status code. Reading as soon as the answer arrives matters: a server that
    answers and closes while we still send would otherwise make us lose its answer to a reset.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(headers.encode())
        answer = b""
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(60)
        while b"\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None


def _json_body(size):
    """A `size`-byte JSON body, produced 1 MiB at a time: the test never holds it whole."""
    head, tail = b'{"prompt": "', b'"}'
    yield head
    left = size - len(head) - len(tail)
    while left > 0:
        yield b"a" * min(MB, left)
        left -= MB
    yield tail


def _chunked(pieces):
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


@pytest.fixture(scope="module")
def server(tiny_model, host_calibration, tmp_path_factory):
    """One real gunicorn for the module (two web workers, as deployed)."""
    data_dir = seeded_data_dir(tmp_path_factory.mktemp("hostile") / "data", tiny_model, host_calibration)
    with GunicornServer(data_dir, workers=2, MAX_WORKERS=1, SUPERVISOR_POLL_INTERVAL=0.2) as running:
        yield running
    kill_all_runners(data_dir)


def _web_rss(server):
    return sum(proc.memory_info().rss for proc in server.web_workers())


def test_six_parallel_50_mb_posts_are_413_and_leave_the_workers_small(server):
    size = 50 * MB
    headers = (f"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {size}\r\n\r\n")
    chunked_headers = ("POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n")
    server.get("/health")  # every worker warm before the baseline
    before = _web_rss(server)
    answers = []

    def attack(chunked):
        if chunked:
            answers.append(_send_body(server.port, chunked_headers, _chunked(_json_body(size))))
        else:
            answers.append(_send_body(server.port, headers, _json_body(size)))

    threads = [threading.Thread(target=attack, args=(i % 2 == 1,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    grown = _web_rss(server) - before
    assert grown <= 50 * MB, f"web workers grew by {grown / MB:.0f} MB; answers {answers}"
    assert answers == [413] * 6
    # The service is still there, and says what the limit is.
    assert server.get("/health").status_code == 200
    response = server.post("/api/generate", data=b"{" * (65 * 1024), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "MAX_BODY_KB" in response.json()["detail"]


# -- item 5: parser edge cases are 4xx ---------------------------------------------------


@pytest.mark.parametrize("text, reason", [
    ("[" * 2000 + "]" * 2000, "nested too deeply"),
    ('{"prompt": ' + "[" * 30_000 + "]" * 30_000 + "}", "nested too deeply"),
    ('{"prompt": "a cat", "seed": ' + "1" * 5000 + "}", "digits"),
    ('{"prompt": "a cat", "width": ' + "9" * 5000 + "}", "digits"),
    ('{"prompt": "a cat", "guidance_scale": -' + "1" * 5000 + "}", "digits"),
    ('{"prompt": "a cat",', "Expecting"),
    (b'{"prompt": "\xff"}', "decod"),
])
def test_bodies_json_cannot_parse_are_400_with_a_reason(client, text, reason):
    response = post_json_text(client, text)
    assert response.status_code == 400
    detail = response.get_json()["detail"]
    assert detail.startswith("The body is not valid JSON: ") and reason in detail


NUMBER_FIELDS = [p.name for p in params.PARAMETERS] + ["seed"]


@pytest.mark.parametrize("field", NUMBER_FIELDS)
def test_every_number_field_takes_json_numbers_only(client, field):
    for value in ("2.0", "640", "2", True, False, [2], {"v": 2}):
        response = client.post("/api/generate", json=dict(SMALL_REQUEST, **{field: value}))
        assert response.status_code == 422, (value, response.get_json())
        assert f"{field}: Not a valid" in response.get_json()["detail"], value


@pytest.mark.parametrize("field", NUMBER_FIELDS)
def test_huge_and_special_numbers_are_422_naming_the_field(client, field):
    for value in ("1e999", "-1e999", "NaN", "Infinity", "1" + "0" * 400):
        body = json.dumps(SMALL_REQUEST)[:-1] + f', "{field}": {value}' + "}"
        response = post_json_text(client, body)
        assert response.status_code == 422, (value, response.get_json())
        assert field in response.get_json()["detail"]


def test_float_fields_still_take_integers_and_floats(client):
    request = dict(SMALL_REQUEST, guidance_scale=2, flow_shift=5.5, embedded_guidance_scale=6)
    response = client.post("/api/generate", json=request)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["params"]["guidance_scale"] == 2.0


# -- item 6: text that reaches terminals and tokenizers -----------------------------------


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
@pytest.mark.parametrize("bad", HOSTILE_PROMPTS + ["a\x00b", "a\rb", "a\x7fb", "a\x85b", "a\x9bb", "\udfff"])
def test_prompts_with_surrogates_or_control_characters_are_422(client, field, bad):
    request = dict(SMALL_REQUEST, **{field: bad})
    # ensure_ascii: the lone surrogate travels as the \ud800 escape an attacker's client sends.
    response = post_json_text(client, json.dumps(request, ensure_ascii=True))
    assert response.status_code == 422, response.get_json()
    detail = response.get_json()["detail"]
    assert detail.startswith(f"Invalid request: {field}: Must not contain")
    assert "\x1b" not in detail and "\ud800" not in detail


def test_prompts_keep_newlines_tabs_and_every_script(client, store):
    text = "Line one\n\tline two: 中文 提示, émoji \U0001F600, ZWJ 👩\u200d💻, ideographic\u3000space"
    response = client.post("/api/generate", json=dict(SMALL_REQUEST, prompt=text, negative_prompt=text))
    assert response.status_code == 200, response.get_json()
    assert store.get(response.get_json()["job_id"])["params"]["prompt"] == text


def test_printable_escapes_what_a_terminal_would_act_on():
    assert printable("\u001b]0;title\u0007 cat") == "\\x1b]0;title\\x07 cat"
    assert printable("\u001b[2K\r\n\t\x7f\x85\u202e\ud800") == "\\x1b[2K\\r\\n\\t\\x7f\\x85\\u202e\\ud800"
    assert printable("中文 émoji \U0001F600\u3000") == "中文 émoji \U0001F600\u3000"
    assert printable(None) == "" and printable(42) == "42"


def _run(args, encoding):
    """Run a command line with a strict stdout encoding; returns (returncode, stdout bytes, stderr text)."""
    env = dict(os.environ, PYTHONIOENCODING=f"{encoding}:strict", PYTHONPATH=str(ROOT))
    env.pop("PYTHONUTF8", None)
    result = subprocess.run([sys.executable, *args], capture_output=True, env=env, cwd=ROOT, timeout=60)
    return result.returncode, result.stdout, result.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_ops_prints_old_jobs_with_hostile_prompts_escaped(store, encoding):
    job_ids = [write_old_job(store, prompt) for prompt in HOSTILE_PROMPTS]
    failed = write_old_job(store, "café \u001b[31mred", error="tokenizer: \udcff\u001b[2K")
    base = ["-m", "hunyuan_cli.ops", "--data-dir", str(store.root)]
    for args in (["jobs"], ["--json", "jobs"], ["show", failed], ["--json", "show", job_ids[0]], ["stuck"]):
        code, out, err = _run(base + args, encoding)
        assert code in (0, 1), (args, err)
        assert "Traceback" not in err and b"\x1b" not in out and b"\r" not in out and b"\x07" not in out, args
    code, out, _ = _run(base + ["jobs"], encoding)
    text = out.decode(encoding)
    assert "\\ud800 cat" in text and "\\x1b]0;title\\x07 cat" in text and "\\x1b[2K\\r cat" in text
    assert ("café" if encoding == "utf-8" else "caf\\xe9") in text


# -- item 7 (half): /health reveals no paths ------------------------------------------------


def _path_parts(path):
    """The full path and each of its distinctive components."""
    return [str(path)] + [part for part in path.parts if len(part) > 4]


def test_health_and_the_open_routes_reveal_no_path(tmp_path, tiny_model, host_calibration):
    data_dir = seeded_data_dir(tmp_path / "operators-secret-folder", tiny_model, host_calibration)
    client = make_app(data_dir).test_client()
    assert client.post("/api/generate", json=SMALL_REQUEST).status_code == 200
    (data_dir / "jobs" / f"{new_job_id()}.json").write_text("{broken")
    for route in ("/health", "/", "/openapi.json"):
        body = client.get(route).get_data(as_text=True)
        # The model's folder name is its public name (also on `/`); the folders above it are not.
        for part in _path_parts(data_dir) + _path_parts(tiny_model.parent) + [str(tiny_model)]:
            assert part not in body, (route, part)
    health = client.get("/health").get_json()
    assert health["status"] == "healthy" and health["unreadable_jobs"] == 1 and "path" not in health["model"]
    # The key-protected /api/info keeps the model's path for operators.
    model_path = client.get("/api/info").get_json()["model"]["path"]
    assert model_path == str(data_dir.resolve() / "models" / EMBEDDED_MODEL_NAME)


def test_health_names_a_missing_model_path_by_its_setting_not_its_folders(tmp_path):
    missing = tmp_path / "private-weights-folder"
    client = make_app(tmp_path / "data", MODEL_PATH=str(missing)).test_client()
    health = client.get("/health").get_data(as_text=True)
    assert "MODEL_PATH does not exist" in health
    for part in _path_parts(tmp_path) + [str(missing)]:
        assert part not in health, part
    assert str(missing) in client.get("/api/info").get_json()["model"]["problem"]


def test_health_hides_the_text_of_a_failed_model_build(tmp_path):
    data_dir = tmp_path / "hidden-data"
    (data_dir / "models").mkdir(parents=True)
    (data_dir / "models" / f"{EMBEDDED_MODEL_NAME}.build-error.txt").write_text(
        f"PermissionError: [Errno 13] Permission denied: '{data_dir}/models'\n")
    client = make_app(data_dir).test_client()
    health = client.get("/health").get_json()
    assert health["problems"] == ["embedded model build failed: see GET /api/info"]
    assert "hidden-data" not in json.dumps(health)
    assert "Permission denied" in client.get("/api/info").get_json()["model"]["problem"]


# -- hunyuan-video against a server holding old jobs with hostile text ------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_cli_prints_hostile_prompts_and_errors_escaped(server, encoding):
    store = JobStore(server.data_dir)
    queued = write_old_job(store, HOSTILE_PROMPTS[0])
    failed = write_old_job(store, HOSTILE_PROMPTS[1], error="boom \u001b[2K\r\ud800 café")
    base = ["-m", "hunyuan_cli", "--url", server.base_url]
    for args in (["status", queued], ["status", failed], ["list"], ["--json", "list"], ["download", failed]):
        code, out, err = _run(base + args, encoding)
        assert code in (0, 1), (args, err)
        assert "Traceback" not in err and "\x1b" not in err and b"\x1b" not in out and b"\r" not in out, args
    code, out, err = _run(base + ["status", failed], encoding)
    assert "\\x1b]0;title\\x07 cat" in out.decode(encoding) and "boom \\x1b[2K\\r\\ud800" in out.decode(encoding)
    code, out, err = _run(base + ["download", failed], encoding)
    assert code == 1 and "boom \\x1b[2K\\r\\ud800" in err
