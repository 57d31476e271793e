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
