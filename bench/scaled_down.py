"""A scaled-down model with the real HunyuanVideo structure, for benchmarks that need more than the demo model.

The real block structure (dual-stream then single-stream blocks, 128-wide heads,
patch 2, the real VAE's layout and mid-block attention) at a width and depth
that run in seconds here, built by the same offline builder as the demo model
(random weights, nothing downloaded).
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "scaled-down-hunyuanvideo"

SCALED_DOWN = {
    "transformer": {"num_attention_heads": 8, "attention_head_dim": 128, "rope_axes_dim": (16, 56, 56),
                    "num_layers": 2, "num_single_layers": 4, "num_refiner_layers": 2, "text_embed_dim": 1024,
                    "pooled_projection_dim": 256, "in_channels": 16, "out_channels": 16},
    "vae": {"latent_channels": 16, "block_out_channels": (32, 64, 128, 128), "layers_per_block": 2,
            "norm_num_groups": 16, "mid_block_add_attention": True},
    "text_encoder": {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 4,
                     "num_attention_heads": 8, "num_key_value_heads": 4},
    "text_encoder_2": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "projection_dim": 256},
}


def build_scaled_down(folder):
    """Build the model into `folder`/scaled-down-hunyuanvideo (in a child process, so this one
    stays free of torch); returns its path."""
    model = Path(folder) / NAME
    code = ("import sys; from runner.tiny_model import build_tiny_model; "
            f"build_tiny_model(sys.argv[1], overrides={SCALED_DOWN!r}, name={NAME!r})")
    subprocess.run([sys.executable, "-c", code, str(model)], check=True, cwd=ROOT, capture_output=True)
    return model


NAME_15 = "scaled-down-hunyuanvideo-1.5"
# HunyuanVideo 1.5's real block structure (dual-stream blocks of 128-wide heads with a 4x MLP,
# patch 1, two refiner layers, the 480p target size, the VAE's five levels with 32 latent
# channels, Qwen's multimodal rotary sections) at a width and depth that run in seconds.
SCALED_DOWN_15 = {
    "transformer": {"num_attention_heads": 8, "attention_head_dim": 128, "num_layers": 4, "num_refiner_layers": 2,
                    "mlp_ratio": 4.0, "rope_axes_dim": (16, 56, 56), "text_embed_dim": 1024,
                    "text_embed_2_dim": 256, "image_embed_dim": 256, "in_channels": 65, "out_channels": 32,
                    "target_size": 640},
    "vae": {"latent_channels": 32, "block_out_channels": (32, 64, 128, 256, 256), "layers_per_block": 2},
    "text_encoder": {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 4,
                     "num_attention_heads": 8, "num_key_value_heads": 4,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                                         "mrope_section": [16, 24, 24]}},
    "text_encoder_2": {"d_model": 256, "d_kv": 64, "d_ff": 512, "num_layers": 2, "num_heads": 4},
}


def build_scaled_down_15(folder):
    """Build the scaled-down 1.5 text-to-video model into `folder`/scaled-down-hunyuanvideo-1.5 (in a
    child process); returns its path."""
    model = Path(folder) / NAME_15
    code = ("import sys; from runner import demo_models, tiny_model; from hunyuan_core import families; "
            "family = families.by_demo_name('demo-hunyuanvideo-1.5'); "
            f"tiny_model.save_model_folder(sys.argv[1], lambda: demo_models.build_hunyuanvideo15("
            f"overrides={SCALED_DOWN_15!r}), lambda pipe: dict(demo_models._metadata(family, pipe), "
            f"name={NAME_15!r}, description='Scaled-down HunyuanVideo 1.5 (real block structure, random weights).'))")
    subprocess.run([sys.executable, "-c", code, str(model)], check=True, cwd=ROOT, capture_output=True)
    return model
