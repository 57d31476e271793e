"""Reliability: a job whose video write hits a full disk fails clearly; the service and other jobs carry on.

The videos folder is made a small tmpfs (`mount -t tmpfs -o size=...`, needs root),
so the real runner's real ffmpeg write meets ENOSPC exactly as on a full disk. Where
mounting is not allowed, the work process runs under `prlimit --fsize` instead
(RLIMIT_FSIZE: writes past the limit fail with EFBIG). The test skips, saying why,
only if neither is possible.
"""

import shutil
import subprocess
import sys

import pytest

from .conftest import SMALL_REQUEST, copy_artifact, make_app, wait_for
from .mp4_check import assert_playable_mp4

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = [pytest.mark.timeout(600), pytest.mark.demo_model]

TMPFS_KB = 512
LEFT_FREE_KB = 48  # far less than the small request's video (about 200 KB of noise)


def _mount_tmpfs(folder):
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_KB}k,mode=0755", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    return result.returncode == 0, result.stderr.strip()


def _fsize_command():
    """The real work process under a file size limit (RLIMIT_FSIZE), or None without prlimit."""
    if shutil.which("prlimit") is None:
        return None
    return ["prlimit", f"--fsize={LEFT_FREE_KB * 1024}", sys.executable, "-m", "runner.render"]


@pytest.fixture(params=["best", "fsize"])
def small_disk(request, data_dir):
    """("tmpfs", None) with data_dir/videos a small tmpfs, or ("fsize", worker command) as the fallback.

    The "fsize" variant always uses the fallback, so it is known to work where mounting is not allowed.
    """
    videos = data_dir / "videos"
    videos.mkdir(exist_ok=True)
    if request.param == "best":
        mounted, why = (False, "mount not found") if shutil.which("mount") is None else _mount_tmpfs(videos)
        if mounted:
            yield "tmpfs", None
            subprocess.run(["umount", "-l", str(videos)], check=False)
            return
    else:
        why = "not tried (this variant tests the fallback)"
    command = _fsize_command()
    if command is None:
        pytest.skip(f"cannot make a small disk here: mounting a tmpfs failed ({why}) and prlimit is missing")
    yield "fsize", command


def _fill(folder, leave_kb):
    """Fill the filesystem of `folder` until about `leave_kb` KB are free; returns the ballast file."""
    ballast = folder / "ballast.bin"
    free = shutil.disk_usage(folder).free
    ballast.write_bytes(b"\0" * max(0, free - leave_kb * 1024))
    return ballast


def test_a_full_disk_fails_the_job_clearly_and_nothing_else(data_dir, store, small_disk):
    mechanism, work_command = small_disk
    settings = {"SUPERVISOR_AUTOSTART": True, "ENVIRON": {"MIN_FREE_DISK_MB": "0", "MAX_WORKERS": "1",
                                                          "SUPERVISOR_POLL_INTERVAL": "0.2"}}
    if work_command:
        settings["WORK_COMMAND"] = work_command
    app = make_app(data_dir, **settings)
    client = app.test_client()
    try:
        # Another job, finished before the disk filled up: its record and video must stay as they are.
        earlier = client.post("/api/generate", json=dict(SMALL_REQUEST, prompt="earlier")).json["job_id"]
        client.post(f"/api/jobs/{earlier}/cancel")
        store.update(earlier, lambda job: job.update(status="completed", video={"file": f"{earlier}.mp4"}))
        store.video_path(earlier).write_bytes(b"an earlier video")
        earlier_record = store.job_path(earlier).read_bytes()
        ballast = _fill(store.videos_dir, LEFT_FREE_KB) if mechanism == "tmpfs" else None

        job_id = client.post("/api/generate", json=SMALL_REQUEST).json["job_id"]
        job = wait_for(lambda: (j := store.get(job_id))["status"] in ("failed", "completed") and j, 300,
                       interval=0.5, message="the job to end")

        assert job["status"] == "failed", job
        assert "No space left on device" in job["error"] or "File too large" in job["error"], job["error"]
        assert "video" in job["error"]
        assert not store.partial_video_path(job_id).exists() and not store.video_path(job_id).exists()
        copy_artifact(store.log_path(job_id), f"disk-full-{mechanism}.log")
        # The service keeps answering, and the other job is untouched.
        assert client.get("/health").status_code == 200
        assert client.get(f"/api/status/{job_id}").json["error"] == job["error"]
        assert store.job_path(earlier).read_bytes() == earlier_record
        assert store.video_path(earlier).read_bytes() == b"an earlier video"

        if ballast is not None:
            # Space freed: the next job renders into the same folder and completes.
            ballast.unlink()
            again = client.post("/api/generate", json=SMALL_REQUEST).json["job_id"]
            done = wait_for(lambda: (j := store.get(again))["status"] in ("failed", "completed") and j, 300,
                            interval=0.5, message="the next job to end")
            assert done["status"] == "completed", done["error"]
            video = done["video"]
            assert_playable_mp4(store.video_path(again), video["frames"], video["width"], video["height"],
                                video["fps"])
    finally:
        app.extensions["hunyuan_api"].supervisor.stop()
