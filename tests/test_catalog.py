"""MODELS: parsing every entry shape, refusing every malformed one at start, and each model's parameter table.

No app, no model build: the catalog reads settings and model_index.json files only.
"""

import json

import pytest

from hunyuan_core import catalog, config, families, model_source, models_setting, params
from hunyuan_core.errors import InvalidInput
from hunyuan_core.model_source import EMBEDDED_MODEL_NAME


def model_folder(root, name, class_name, target_size=None):
    """A folder holding what the service reads of a diffusers model: model_index.json (and a 1.5 target size)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    if target_size is not None:
        (folder / "transformer").mkdir()
        (folder / "transformer" / "config.json").write_text(json.dumps({"target_size": target_size}))
    return folder


def settings(tmp_path, **environ):
    return config.from_environ({"DATA_DIR": str(tmp_path / "data"), **environ})


def test_entries_take_names_options_demo_names_and_folders():
    entries = models_setting.parse(" demo-hunyuanvideo , fast=/models/hv15-480p;min_steps=8;DEFAULT_STEPS=8; "
                                   "max_steps=12,"
                            "/models/other;max_flow_shift=20;default_flow_shift=17.5")
    assert [(e.name, e.source) for e in entries] == [
        ("demo-hunyuanvideo", "demo-hunyuanvideo"), ("fast", "/models/hv15-480p"), ("other", "/models/other")]
    assert entries[0].options == {}
    assert entries[1].options == {"min_steps": 8, "default_steps": 8, "max_steps": 12}
    assert entries[2].options == {"max_flow_shift": 20.0, "default_flow_shift": 17.5}
    # Paths may hold '=' after a name; a demo may be renamed.
    assert models_setting.parse("a=/x/b=c")[0].source == "/x/b=c"
    assert models_setting.parse("small=demo-hunyuanvideo-1.5")[0].name == "small"


@pytest.mark.parametrize("value, words", [
    (" , ", "names no model"),
    ("fast=", "no model folder or demo name"),
    ("=demo-hunyuanvideo", "an empty name before '='"),
    ("my model=/models/x", "the name 'my model' must be 1 to 64 letters"),
    ("/models/with space", "the name 'with space' must be"),
    ("demo-hunyuanvideo-2", "unknown demo model 'demo-hunyuanvideo-2'"),
    ("demo-hunyuanvideo;steps=8", "unknown option 'steps'"),
    ("demo-hunyuanvideo;min_steps", "option min_steps has no value"),
    ("demo-hunyuanvideo;min_steps=", "option min_steps has no value"),
    ("demo-hunyuanvideo;min_steps=4;min_steps=5", "option min_steps is given twice"),
    ("demo-hunyuanvideo;max_steps=12.5", "option max_steps must be an integer, not '12.5'"),
    ("demo-hunyuanvideo;max_flow_shift=much", "option max_flow_shift must be a number"),
    ("demo-hunyuanvideo;min_steps=0", "option min_steps must be at least 1"),
    ("demo-hunyuanvideo;max_flow_shift=nan", "option max_flow_shift must be at least"),
    ("demo-hunyuanvideo;max_flow_shift=inf", "option max_flow_shift must be at least"),
    ("demo-hunyuanvideo, demo-hunyuanvideo", "the name 'demo-hunyuanvideo' is given twice"),
    ("a=/models/x, a=/models/y", "the name 'a' is given twice"),
])
def test_a_malformed_models_setting_stops_the_server_naming_it(value, words):
    with pytest.raises(ValueError, match="MODELS") as caught:
        config.from_environ({"MODELS": value})
    assert words in str(caught.value)


def test_folders_are_read_for_their_family_and_an_unknown_one_stops_the_server(tmp_path):
    hv15 = model_folder(tmp_path, "hv15", "HunyuanVideo15Pipeline", 640)
    models = catalog.from_settings(settings(tmp_path, MODELS=f"{hv15},demo-hunyuanvideo-1.5-i2v"))
    assert [(m.name, m.family.name, m.default) for m in models.models] == [
        ("hv15", "hunyuanvideo-1.5", True), ("demo-hunyuanvideo-1.5-i2v", "hunyuanvideo-1.5-i2v", False)]
    demo = models.models[1].source
    assert demo.embedded and demo.path.name == "tiny-random-hunyuanvideo-1.5-i2v-v1"
    other = model_folder(tmp_path, "sd", "StableDiffusionPipeline")
    with pytest.raises(ValueError, match=r"^MODELS: sd: .*StableDiffusionPipeline.*not a HunyuanVideo family"):
        catalog.from_settings(settings(tmp_path, MODELS=f"demo-hunyuanvideo, {other}"))
    (other / "model_index.json").write_text("{not json")
    with pytest.raises(ValueError, match="MODELS: sd: .* is not valid JSON"):
        catalog.from_settings(settings(tmp_path, MODELS=str(other)))
    with pytest.raises(ValueError, match="MODEL_PATH: sd: "):
        catalog.from_settings(settings(tmp_path, MODEL_PATH=str(other)))


def test_limits_that_contradict_each_other_stop_the_server(tmp_path):
    with pytest.raises(ValueError, match=r"^MODELS entry 1 .*: num_inference_steps: need minimum <= default <= "
                                         r"maximum, not 4, 50, 30"):
        catalog.from_settings(settings(tmp_path, MODELS="demo-hunyuanvideo-1.5;max_steps=30"))
    with pytest.raises(ValueError, match="flow_shift: need minimum <= default <= maximum"):
        catalog.from_settings(settings(tmp_path, MODELS="demo-hunyuanvideo;max_flow_shift=3"))
    with pytest.raises(ValueError, match="MODELS and MODEL_PATH are both set"):
        catalog.from_settings(settings(tmp_path, MODELS="demo-hunyuanvideo", MODEL_PATH=str(tmp_path)))


def test_without_models_the_one_model_is_todays_demo_or_model_path(tmp_path):
    models = catalog.from_settings(settings(tmp_path))
    (default,) = models.models
    assert default.name == "demo-hunyuanvideo" and default.family.name == "hunyuanvideo"
    assert default.source.embedded and default.source.path == (tmp_path / "data" / "models" / EMBEDDED_MODEL_NAME)
    assert default.parameters == params.PARAMETERS
    folder = model_folder(tmp_path, "HunyuanVideo", "HunyuanVideoPipeline")
    (named,) = catalog.from_settings(settings(tmp_path, MODEL_PATH=str(folder))).models
    assert named.name == "HunyuanVideo" and not named.source.embedded and named.source.setting == "MODEL_PATH"
    # A MODEL_PATH that is not there yet is not ready rather than an error (its requests get a 503).
    (missing,) = catalog.from_settings(settings(tmp_path, MODEL_PATH=str(tmp_path / "later"))).models
    assert missing.describe()["ready"] is False and missing.family.name == "hunyuanvideo"


def test_each_model_gets_its_familys_table_the_global_limits_and_its_own_options(tmp_path):
    models = catalog.from_settings(settings(
        tmp_path, MIN_STEPS="4", DEFAULT_STEPS="6", MAX_STEPS="12", DEFAULT_FLOW_SHIFT="17", MAX_FLOW_SHIFT="20",
        MODELS="demo-hunyuanvideo, demo-hunyuanvideo-1.5, fast=demo-hunyuanvideo-1.5;min_steps=8;default_steps=8;"
               "max_steps=12;default_flow_shift=3"))
    table = {m.name: {p.name: p for p in m.parameters} for m in models.models}
    # The 13B text-to-video table takes the global settings exactly as params.parameter_table applies them.
    documented = models.get("demo-hunyuanvideo")
    assert documented.parameters == params.parameter_table(documented._settings)
    steps = table["demo-hunyuanvideo"]["num_inference_steps"]
    assert (steps.minimum, steps.default, steps.maximum) == (4, 6, 12)
    # 1.5 keeps its family's recommendations: 121 frames, guidance 6, flow shift 5, 4-50 steps; no embedded guidance.
    hv15 = table["demo-hunyuanvideo-1.5"]
    assert (hv15["video_length"].default, hv15["video_length"].maximum) == (121, 121)
    assert (hv15["num_inference_steps"].minimum, hv15["num_inference_steps"].maximum) == (4, 50)
    assert (hv15["guidance_scale"].default, hv15["flow_shift"].default) == (6.0, 5.0)
    assert "embedded_guidance_scale" not in hv15
    fast = table["fast"]
    assert (fast["num_inference_steps"].minimum, fast["num_inference_steps"].default,
            fast["num_inference_steps"].maximum) == (8, 8, 12)
    assert fast["flow_shift"].default == 3.0


def test_an_unknown_name_lists_the_known_ones(tmp_path):
    models = catalog.from_settings(settings(tmp_path, MODELS="demo-hunyuanvideo, demo-hunyuanvideo-1.5"))
    assert models.get(None) is models.default and models.get("demo-hunyuanvideo-1.5").family.name == "hunyuanvideo-1.5"
    with pytest.raises(InvalidInput) as caught:
        models.get("hv2")
    assert caught.value.status_code == 422 and caught.value.field == "model"
    assert caught.value.detail == ("Invalid request: model: Unknown model 'hv2'; known models: demo-hunyuanvideo, "
                                   "demo-hunyuanvideo-1.5.")


def test_demo_builders_use_each_demos_own_builder(tmp_path):
    models = catalog.from_settings(settings(tmp_path, MODELS="demo-hunyuanvideo, demo-hunyuanvideo-1.5"))
    builders = model_source.Builders(models.sources())
    commands = [b._command()[1:] for b in builders.builders]
    assert commands[0] == ["-m", "runner.tiny_model", str(models.models[0].source.path)]
    assert commands[1] == ["-m", "runner.demo_models", "demo-hunyuanvideo-1.5", str(models.models[1].source.path)]
    assert builders.not_ready_paths() == {str(m.source.path) for m in models.models} and not builders.ready()
    assert models.models[1].source.name == families.BY_DEMO_NAME["demo-hunyuanvideo-1.5"].demo_folder
