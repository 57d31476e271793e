"""Decoding a finished MP4 with PyAV (a different FFmpeg build from the writer's) to check it."""

import io
import struct

import av


def top_level_boxes(path):
    """The names of an MP4's top-level boxes, in file order."""
    names = []
    with open(path, "rb") as handle:
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return names
            size, name = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", handle.read(8))[0]
                handle.seek(size - 16, 1)
            elif size == 0:
                names.append(name.decode("latin-1"))
                return names
            else:
                handle.seek(size - 8, 1)
            names.append(name.decode("latin-1"))


def inspect_mp4(path):
    """Decode every frame; return codec, pixel format, size, fps, frame count, box order and frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "fps": float(stream.average_rate),
            "frames": len(frames),
            "boxes": top_level_boxes(path),
            "pixels": frames,
        }


def assert_playable_mp4(path, frames, width, height, fps):
    """Assert the file is H.264/yuv420p, moov before mdat, with exactly this many frames of this size."""
    info = inspect_mp4(path)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p", info
    assert (info["frames"], info["width"], info["height"]) == (frames, width, height), info
    assert abs(info["fps"] - fps) < 1e-6, info
    assert info["boxes"].index("moov") < info["boxes"].index("mdat"), info["boxes"]
    return info


def decode_image(data):
    """Decode a still image (e.g. a poster JPEG) from bytes to an RGB array (height, width, 3)."""
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def inspect_image(data):
    """Decode a still image from bytes: its codec, size and top-left pixel."""
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        return {"codec": container.streams.video[0].codec_context.name, "width": frame.width,
                "height": frame.height, "pixel": frame.to_ndarray(format="rgb24")[0, 0]}
