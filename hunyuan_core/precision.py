"""Which dtypes a runner computes and stores weights in, decided without importing torch.

On a CPU, bf16 matrix products are only fast with native support (AVX512_BF16 or
AMX); without it they are emulated, ~100x slower than fp32 on this machine. So
the compute dtype is fp32 unless the CPU (or a GPU) does bf16 natively. Weights
are *stored* compactly and upcast one layer at a time (diffusers' layerwise
casting): a 13B transformer is 51 GB in fp32 but 25.6 GB in bf16 and 12.8 GB in
fp8. Storing in the checkpoint's own dtype costs no copy at all (the file is
memory-mapped); a smaller dtype is used only when that does not fit.
"""

import json
import struct
from pathlib import Path

from .host import cpu_flags, memory_limit_bytes

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float8_e4m3fn": 1}
_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F8_E4M3": "float8_e4m3fn"}
_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
_LADDER = ("float32", "bfloat16", "float8_e4m3fn")
# Share of a runner's memory a stage may fill: the rest is for the web workers,
# the other processes of the host and the page cache.
MEMORY_SHARE = 0.9
# Components whose weights are stored compactly when they are big; the others
# (CLIP, VAE) are small and kept in the compute dtype.
COMPACT_COMPONENTS = ("transformer", "text_encoder")


def native_bf16(flags):
    """True if the CPU multiplies bf16 matrices in hardware."""
    return bool(_NATIVE_BF16_FLAGS & set(flags))


def _safetensors_header(path):
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(length))


def component_weights(model_dir, component):
    """`{"params", "bytes", "dtype"}` of a component's safetensors files, read from their headers."""
    folder = Path(model_dir) / component
    params, size, dtypes = 0, 0, {}
    for path in sorted(folder.glob("*.safetensors")):
        for name, entry in _safetensors_header(path).items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in entry["shape"]:
                count *= dim
            dtype = _SAFETENSORS_DTYPES.get(entry["dtype"], entry["dtype"].lower())
            params += count
            size += count * DTYPE_BYTES.get(dtype, 4)
            dtypes[dtype] = dtypes.get(dtype, 0) + count
    main = max(dtypes, key=dtypes.get) if dtypes else None
    return {"params": params, "bytes": size, "dtype": main}


def choose_compute(device="cpu", compute="auto", flags=None):
    """The compute dtype for the COMPUTE_DTYPE setting `compute`: `(dtype, reason or None)`."""
    if compute != "auto":
        return compute, None
    if device == "cuda":
        return "bfloat16", "GPU: compute in bf16"
    if native_bf16(cpu_flags() if flags is None else flags):
        return "bfloat16", "CPU has native bf16 (AVX512_BF16/AMX): compute in bf16"
    return "float32", "CPU lacks native bf16 (no AVX512_BF16/AMX), where bf16 is emulated: compute in fp32"


def plan(model_dir, device="cpu", compute="auto", storage="auto", memory_bytes=None, flags=None, overheads=None):
    """Decide the compute dtype and each big component's storage dtype.

    `compute`/`storage` are the COMPUTE_DTYPE/WEIGHT_DTYPE settings ("auto" or a
    dtype name); `memory_bytes` is this runner's share of memory; `overheads`
    is what each stage needs beside its weights (cost_model.stage_overheads; 1
    GiB if unknown). A stage fits when its weights plus its overhead stay within
    MEMORY_SHARE of the memory. Returns a dict the runner follows and the API
    reports, with `reasons` in words. Raises ValueError when even fp8 storage
    cannot fit, so the job fails with a clear message instead of being killed by
    the OOM killer.
    """
    overheads = overheads or {}
    compute, reason = choose_compute(device, compute, flags)
    reasons = [reason] if reason else []
    memory_bytes = memory_bytes or memory_limit_bytes()
    budget = MEMORY_SHARE * memory_bytes
    result = {"compute_dtype": compute, "memory_budget_bytes": int(memory_bytes), "storage": {}}
    for component in COMPACT_COMPONENTS:
        weights = component_weights(model_dir, component)
        if not weights["params"]:
            continue
        extra = overheads.get(component, 2**30)
        if storage != "auto":
            chosen = storage
        else:
            # The file's own dtype costs no copy (it is memory-mapped); then ever smaller ones until it fits.
            file_dtype = weights["dtype"] if weights["dtype"] in DTYPE_BYTES else compute
            start = file_dtype if DTYPE_BYTES[file_dtype] <= DTYPE_BYTES[compute] else compute
            candidates = [start] + [c for c in _LADDER if DTYPE_BYTES[c] < DTYPE_BYTES[start]]
            chosen = next((c for c in candidates if weights["params"] * DTYPE_BYTES[c] + extra <= budget), None)
            if chosen is None:
                raise ValueError(
                    f"the {component} ({weights['params'] / 1e9:.1f}B parameters) does not fit in this runner's "
                    f"memory ({memory_bytes / 2**30:.1f} GiB) even stored in fp8; lower MAX_WORKERS or add memory"
                )
        need = weights["params"] * DTYPE_BYTES.get(chosen, 4)
        result["storage"][component] = {"dtype": chosen, "bytes": need, "file_dtype": weights["dtype"],
                                        "stage_peak_bytes": need + extra}
        if chosen != compute:
            reasons.append(
                f"{component}: {weights['params'] / 1e9:.2f}B parameters stored in {chosen} "
                f"({need / 2**30:.1f} GB), upcast per layer to {compute}"
            )
    result["reasons"] = reasons
    return result

