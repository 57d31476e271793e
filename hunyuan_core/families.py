"""The HunyuanVideo model families: what each pipeline class needs, recommends and ignores.

A model folder's family is read from its `model_index.json` (`_class_name`, the
diffusers pipeline class that saved it), never guessed from the folder's name.
Each family carries its task, its embedded demo model's name, its recommended
parameter table, its size and frame rules, and the request fields it does not
use (the service accepts them and names them in `adjustments`).

Sources of the recommended values are cited beside them: the diffusers 0.42.1
pipeline sources (signatures, docstring examples) and the Tencent model-card
text quoted in the project's design notes (/work/shared/NOTES.md, sections 2 and 7).

Longer than most modules (about 300 lines) because the four families' tables,
their citations and the bucket arithmetic they share belong together.
"""

import json
from dataclasses import dataclass, replace
from pathlib import Path

from hunyuan_core.model_source import EMBEDDED_MODEL_NAME
from hunyuan_core.params import PARAMETERS, nearest_multiple

TEXT_TO_VIDEO = "text-to-video"
IMAGE_TO_VIDEO = "image-to-video"

# HunyuanVideo 1.5's resolution classes: the transformer config's `target_size` is the
# side of the square whose area a bucket matches (diffusers' HunyuanVideo15ImageProcessor;
# 640 gives 848x480 for 16:9, 960 gives 1280x720).
TARGET_SIZE_480P = 640
TARGET_SIZE_720P = 960
# Tencent's bucket list keeps aspect ratios within 4:1 (generate_crop_size_list's max_ratio).
MAX_BUCKET_RATIO = 4.0


class UnknownFamilyError(ValueError):
    """A folder that is not a diffusers model of a HunyuanVideo family the service can run."""


@dataclass(frozen=True)
class Family:
    """One HunyuanVideo pipeline class and how the service drives it."""

    name: str
    pipeline_class: str
    task: str
    demo_name: str
    # The folder name the demo is built under; versioned, so an old build is never reused.
    demo_folder: str
    parameters: tuple
    # Request fields the pipeline has no use for: accepted, and named in `adjustments`.
    unused_fields: tuple
    # Pixels per latent position (VAE spatial compression) and latent positions per token (patch).
    vae_spatial: int
    vae_temporal: int
    patch_size: int
    # Whether width/height come from a bucket of the model's `target_size` (1.5) or are free multiples.
    bucketed: bool
    # Real classifier-free guidance: the pipeline's `true_cfg_scale` argument, or its `guider` component.
    cfg: str
    # Whether `__call__` takes `callback_on_step_end` (1.5 does not: hook scheduler.step instead).
    step_callback: bool

    @property
    def takes_image(self):
        """True for image-to-video families: a request must bring an image."""
        return self.task == IMAGE_TO_VIDEO

    @property
    def size_multiple(self):
        """Pixel sizes must be multiples of this: VAE spatial compression times the patch size."""
        return self.vae_spatial * self.patch_size

    @property
    def frame_step(self):
        """Frame counts are `frame_step * k + 1`: the causal VAE keeps the first frame and packs 4 per latent."""
        return self.vae_temporal

    @property
    def defaults(self):
        """The recommended value of each parameter, by name."""
        return {p.name: p.default for p in self.parameters}


def _param(name, **changes):
    """A parameter of the 13B text-to-video table (the API document's), with some fields changed."""
    base = next(p for p in PARAMETERS if p.name == name)
    return replace(base, **changes)


# --- HunyuanVideo 13B image-to-video -------------------------------------------------
# diffusers' HunyuanVideoImageToVideoPipeline example: `guidance_scale=6.0` (embedded,
# distilled guidance) for hunyuanvideo-community/HunyuanVideo-I2V, true CFG off
# (`true_cfg_scale=1.0`), 50 steps, 720x1280, 129 frames (its `__call__` defaults),
# exported at fps=15. Tencent's HunyuanVideo-I2V card: 720p, 129 frames, flow shift 17
# (dynamic) by default, `--i2v-stability --flow-shift 7.0` for steadier video (NOTES.md §7:
# "flow shift 7 stable / 17 dynamic"); 7 is the default here, the steadier of the two.
# Sizes: the pipeline stretches the image to the height/width it is given, so the service
# picks them: the bucket nearest the image's aspect ratio with about width x height pixels
# (Tencent's I2V offers 360p/540p/720p classes; its exact bucket list is not in the notes,
# so 1.5's bucket enumeration is used at the requested area).
_SIZE_FROM_IMAGE = "With the image's aspect ratio, sets the video's area: the nearest size bucket of about " \
                   "width x height pixels is used."
_I2V_13B_PARAMETERS = (
    _param("width", default=1280, description=_SIZE_FROM_IMAGE),
    _param("height", default=720, description=_SIZE_FROM_IMAGE),
    _param("video_length", default=129),
    _param("fps", default=15),
    _param("num_inference_steps", default=50),
    _param("guidance_scale"),
    _param("flow_shift", default=7.0, maximum=20.0,
           description="Flow shift of the flow-matching scheduler: 7 steadier, 17 more motion (Tencent)."),
    _param("embedded_guidance_scale"),
)

# --- HunyuanVideo 1.5 ------------------------------------------------------------------
# diffusers' HunyuanVideo15Pipeline `__call__`: num_frames=121, num_inference_steps=50, no
# height/width (a 16:9 bucket of the transformer's target_size: 848x480 at 480p), CFG
# through its `guider` (ClassifierFreeGuidance, 6.0 in the released checkpoints; NOTES.md
# §7), no embedded guidance. Tencent (NOTES.md §7): flow shift 5 at 480p, 9 for 720p
# text-to-video and 7 for 720p image-to-video; step-distilled 480p checkpoints run 8 or 12
# steps (hence a minimum of 4). diffusers' 1.5 image-to-video example exports at fps=24,
# Tencent's 1.5 videos are 24 fps (121 frames = 5 s).
_T2V_15_PARAMETERS = (
    _param("width", default=848, description="Video width; the model's nearest size bucket is used."),
    _param("height", default=480, description="Video height; the model's nearest size bucket is used."),
    _param("video_length", default=121, maximum=121,
           description="Number of frames; rounded to the nearest 4k+1 (13, 17, ..., 121)."),
    _param("fps", default=24),
    _param("num_inference_steps", default=50, minimum=4, maximum=50),
    _param("guidance_scale", default=6.0,
           description="Classifier-free guidance through the model's guider; above 1.0 it runs the model "
                       "twice per step."),
    _param("flow_shift", default=5.0, maximum=20.0,
           description="Flow shift of the flow-matching scheduler (Tencent: 5 at 480p, 7-9 at 720p)."),
)
_I2V_15_PARAMETERS = tuple(
    replace(p, description="Ignored: the size follows the image's aspect ratio.") if p.name in ("width", "height")
    else p
    for p in _T2V_15_PARAMETERS
)

_13B = dict(vae_spatial=8, vae_temporal=4, patch_size=2, bucketed=False, cfg="true_cfg_scale", step_callback=True)
_15 = dict(vae_spatial=16, vae_temporal=4, patch_size=1, bucketed=True, cfg="guider", step_callback=False)

FAMILIES = {
    f.pipeline_class: f
    for f in (
        Family("hunyuanvideo", "HunyuanVideoPipeline", TEXT_TO_VIDEO, "demo-hunyuanvideo", EMBEDDED_MODEL_NAME,
               PARAMETERS, (), **_13B),
        Family("hunyuanvideo-i2v", "HunyuanVideoImageToVideoPipeline", IMAGE_TO_VIDEO, "demo-hunyuanvideo-i2v",
               "tiny-random-hunyuanvideo-i2v-v1", _I2V_13B_PARAMETERS, (), **_13B),
        Family("hunyuanvideo-1.5", "HunyuanVideo15Pipeline", TEXT_TO_VIDEO, "demo-hunyuanvideo-1.5",
               "tiny-random-hunyuanvideo-1.5-v1", _T2V_15_PARAMETERS, ("embedded_guidance_scale",), **_15),
        Family("hunyuanvideo-1.5-i2v", "HunyuanVideo15ImageToVideoPipeline", IMAGE_TO_VIDEO,
               "demo-hunyuanvideo-1.5-i2v", "tiny-random-hunyuanvideo-1.5-i2v-v1", _I2V_15_PARAMETERS,
               ("width", "height", "embedded_guidance_scale"), **_15),
    )
}
BY_NAME = {f.name: f for f in FAMILIES.values()}
BY_DEMO_NAME = {f.demo_name: f for f in FAMILIES.values()}


def family_of(folder):
    """The family of the diffusers model in `folder`, from its model_index.json `_class_name`.

    Raises UnknownFamilyError with a sentence an operator can act on when the
    folder has no readable model_index.json or names a pipeline no family runs.
    """
    index_file = Path(folder) / "model_index.json"
    try:
        index = json.loads(index_file.read_text())
    except OSError:
        raise UnknownFamilyError(f"{folder} has no readable model_index.json: it is not a diffusers-format model")
    except ValueError:
        raise UnknownFamilyError(f"{index_file} is not valid JSON")
    class_name = index.get("_class_name") if isinstance(index, dict) else None
    if class_name not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise UnknownFamilyError(
            f"{index_file} names pipeline class {class_name!r}, which is not a HunyuanVideo family this "
            f"service runs (known: {known})"
        )
    return FAMILIES[class_name]


def by_demo_name(demo_name):
    """The family whose embedded demo model is called `demo_name`; UnknownFamilyError if none."""
    try:
        return BY_DEMO_NAME[demo_name]
    except KeyError:
        known = ", ".join(sorted(BY_DEMO_NAME))
        raise UnknownFamilyError(f"unknown demo model {demo_name!r} (known: {known})") from None


def target_size(folder):
    """A 1.5 model's resolution class: its transformer config's `target_size` (640 = 480p, 960 = 720p)."""
    try:
        config = json.loads((Path(folder) / "transformer" / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    return int(config.get("target_size", TARGET_SIZE_480P))


def size_buckets(target, patch=16, max_ratio=MAX_BUCKET_RATIO):
    """The (height, width) buckets of about `target`x`target` pixels, in multiples of `patch`.

    The same enumeration as Tencent's `generate_crop_size_list` (used by diffusers'
    HunyuanVideo15ImageProcessor): every grid of at most (target/patch)^2 patches,
    walking from the widest to the tallest, within `max_ratio` of square.
    """
    patches = round((target / patch) ** 2)
    buckets = []
    first, second = patches, 1
    while first > 0:
        if max(first, second) / min(first, second) <= max_ratio:
            buckets.append((first * patch, second * patch))
        if (second + 1) * first <= patches:
            second += 1
        else:
            first -= 1
    return buckets


def nearest_bucket(width, height, target, patch=16):
    """The (width, height) the 1.5 pipelines use for a picture of this shape at `target`.

    Mirrors diffusers' `get_closest_ratio` exactly, ties included (the image-to-video
    pipeline picks the size itself, so the service must predict it, not approximate it):
    landscape pictures get a bucket at least as wide, portrait ones one at least as tall.
    """
    buckets = size_buckets(target, patch)
    aspect = float(height) / float(width)
    ratios = [round(h / w, 5) for h, w in buckets]
    if aspect >= 1:
        candidates = [(i, r - aspect) for i, r in enumerate(ratios) if r - aspect <= 0]
    else:
        candidates = [(i, r - aspect) for i, r in enumerate(ratios) if r - aspect >= 0]
    best = min(candidates, key=lambda pair: abs(pair[1]))[0]
    bucket_height, bucket_width = buckets[best]
    return bucket_width, bucket_height


def recommended_flow_shift(family, target):
    """Tencent's flow shift for a 1.5 model of this resolution class (5 at 480p; 9 T2V / 7 I2V at 720p)."""
    if family.vae_spatial != 16 or target < TARGET_SIZE_720P:
        return family.defaults["flow_shift"]
    return 7.0 if family.takes_image else 9.0


def latent_shape(family, width, height, frames):
    """(latent frames, latent height, latent width) of a video of this size."""
    return ((frames - 1) // family.vae_temporal + 1, height // family.vae_spatial, width // family.vae_spatial)


def video_tokens(family, width, height, frames):
    """Transformer tokens of the video stream: latent frames x (H/16) x (W/16) for every family."""
    latent_frames, latent_height, latent_width = latent_shape(family, width, height, frames)
    return latent_frames * (latent_height // family.patch_size) * (latent_width // family.patch_size)


def size_for_request(family, folder, width, height):
    """The (width, height) a text-to-video model of this family generates for a requested size.

    13B: the nearest multiples of 16. 1.5: the bucket of the model's resolution class
    nearest the requested shape (its transformer was trained on those sizes only).
    """
    if family.bucketed:
        return nearest_bucket(width, height, target_size(folder), family.size_multiple)
    return nearest_multiple(width, family.size_multiple), nearest_multiple(height, family.size_multiple)


def size_for_image(family, folder, image_width, image_height, width=None, height=None):
    """The (width, height) an image-to-video model of this family generates from an image of this size.

    1.5 decides this itself (the bucket of its `target_size` nearest the image's
    shape; it takes no width/height). The 13B pipeline is given a size: the bucket
    nearest the image's shape with about `width` x `height` pixels (its defaults: 720p).
    """
    if family.bucketed:
        return nearest_bucket(image_width, image_height, target_size(folder), family.size_multiple)
    defaults = family.defaults
    area_side = ((width or defaults["width"]) * (height or defaults["height"])) ** 0.5
    target = max(nearest_multiple(round(area_side), family.size_multiple), family.size_multiple)
    return nearest_bucket(image_width, image_height, target, family.size_multiple)


def output_frame_count(family, folder, frames):
    """Frames in the finished video when `frames` are asked for.

    The first-generation 13B image-to-video checkpoint (33 input channels,
    `image_condition_type` "latent_concat") drops its first 4 decoded frames;
    the current one ("token_replace") and every other family return them all.
    """
    if family.name == "hunyuanvideo-i2v":
        try:
            config = json.loads((Path(folder) / "transformer" / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        if config.get("image_condition_type") == "latent_concat":
            return frames - 4
    return frames


def is_valid_frame_count(family, frames):
    """True when `frames` is `frame_step * k + 1` (the VAE would silently shorten any other count)."""
    return frames >= 1 and (frames - 1) % family.frame_step == 0

