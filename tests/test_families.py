"""hunyuan_core/families.py without torch: family tables, size and frame rules, token counts."""

import json

import pytest

from hunyuan_core import families, params


def _folder(tmp_path, class_name, transformer=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    if transformer is not None:
        (tmp_path / "transformer").mkdir()
        (tmp_path / "transformer" / "config.json").write_text(json.dumps(transformer))
    return tmp_path


def test_the_13b_text_to_video_family_keeps_the_api_documents_table():
    family = families.BY_NAME["hunyuanvideo"]
    assert family.parameters is params.PARAMETERS
    assert family.unused_fields == ()
    assert family.demo_name == "demo-hunyuanvideo"
    assert (family.size_multiple, family.frame_step) == (16, 4)


def test_every_family_has_a_distinct_demo_and_a_complete_table():
    names = [p.name for p in params.PARAMETERS]
    assert len({f.demo_name for f in families.FAMILIES.values()}) == 4
    assert len({f.demo_folder for f in families.FAMILIES.values()}) == 4
    for family in families.FAMILIES.values():
        table = [p.name for p in family.parameters]
        # Every API field is either in the family's table or named as unused: never silently dropped.
        assert sorted(table + [n for n in family.unused_fields if n not in table]) == sorted(names), family.name
        assert family.size_multiple == 16
        for p in family.parameters:
            assert p.minimum <= p.default <= p.maximum, (family.name, p.name)


def test_hunyuanvideo_15_recommendations():
    t2v = families.BY_NAME["hunyuanvideo-1.5"]
    i2v = families.BY_NAME["hunyuanvideo-1.5-i2v"]
    assert t2v.defaults["video_length"] == 121 and t2v.defaults["guidance_scale"] == 6.0
    assert t2v.defaults["flow_shift"] == 5.0
    assert "embedded_guidance_scale" in t2v.unused_fields and "embedded_guidance_scale" not in t2v.defaults
    assert set(i2v.unused_fields) == {"width", "height", "embedded_guidance_scale"}
    assert (t2v.cfg, t2v.step_callback, i2v.takes_image, t2v.takes_image) == ("guider", False, True, False)
    # Tencent: 5 at 480p; 9 for text-to-video and 7 for image-to-video at 720p.
    assert families.recommended_flow_shift(t2v, families.TARGET_SIZE_480P) == 5.0
    assert families.recommended_flow_shift(t2v, families.TARGET_SIZE_720P) == 9.0
    assert families.recommended_flow_shift(i2v, families.TARGET_SIZE_720P) == 7.0


def test_sizes_per_family(tmp_path):
    t2v_13b = families.BY_NAME["hunyuanvideo"]
    assert families.size_for_request(t2v_13b, tmp_path, 650, 470) == (656, 464)
    folder_480p = _folder(tmp_path / "480p", "HunyuanVideo15Pipeline", {"target_size": 640})
    t2v_15 = families.family_of(folder_480p)
    # The API document's 640x480 becomes 1.5's 4:3 bucket at 480p; 16:9 is 848x480.
    assert families.size_for_request(t2v_15, folder_480p, 854, 480) == (848, 480)
    assert families.size_for_request(t2v_15, folder_480p, 640, 480) == (720, 544)
    i2v_13b = families.BY_NAME["hunyuanvideo-i2v"]
    # A 16:9 photo at the 13B image-to-video defaults (720p area) is 1280x720; at 256x256 area, 336x192.
    assert families.size_for_image(i2v_13b, tmp_path, 1920, 1080) == (1280, 720)
    assert families.size_for_image(i2v_13b, tmp_path, 1920, 1080, 256, 256) == (336, 192)


def test_token_counts_and_frames(tmp_path):
    t2v_13b = families.BY_NAME["hunyuanvideo"]
    t2v_15 = families.BY_NAME["hunyuanvideo-1.5"]
    # 13B: 8x VAE then 2x2 patches; 1.5: 16x VAE, no patching: the same 16 pixels per token side.
    assert families.latent_shape(t2v_13b, 640, 480, 61) == (16, 60, 80)
    assert families.video_tokens(t2v_13b, 640, 480, 61) == 16 * 30 * 40
    assert families.latent_shape(t2v_15, 848, 480, 121) == (31, 30, 53)
    assert families.video_tokens(t2v_15, 848, 480, 121) == 31 * 30 * 53
    assert families.is_valid_frame_count(t2v_15, 121) and not families.is_valid_frame_count(t2v_15, 120)
    i2v_13b = families.BY_NAME["hunyuanvideo-i2v"]
    first = _folder(tmp_path, "HunyuanVideoImageToVideoPipeline", {"image_condition_type": "latent_concat"})
    assert families.output_frame_count(i2v_13b, first, 129) == 125
    assert families.output_frame_count(i2v_13b, tmp_path / "missing", 129) == 129


def test_family_comes_from_model_index_not_folder_name(tmp_path):
    folder = _folder(tmp_path / "HunyuanVideo-1.5-i2v", "HunyuanVideoPipeline")
    assert families.family_of(folder).name == "hunyuanvideo"
    (folder / "model_index.json").write_text("{not json")
    with pytest.raises(families.UnknownFamilyError, match="not valid JSON"):
        families.family_of(folder)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "HunyuanVideoFramepackPipeline"}))
    with pytest.raises(families.UnknownFamilyError, match="HunyuanVideoFramepackPipeline"):
        families.family_of(folder)
    with pytest.raises(families.UnknownFamilyError, match="demo-hunyuanvideo-1.5-i2v"):
        families.by_demo_name("demo-wan")
