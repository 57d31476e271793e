"""Choosing compute and storage dtypes from the CPU and the memory at hand."""

import json
import struct

import pytest

from hunyuan_core import precision

from .conftest import COMPUTE_HERE

# data_dir holds the built demo model and this host's calibration (tests/conftest.py).
pytestmark = pytest.mark.demo_model

GB = 2**30


def write_header_only_safetensors(path, tensors):
    """A safetensors file whose header declares `tensors` {name: (dtype, shape)}.

    The planner reads headers only, so a 13B-parameter model can be described
    without writing 26 GB of weights.
    """
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        size = count * {"BF16": 2, "F32": 4, "F8_E4M3": 1}[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)


@pytest.fixture
def big_model(tmp_path):
    """A model folder describing the real 13B transformer and 7.5B text encoder, stored in bf16."""
    write_header_only_safetensors(
        tmp_path / "transformer" / "diffusion_pytorch_model-00001-of-00002.safetensors",
        {"blocks.a": ("BF16", (6_400_000_000,))},
    )
    write_header_only_safetensors(
        tmp_path / "transformer" / "diffusion_pytorch_model-00002-of-00002.safetensors",
        {"blocks.b": ("BF16", (6_400_000_000,))},
    )
    write_header_only_safetensors(tmp_path / "text_encoder" / "model.safetensors", {"w": ("BF16", (7_500_000_000,))})
    return tmp_path


@pytest.mark.parametrize(
    "device, flags, expected",
    [
        ("cpu", {"avx2", "fma"}, "float32"),
        ("cpu", {"avx512f", "avx512_bf16"}, "bfloat16"),
        ("cpu", {"amx_bf16", "amx_tile"}, "bfloat16"),
        ("cuda", set(), "bfloat16"),
    ],
)
def test_compute_dtype_follows_native_bf16_support(tiny_model, device, flags, expected):
    assert precision.plan(tiny_model, device, flags=flags, memory_bytes=8 * GB)["compute_dtype"] == expected


def test_this_machine_gets_a_plan_that_names_its_reason(tiny_model):
    plan = precision.plan(tiny_model, "cpu")
    assert plan["compute_dtype"] == ("bfloat16" if precision.native_bf16(precision.cpu_flags()) else "float32")
    assert any("bf16" in reason for reason in plan["reasons"])


def test_small_models_keep_their_own_dtype(tiny_model):
    plan = precision.plan(tiny_model, "cpu", flags=set(), memory_bytes=8 * GB)
    assert {c: e["dtype"] for c, e in plan["storage"].items()} == {"transformer": "float32", "text_encoder": "float32"}


def test_headers_give_parameter_counts_and_dtype(big_model):
    weights = precision.component_weights(big_model, "transformer")
    assert weights == {"params": 12_800_000_000, "bytes": 25_600_000_000, "dtype": "bfloat16"}


# What the stages need beside their weights at 640x480x61 (cost_model.stage_overheads gives ~5.4 and ~4.4 GiB).
OVERHEADS = {"transformer": 6 * GB, "text_encoder": 4 * GB}


@pytest.mark.parametrize(
    "memory_gb, transformer, text_encoder",
    [
        (64, "bfloat16", "bfloat16"),  # fits as stored: memory-mapped, no copy
        (32, "float8_e4m3fn", "bfloat16"),  # 23.8 GiB of bf16 + 6 GiB would not leave the host 10%
        (20, "float8_e4m3fn", "bfloat16"),
    ],
)
def test_storage_shrinks_until_each_stage_fits(big_model, memory_gb, transformer, text_encoder):
    plan = precision.plan(big_model, "cpu", flags=set(), memory_bytes=memory_gb * GB, overheads=OVERHEADS)
    assert plan["compute_dtype"] == "float32"
    assert plan["storage"]["transformer"]["dtype"] == transformer
    assert plan["storage"]["text_encoder"]["dtype"] == text_encoder
    for entry in plan["storage"].values():
        assert entry["stage_peak_bytes"] <= precision.MEMORY_SHARE * memory_gb * GB


def test_a_model_that_cannot_fit_is_refused_with_a_reason(big_model):
    # Two 13B jobs side by side on a 32 GB host: 16 GiB each is too little even in fp8.
    with pytest.raises(ValueError, match="does not fit .* even stored in fp8; lower MAX_WORKERS"):
        precision.plan(big_model, "cpu", flags=set(), memory_bytes=16 * GB, overheads=OVERHEADS)


def test_forced_storage_is_respected(big_model):
    plan = precision.plan(big_model, "cpu", storage="bfloat16", flags=set(), memory_bytes=32 * GB, overheads=OVERHEADS)
    assert plan["storage"]["transformer"]["dtype"] == "bfloat16"


def test_api_info_reports_the_plan(client):
    info = client.get("/api/info").get_json()
    # The tiny model's fp32 file fits as it is, or is stored in the compute dtype where that is smaller.
    assert info["precision"]["compute_dtype"] == COMPUTE_HERE
    assert info["precision"]["storage"]["transformer"]["dtype"] == COMPUTE_HERE
