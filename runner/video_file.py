"""Writing frames as an MP4 that browsers can stream and seek, and checking what was written."""

import resource
import shutil
import subprocess

import imageio_ffmpeg
import numpy as np

# Below this much free space after a failed write, the disk being full is the cause.
_DISK_FULL_BYTES = 1024 * 1024
# JPEG quality on ffmpeg's 2 (best) to 31 scale: 3 is visually clean at a fraction of PNG's size.
_JPEG_QUALITY = "3"

# H.264 in yuv420p plays everywhere; +faststart moves the moov atom to the front so
# a browser can start playing (and seek with Range requests) before the download ends.
# "veryfast" is 2.5x quicker than the default preset here at a similar size.
_X264_OPTIONS = ["-preset", "veryfast", "-crf", "20", "-movflags", "+faststart", "-f", "mp4"]


def write_mp4(frames, path, fps, on_frame=None):
    """Encode `frames` (uint8, shape (T, H, W, 3)) to an H.264 MP4 at `path` at `fps`;
    `on_frame()` is called as each frame is handed to the encoder."""
    count, height, width, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=1,  # sizes are already multiples of 16; never let it resize
        ffmpeg_log_level="error",
        output_params=_X264_OPTIONS,
    )
    writer.send(None)  # start ffmpeg
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
        if on_frame is not None:
            on_frame()
    writer.close()
    return count


def probe(path):
    """Decode the file and report what it really holds: frames, size, fps, codec, pixel format."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    frames = sum(1 for _ in reader)
    width, height = meta["size"]
    return {
        "frames": frames,
        "width": width,
        "height": height,
        "fps": meta["fps"],
        "codec": meta.get("codec", "").split(" ")[0],
        "pix_fmt": meta.get("pix_fmt", "").split("(")[0],
        "duration": meta.get("duration"),
    }


def write_failure_reason(path):
    """Why writing `path` failed, when the cause is the disk or a file size limit; else None."""
    free = shutil.disk_usage(path.parent).free
    if free < _DISK_FULL_BYTES:
        return f"No space left on device (the videos folder {path.parent} has {free // 1024} KB free)"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    size = path.stat().st_size if path.exists() else 0
    if limit != resource.RLIM_INFINITY and size >= limit:
        return f"File too large (the video reached this process's file size limit, RLIMIT_FSIZE = {limit} bytes)"
    return None


def write_jpeg(frame, path):
    """Encode one frame (uint8, shape (H, W, 3)) as a JPEG at `path`, with the ffmpeg that writes the MP4s."""
    height, width, _ = frame.shape
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-i", "-",
        "-frames:v", "1", "-q:v", _JPEG_QUALITY, "-f", "image2", "-c:v", "mjpeg", str(path),
    ]
    result = subprocess.run(command, input=np.ascontiguousarray(frame).tobytes(), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write the poster: {result.stderr.decode(errors='replace').strip()}")
    return {"width": width, "height": height}
