"""A job's run plan: how a runner computes it, decided in one place, without torch.

The runner follows the plan, `/api/info` shows it for the default request, and
calibration renders its probe jobs by it, so the three never disagree. A plan
holds the device, the compute dtype and each big component's storage dtype in
this runner's share of memory (hunyuan_core/precision.py), the step cache as it
can apply to the model, and whether decoding is tiled, with the reasons in words.

Whether a GPU is present is only known by asking torch, which the core never
imports: the runner detects the device and passes it in; `/api/info` and
calibration plan for the CPU when DEVICE is "auto".
"""

from . import cost_model, families, precision
from .host import memory_limit_bytes, runner_threads

# The keys of a plan that /api/info shows as "precision" (precision.plan's answer).
PRECISION_KEYS = ("compute_dtype", "memory_budget_bytes", "storage", "reasons")


# The components each stage of a job loads when it starts and frees when it ends, in order.
# Image-to-video models encode their image in a stage of its own, after the text encoders:
# the 13B one with its VAE, 1.5 with SigLIP and its VAE (see runner/family_calls.py).
_TEXT = ("text_encoders", ("text_encoder", "text_encoder_2"))
_DENOISE_DECODE = (("transformer", ("transformer",)), ("vae", ("vae",)))
STAGES = {
    "hunyuanvideo": (_TEXT, *_DENOISE_DECODE),
    "hunyuanvideo-i2v": (_TEXT, ("image_encoders", ("vae",)), *_DENOISE_DECODE),
    "hunyuanvideo-1.5": (_TEXT, *_DENOISE_DECODE),
    "hunyuanvideo-1.5-i2v": (_TEXT, ("image_encoders", ("image_encoder", "vae")), *_DENOISE_DECODE),
}


def stage_components(family_name, stage):
    """The components `stage` of a `family_name` model loads (empty when the family has no such stage)."""
    return dict(STAGES[family_name]).get(stage, ())


def stage_peaks(model_dir, family_name, storage, compute, overheads):
    """Each stage's expected peak memory: its components' weights as stored, plus what it needs beside them.

    `storage` is precision.plan's storage (the compact components' dtypes); the other
    components are held in the compute dtype; `overheads` as for precision.plan (1 GiB if unknown).
    Returns `[{"name", "components", "peak_bytes"}]` in stage order.
    """
    stages = []
    for name, components in STAGES[family_name]:
        weights = 0
        for component in components:
            if component in storage:
                weights += storage[component]["bytes"]
            else:
                weights += precision.component_weights(model_dir, component)["params"] * precision.DTYPE_BYTES[compute]
        extra = max((overheads or {}).get(c, 0) for c in components) or 2**30
        stages.append({"name": name, "components": list(components), "peak_bytes": int(weights + extra)})
    return stages


def memory_share(runtime):
    """The memory one runner may use: the host's (or container's) divided among MAX_WORKERS runners."""
    return memory_limit_bytes() // max(1, int(runtime.get("max_workers", 1)))


def threads(runtime, runners):
    """Threads a runner starts with: RUNNER_THREADS if set, else the cores shared by `runners` live runners."""
    return runner_threads(runtime.get("threads"), runners)


def step_cache(setting, blocks):
    """The STEP_CACHE setting as it can apply to a model with `blocks` transformer blocks.

    Returns `(setting or None, label for the job record)`. First Block Cache
    decides from the first block whether to skip the rest, so it needs two.
    """
    kind = (setting or {}).get("kind", "none")
    if kind == "first_block" and blocks < 2:
        return None, "none (first_block needs at least two transformer blocks; this model has one)"
    return (setting if kind != "none" else None), kind


def decoding(params, geo, memory_bytes):
    """"tiled" or "whole": how the VAE decodes this video with `memory_bytes` at hand (cost_model's rule)."""
    return "tiled" if cost_model.decode_tiled(params, geo, memory_bytes) else "whole"


def make_plan(model_dir, params=None, runtime=None, device="cpu", memory_bytes=None, geo=None, flags=None):
    """The run plan for a job with `params` (None: no particular request) on `device` ("cpu" or "cuda").

    `runtime` is what every runner is told (config.runner_runtime: COMPUTE_DTYPE,
    WEIGHT_DTYPE, MAX_WORKERS, STEP_CACHE...); `memory_bytes` is this runner's
    memory (default: its share, `memory_share`); `geo` the model's geometry if
    already read. Returns precision.plan's dict (`compute_dtype`,
    `memory_budget_bytes`, `storage`, `reasons`) plus `stages` (each stage of the
    model's family, its components and expected peak: `stage_peaks`), `device`, `step_cache`
    (the setting to apply, or None), `step_cache_label` (as the job records it)
    and `decoding` ("tiled"/"whole" on the CPU for `params`; None on a GPU,
    where it depends on the GPU memory free when decoding starts). Raises
    ValueError when the model cannot fit (see precision.plan) and OSError when
    the model folder cannot be read.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"a run plan needs a detected device, 'cpu' or 'cuda', not {device!r}")
    runtime = runtime or {}
    geo = geo if geo is not None else cost_model.geometry(model_dir)
    result = precision.plan(
        model_dir, device, runtime.get("compute_dtype", "auto"), runtime.get("weight_dtype", "auto"),
        memory_bytes or memory_share(runtime), flags=flags,
        overheads=cost_model.stage_overheads(params, geo) if params else None,
    )
    cache, label = step_cache(runtime.get("step_cache"), geo.blocks)
    family = _family_name(model_dir)
    # The stages' peaks with the VAE's activations in the compute dtype just chosen.
    dtype_bytes = precision.DTYPE_BYTES.get(result["compute_dtype"], 4)
    overheads = cost_model.stage_overheads(params, geo, dtype_bytes) if params else None
    result["stages"] = stage_peaks(model_dir, family, result["storage"], result["compute_dtype"], overheads)
    result.update(device=device, step_cache=cache, step_cache_label=label,
                  decoding=decoding(params, geo, memory_limit_bytes()) if params and device == "cpu" else None)
    return result


def _family_name(model_dir):
    """The folder's family name; the 13B text-to-video stages for a folder without a readable model_index.json."""
    try:
        return families.family_of(model_dir).name
    except families.UnknownFamilyError:
        return "hunyuanvideo"


def describe(model_dir, params, runtime):
    """The plan's precision part as `/api/info` shows it for `params` (an `error` instead when it cannot be made)."""
    device = runtime.get("device", "auto")
    device = device if device != "auto" else "cpu"
    try:
        try:
            geo = cost_model.geometry(model_dir)
        except (OSError, ValueError, KeyError):
            # Configs unreadable: the storage plan still stands on the weights' headers alone.
            return precision.plan(model_dir, device, runtime.get("compute_dtype", "auto"),
                                  runtime.get("weight_dtype", "auto"), memory_share(runtime))
        plan = make_plan(model_dir, params, runtime, device, geo=geo)
    except (OSError, ValueError) as exc:
        return {"error": str(exc)}
    return {key: plan[key] for key in PRECISION_KEYS}
