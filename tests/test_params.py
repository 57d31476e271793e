"""Parameter table, size rounding and seeds."""

import pytest

from hunyuan_core import params


@pytest.mark.parametrize(
    "value, expected",
    [(480, 480), (360, 368), (359, 352), (368, 368), (256, 256), (1280, 1280), (1272, 1280), (263, 256), (264, 272)],
)
def test_sizes_round_to_nearest_multiple_of_16(value, expected):
    assert params.nearest_multiple(value, 16) == expected


@pytest.mark.parametrize(
    "frames, expected", [(13, 13), (14, 13), (15, 17), (16, 17), (61, 61), (60, 61), (62, 61), (63, 65), (129, 129)]
)
def test_frames_round_to_nearest_4k_plus_1(frames, expected):
    assert params.nearest_frame_count(frames) == expected
    assert (params.nearest_frame_count(frames) - 1) % 4 == 0


def test_rounding_keeps_every_value_of_the_documented_ranges_in_range():
    for p in params.PARAMETERS:
        if p.name in ("width", "height"):
            assert all(p.minimum <= params.nearest_multiple(v, 16) <= p.maximum for v in range(p.minimum, p.maximum + 1))
        if p.name == "video_length":
            assert all(p.minimum <= params.nearest_frame_count(v) <= p.maximum for v in range(p.minimum, p.maximum + 1))


def test_defaults_match_the_api_document():
    defaults = {p.name: p.default for p in params.PARAMETERS}
    assert defaults == {
        "width": 640,
        "height": 480,
        "video_length": 61,
        "fps": 15,
        "num_inference_steps": 30,
        "guidance_scale": 1.0,
        "flow_shift": 7.0,
        "embedded_guidance_scale": 6.0,
    }
    ranges = {p.name: (p.minimum, p.maximum) for p in params.PARAMETERS}
    assert ranges == {
        "width": (256, 1280),
        "height": (256, 1280),
        "video_length": (13, 129),
        "fps": (8, 30),
        "num_inference_steps": (10, 50),
        "guidance_scale": (1.0, 20.0),
        "flow_shift": (0.0, 10.0),
        "embedded_guidance_scale": (1.0, 20.0),
    }


def test_resolve_records_what_it_changed_and_why():
    used, adjustments = params.resolve({"prompt": "p", "width": 480, "height": 360, "video_length": 60, "seed": 7})
    assert (used["width"], used["height"], used["video_length"], used["seed"]) == (480, 368, 61, 7)
    assert any("height 360 rounded to 368" in a for a in adjustments)
    assert any("video_length 60 rounded to 61" in a for a in adjustments)
    assert not any("seed" in a for a in adjustments)


def test_missing_seed_is_drawn_and_recorded():
    used_a, adjustments = params.resolve({"prompt": "p"})
    used_b, _ = params.resolve({"prompt": "p"})
    assert isinstance(used_a["seed"], int) and 0 <= used_a["seed"] < params.DRAWN_SEED_LIMIT
    assert used_a["seed"] != used_b["seed"]  # 1 in 4 billion to collide
    assert any(str(used_a["seed"]) in a for a in adjustments)


def test_zero_flow_shift_is_raised_to_a_usable_value():
    used, adjustments = params.resolve({"prompt": "p", "flow_shift": 0.0})
    assert used["flow_shift"] == params.MIN_FLOW_SHIFT
    assert any("flow_shift 0 raised" in a for a in adjustments)
