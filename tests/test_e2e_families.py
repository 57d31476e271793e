"""End to end through real gunicorn: the four families' demo models side by side in one server.

One server offers all four demo models (MODELS); text-to-video jobs are sent as
JSON, image-to-video ones as multipart (an `image` file part and form fields) and
as JSON with a `data:` URL. Every job runs in a real work process to an MP4 that
is downloaded and decoded: its frame count, size and fps are what the job reports.
"""

import base64

import pytest

from hunyuan_core import families, model_source
from hunyuan_core.timing_stats import TimingStats
from runner.pictures import picture_png

from .conftest import DEMO_MODELS, copy_artifact, wait_for
from .mp4_check import assert_playable_mp4
from .server import GunicornServer, kill_all_runners

pytestmark = [pytest.mark.timeout(600), pytest.mark.demo_model]

PROMPT = 'A cat holds a sign that says "HELLO".'
# The smallest each family takes (their parameter tables): 13 frames; 10 steps for 13B, 4 for 1.5.
SMALL = {"video_length": 13, "num_inference_steps": 10, "fps": 8, "seed": 3}
SMALL_15 = dict(SMALL, num_inference_steps=4)


@pytest.fixture
def four_model_data(data_dir, demo_folders):
    """The data folder with every demo model in place (the session's builds) and this host's
    calibration filed under each, as after their first jobs."""
    calibration = TimingStats(data_dir, model_source.EMBEDDED_MODEL_NAME).calibration()
    for name in DEMO_MODELS[1:]:
        folder = demo_folders[name]
        family = families.family_of(folder)
        (data_dir / "models" / family.demo_folder).symlink_to(folder, target_is_directory=True)
        TimingStats(data_dir, family.demo_folder).set_calibration(calibration)
    yield data_dir
    kill_all_runners(data_dir)


def test_every_family_generates_through_gunicorn_as_json_and_multipart(four_model_data, tmp_path):
    with GunicornServer(four_model_data, workers=2, MODELS=", ".join(DEMO_MODELS), MAX_WORKERS=2) as server:
        listed = {m["name"]: m for m in server.get("/api/info").json()["models"]}
        assert set(listed) == set(DEMO_MODELS)
        image = picture_png(200, 120)
        submissions = {
            # No `model`: the first one, the 13B text-to-video demo, with the API document's fields.
            "demo-hunyuanvideo": server.post("/api/generate", json=dict(SMALL, prompt=PROMPT, width=256, height=256)),
            "demo-hunyuanvideo-1.5": server.post("/api/generate", json=dict(
                SMALL_15, prompt=PROMPT, model="demo-hunyuanvideo-1.5", width=264, height=200)),
            "demo-hunyuanvideo-i2v": server.post(
                "/api/generate", files={"image": ("cat.png", image, "image/png")},
                data={"prompt": PROMPT, "model": "demo-hunyuanvideo-i2v", "width": "256", "height": "256",
                      **{k: str(v) for k, v in SMALL.items()}}),
            "demo-hunyuanvideo-1.5-i2v": server.post("/api/generate", json=dict(
                SMALL_15, prompt=PROMPT, model="demo-hunyuanvideo-1.5-i2v",
                image="data:image/png;base64," + base64.b64encode(image).decode())),
        }
        jobs = {}
        for name, response in submissions.items():
            assert response.status_code == 200, (name, response.text)
            jobs[name] = response.json()["job_id"]

        def all_settled():
            answers = {name: server.get(f"/api/status/{job_id}").json() for name, job_id in jobs.items()}
            return answers if all(a["status"] in ("completed", "failed") for a in answers.values()) else None

        answers = wait_for(all_settled, 480, interval=0.5, message="the four jobs to finish")
        for name, status in answers.items():
            assert status["status"] == "completed", (name, status["error"])
            params, video = status["params"], status["video"]
            family = families.by_demo_name(name)
            response = server.get(status["video_url"])
            assert response.status_code == 200
            path = tmp_path / f"{name}.mp4"
            path.write_bytes(response.content)
            copy_artifact(path, f"e2e-{name}.mp4")
            # The frames, size and fps the job reports are the file's.
            assert_playable_mp4(path, frames=video["frames"], width=video["width"], height=video["height"],
                                fps=video["fps"])
            assert (video["frames"], video["width"], video["height"], video["fps"]) == (
                params["video_length"], params["width"], params["height"], params["fps"])
            steps = (SMALL_15 if family.bucketed else SMALL)["num_inference_steps"]
            assert status["step"] == status["steps"] == steps
            assert status["model"] == family.demo_folder
            if family.takes_image:
                expected = families.size_for_image(family, four_model_data / "models" / family.demo_folder, 200, 120,
                                                   256, 256)
                assert (params["width"], params["height"]) == expected
