"""The four HunyuanVideo families' demo models: built offline, recognised, and generating on CPU.

Each demo is built once per session by `python -m runner.demo_models` (the `demo_folders`
fixture in tests/conftest.py), recognised by
`families.family_of` from its model_index.json, loaded with its diffusers pipeline
class from the folder alone (offline), and run for a few tiny steps: the video that
comes out must have the frame count and size the family's rules predict.
"""

import inspect
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import diffusers  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from diffusers.pipelines.hunyuan_video1_5.image_processor import HunyuanVideo15ImageProcessor  # noqa: E402

from hunyuan_core import families  # noqa: E402
from hunyuan_core.model_source import METADATA_FILE  # noqa: E402
from runner import demo_models  # noqa: E402
from runner.pictures import picture  # noqa: E402

DEMOS = {
    "demo-hunyuanvideo": "hunyuanvideo",
    "demo-hunyuanvideo-i2v": "hunyuanvideo-i2v",
    "demo-hunyuanvideo-1.5": "hunyuanvideo-1.5",
    "demo-hunyuanvideo-1.5-i2v": "hunyuanvideo-1.5-i2v",
}
FRAMES = 9
STEPS = 3
# A size no family takes as it is (not a multiple of 16, not a bucket), and images of
# both orientations, so every size rule has something to do.
REQUESTED_SIZE = (264, 200)
IMAGES = {"demo-hunyuanvideo-i2v": (200, 120), "demo-hunyuanvideo-1.5-i2v": (150, 260)}


@pytest.mark.parametrize("demo", DEMOS)
def test_demo_folder_names_its_family(demo_folders, demo):
    folder = demo_folders[demo]
    family = families.family_of(folder)
    assert family.name == DEMOS[demo]
    assert family.demo_name == demo
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == family.pipeline_class
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["name"] == family.demo_folder and meta["demo"] is True
    # Small enough to build in every test session and ship nowhere: a few MB at most.
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 20 * 2**20, f"{demo} is {size / 2**20:.1f} MB"


@pytest.mark.parametrize("demo", DEMOS)
def test_demo_generates_the_size_and_frames_its_family_predicts(demo_folders, demo):
    folder = demo_folders[demo]
    family = families.family_of(folder)
    pipeline_class = getattr(diffusers, family.pipeline_class)
    pipe = pipeline_class.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    kwargs = demo_models.prepare_pipeline(pipe, folder)
    width, height = REQUESTED_SIZE
    if family.takes_image:
        image = picture(*IMAGES[demo])
        kwargs["image"] = image
        expected = families.size_for_image(family, folder, *image.size, width, height)
    else:
        expected = families.size_for_request(family, folder, width, height)
    if not (family.takes_image and family.bucketed):  # 1.5 image-to-video takes no size: it picks the bucket
        kwargs["width"], kwargs["height"] = expected

    # Per-step progress: a step callback where the pipeline has one, the scheduler's step otherwise.
    assert ("callback_on_step_end" in inspect.signature(pipeline_class.__call__).parameters) == family.step_callback
    scheduler_steps, callback_steps = [], []
    step = pipe.scheduler.step
    pipe.scheduler.step = lambda *a, **k: scheduler_steps.append(1) or step(*a, **k)
    if family.step_callback:
        kwargs["callback_on_step_end"] = lambda _p, i, _t, outputs: callback_steps.append(i) or outputs

    video = pipe(prompt='A cat holds a sign that says "HELLO".', num_frames=FRAMES, num_inference_steps=STEPS,
                 generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).frames
    video = np.asarray(video)

    frames = families.output_frame_count(family, folder, FRAMES)
    assert video.shape == (1, frames, expected[1], expected[0], 3)
    assert families.is_valid_frame_count(family, frames)
    assert expected[0] % family.size_multiple == 0 and expected[1] % family.size_multiple == 0
    assert np.isfinite(video).all() and video.min() >= 0.0 and video.max() <= 1.0
    assert len(scheduler_steps) == STEPS
    assert callback_steps == (list(range(STEPS)) if family.step_callback else [])


@pytest.mark.parametrize("demo", ["demo-hunyuanvideo-1.5", "demo-hunyuanvideo-1.5-i2v"])
def test_chat_template_crop_lands_on_the_prompt(demo_folders, demo):
    """The demo's crop index cuts exactly the chat template's prefix, as 108 does for the real tokenizer."""
    folder = demo_folders[demo]
    # (The 1.5 pipelines cannot be made without their VAE: __init__ reads vae.config.)
    pipe = getattr(diffusers, families.family_of(folder).pipeline_class).from_pretrained(
        folder, local_files_only=True, transformer=None, text_encoder=None, text_encoder_2=None,
        **({"image_encoder": None} if demo.endswith("i2v") else {}))
    demo_models.prepare_pipeline(pipe, folder)
    conversation = [{"role": "system", "content": pipe.system_message}, {"role": "user", "content": "Zebra run"}]
    ids = pipe.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"]
    kept = pipe.tokenizer.decode(ids[pipe.prompt_template_encode_start_idx:])
    assert kept.startswith("Zebra run<|im_end|>")


def test_llava_template_places_the_image_tokens(demo_folders):
    folder = demo_folders["demo-hunyuanvideo-i2v"]
    pipe = diffusers.HunyuanVideoImageToVideoPipeline.from_pretrained(
        folder, local_files_only=True, transformer=None, vae=None, text_encoder_2=None)
    template = demo_models.prepare_pipeline(pipe, folder)["prompt_template"]
    ids = pipe.tokenizer(template["template"].format("Zebra"))["input_ids"]
    assert ids[template["image_emb_start"]] == pipe.text_encoder.config.image_token_index
    assert pipe.tokenizer.decode(ids[template["crop_start"]:]).startswith("Zebra<|eot_id|>")
    # The tiny vision tower yields as many image tokens as the real one (576).
    assert template["image_emb_len"] == 576 == pipe.text_encoder.config.image_seq_length


@pytest.mark.parametrize("target", [256, 640, 960])
def test_buckets_match_the_pipelines_own_choice(target):
    """families.nearest_bucket predicts what HunyuanVideo15ImageProcessor picks, for every shape."""
    processor = HunyuanVideo15ImageProcessor(vae_scale_factor=16)
    for width, height in [(16, 9), (9, 16), (1, 1), (4, 3), (3, 4), (640, 480), (200, 120), (150, 260),
                          (4000, 100), (100, 4000), (1920, 1081), (1080, 1920), (700, 699)]:
        expected_height, expected_width = processor.calculate_default_height_width(height, width, target)
        assert families.nearest_bucket(width, height, target) == (expected_width, expected_height), (width, height)


def test_unknown_or_missing_pipeline_class_is_a_clear_error(tmp_path):
    with pytest.raises(families.UnknownFamilyError, match="no readable model_index.json"):
        families.family_of(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    with pytest.raises(families.UnknownFamilyError, match="'WanPipeline'.*HunyuanVideo15Pipeline"):
        families.family_of(tmp_path)
    # The folder's name says nothing: a 1.5 folder called "HunyuanVideo-13B" is still 1.5.
    named = tmp_path / "HunyuanVideo-13B"
    named.mkdir()
    (named / "model_index.json").write_text(json.dumps({"_class_name": "HunyuanVideo15Pipeline"}))
    assert families.family_of(named).name == "hunyuanvideo-1.5"
