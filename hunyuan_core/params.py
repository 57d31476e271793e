"""The generation parameters: defaults, ranges, and the sizes the model can take.

One table drives the request schema, `/api/info` and the OpenAPI document, so the three
cannot disagree with each other or with the API document.
"""

import secrets
from dataclasses import dataclass, replace

# HunyuanVideo patchifies latents 2x2 after an 8x spatial VAE: pixel sizes must be
# multiples of 16. The VAE compresses time 4x and keeps the first frame, so frame
# counts must be 4k+1 (any other count would silently come out shorter).
SIZE_MULTIPLE = 16
FRAME_STEP = 4

# Seeds a user may send. JSON clients in JavaScript lose precision above 2**53.
MAX_SEED = 2**53 - 1
# Drawn seeds stay within 32 bits so they are easy to read back and retype.
DRAWN_SEED_LIMIT = 2**32
MAX_PROMPT_CHARS = 2000
# The scheduler maps sigma s to shift*s / (1 + (shift-1)*s): at shift 0 its first
# step is 0/0. The API document allows 0.0, so such values are raised to this.
MIN_FLOW_SHIFT = 0.01


@dataclass(frozen=True)
class Parameter:
    """One request field of `POST /api/generate`."""

    name: str
    kind: type
    default: object
    minimum: object
    maximum: object
    description: str


PARAMETERS = (
    Parameter("width", int, 640, 256, 1280, "Video width in pixels; rounded to the nearest multiple of 16."),
    Parameter("height", int, 480, 256, 1280, "Video height in pixels; rounded to the nearest multiple of 16."),
    Parameter("video_length", int, 61, 13, 129, "Number of frames; rounded to the nearest 4k+1 (13, 17, ..., 129)."),
    Parameter("fps", int, 15, 8, 30, "Frames per second of the MP4 (does not change the generated frames)."),
    Parameter("num_inference_steps", int, 30, 10, 50, "Denoising steps (lower = faster)."),
    Parameter(
        "guidance_scale",
        float,
        1.0,
        1.0,
        20.0,
        "Real classifier-free guidance; above 1.0 it runs the model twice per step (about twice as slow).",
    ),
    Parameter("flow_shift", float, 7.0, 0.0, 10.0, "Flow shift of the flow-matching scheduler."),
    Parameter(
        "embedded_guidance_scale",
        float,
        6.0,
        1.0,
        20.0,
        "Distilled (embedded) guidance strength; costs nothing extra.",
    ),
)
PARAMETERS_BY_NAME = {p.name: p for p in PARAMETERS}
# Set by configuration, for step-distilled checkpoints (e.g. 6 steps at shift 17).
CONFIGURABLE = ("num_inference_steps", "flow_shift")


def parameter_table(settings):
    """The parameter table with the ranges the service's settings choose.

    MIN_STEPS / DEFAULT_STEPS / MAX_STEPS and DEFAULT_FLOW_SHIFT / MAX_FLOW_SHIFT
    replace the API document's 10-50 steps (default 30) and 0-10 shift (default 7).
    """
    table = []
    for p in PARAMETERS:
        if p.name == "num_inference_steps":
            p = replace(p, minimum=settings["MIN_STEPS"], default=settings["DEFAULT_STEPS"],
                        maximum=settings["MAX_STEPS"])
        elif p.name == "flow_shift":
            p = replace(p, default=settings["DEFAULT_FLOW_SHIFT"], maximum=settings["MAX_FLOW_SHIFT"])
        table.append(p)
    return tuple(table)


def nearest_multiple(value, multiple):
    """Round to the nearest multiple of `multiple`, halves rounding up."""
    return ((value + multiple // 2) // multiple) * multiple


def nearest_frame_count(frames):
    """Round to the nearest 4k+1 frame count, halves rounding up."""
    return nearest_multiple(frames - 1, FRAME_STEP) + 1


def resolve(request, table=PARAMETERS, family=None, folder=None, image=None):
    """Turn a validated request into the parameters the runner will use.

    Returns `(params, adjustments)`: `params` holds every value actually used
    (sizes the model can take, a concrete seed), and `adjustments` says in plain
    words what was changed and why, so the job record explains itself.

    `family` (hunyuan_core.families; None: the 13B text-to-video model) decides the
    size rules and which fields the model ignores, `folder` is the model's folder (a
    1.5 model's size buckets depend on it), `image` the input image of an
    image-to-video request (its width and height set the video's shape).
    """
    params = {p.name: request.get(p.name, p.default) for p in table}
    params["prompt"] = request["prompt"]
    params["negative_prompt"] = request.get("negative_prompt")
    adjustments = []
    unused = family.unused_fields if family is not None else ()
    for name in unused:
        params.pop(name, None)
        if request.get(name) is not None:
            adjustments.append(f"{name} is not used by {family.name} models: {_why_unused(family, name)}")
    if image is not None and family is not None:
        _size_from_image(params, family, folder, image, adjustments)
    elif family is not None and family.bucketed:
        _size_from_bucket(params, family, folder, adjustments)
    else:
        multiple = family.size_multiple if family is not None else SIZE_MULTIPLE
        for name in ("width", "height"):
            rounded = nearest_multiple(params[name], multiple)
            if rounded != params[name]:
                adjustments.append(
                    f"{name} {params[name]} rounded to {rounded}: the model needs a multiple of {multiple}"
                )
                params[name] = rounded
    frames = nearest_frame_count(params["video_length"])
    if frames != params["video_length"]:
        adjustments.append(
            f"video_length {params['video_length']} rounded to {frames}: the model makes 4k+1 frames"
        )
        params["video_length"] = frames
    if params["flow_shift"] < MIN_FLOW_SHIFT:
        adjustments.append(
            f"flow_shift {params['flow_shift']:g} raised to {MIN_FLOW_SHIFT:g}: a shift of 0 makes the "
            "scheduler divide by zero"
        )
        params["flow_shift"] = MIN_FLOW_SHIFT
    seed = request.get("seed")
    if seed is None:
        seed = secrets.randbelow(DRAWN_SEED_LIMIT)
        adjustments.append(f"seed drawn at random: {seed} (send it back to reproduce this video)")
    params["seed"] = seed
    return params, adjustments


def _why_unused(family, name):
    if name in ("width", "height"):
        return "the video's size follows the image's aspect ratio"
    if name == "embedded_guidance_scale":
        return "it has no distilled (embedded) guidance; guidance_scale sets its classifier-free guidance"
    return "the pipeline has no such setting"


def _size_from_bucket(params, family, folder, adjustments):
    """A bucketed (1.5) text-to-video model: the bucket nearest the requested shape."""
    from . import families  # families builds its tables from this module's

    width, height = families.size_for_request(family, folder, params["width"], params["height"])
    if (width, height) != (params["width"], params["height"]):
        adjustments.append(
            f"size {params['width']}x{params['height']} changed to {width}x{height}: the nearest of the model's "
            f"size buckets (about {families.target_size(folder)}x{families.target_size(folder)} pixels)"
        )
    params["width"], params["height"] = width, height


def _size_from_image(params, family, folder, image, adjustments):
    """An image-to-video model: the size bucket nearest the image's aspect ratio."""
    from . import families  # families builds its tables from this module's

    width, height = families.size_for_image(family, folder, image.width, image.height,
                                            params.get("width"), params.get("height"))
    adjustments.append(
        f"size {width}x{height}: follows the image's aspect ratio ({image.width}x{image.height}), "
        "the nearest of the model's size buckets"
    )
    params["width"], params["height"] = width, height


def describe(table=PARAMETERS):
    """The parameter table as JSON-ready dicts, for `/api/info`."""
    return {
        p.name: {
            "type": "integer" if p.kind is int else "number",
            "default": p.default,
            "minimum": p.minimum,
            "maximum": p.maximum,
            "description": p.description,
        }
        for p in table
    }
