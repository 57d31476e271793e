"""HunyuanVideo 1.5's transformer on its valid tokens with no mask equals the masked call.

runner/unpadded.py drops the masked Qwen and ByT5 padding and, for text-to-video, the
all-zero image tokens, and runs attention unmasked; the demo model's transformer
(the real class, tiny random weights) must give the same prediction as its own
masked forward, whichever tokens are padding.
"""

import pytest
import torch
from diffusers.models.transformers import transformer_hunyuan_video15 as hv15

from runner.unpadded import UnmaskedAttnProcessor, run_unpadded, unpadded_inputs

pytestmark = pytest.mark.demo_model

IMAGE_TOKENS = 7


def _transformer(folder):
    model = hv15.HunyuanVideo15Transformer3DModel.from_pretrained(folder, subfolder="transformer",
                                                                   local_files_only=True)
    return model.eval().requires_grad_(False)


def _inputs(model, qwen_valid, byt5_valid, image):
    """One forward's keyword arguments: random states, the given valid positions, zero or random image."""
    config = model.config
    generator = torch.Generator().manual_seed(3)
    qwen_mask = torch.zeros(1, 30)
    qwen_mask[0, qwen_valid] = 1
    byt5_mask = torch.zeros(1, 12, dtype=torch.int64)
    byt5_mask[0, byt5_valid] = 1
    embeds = torch.randn(1, IMAGE_TOKENS, config.image_embed_dim, generator=generator)
    return {
        "hidden_states": torch.randn(1, config.in_channels, 3, 6, 5, generator=generator),
        "timestep": torch.tensor([700.0]),
        "encoder_hidden_states": torch.randn(1, 30, config.text_embed_dim, generator=generator),
        "encoder_attention_mask": qwen_mask,
        "encoder_hidden_states_2": torch.randn(1, 12, config.text_embed_2_dim, generator=generator),
        "encoder_attention_mask_2": byt5_mask,
        "image_embeds": embeds if image else torch.zeros_like(embeds),
        "return_dict": False,
    }


@pytest.mark.parametrize("demo, qwen_valid, byt5_valid", [
    ("demo-hunyuanvideo-1.5", slice(0, 9), slice(0, 4)),      # padding after the prompt, zero image tokens
    ("demo-hunyuanvideo-1.5", slice(21, 30), slice(0, 0)),    # padding before it; no glyph text: no ByT5 token
    ("demo-hunyuanvideo-1.5-i2v", slice(0, 9), slice(2, 6)),  # image-to-video: its image tokens stay
])
def test_unpadded_call_equals_the_masked_call(demo_folders, monkeypatch, demo, qwen_valid, byt5_valid):
    model = _transformer(demo_folders[demo])
    inputs = _inputs(model, qwen_valid, byt5_valid, image=demo.endswith("i2v"))
    masked = model(**inputs)[0]
    fallbacks = []
    original = hv15.HunyuanVideo15AttnProcessor2_0.__call__
    monkeypatch.setattr(hv15.HunyuanVideo15AttnProcessor2_0, "__call__",
                        lambda self, *args, **kwargs: fallbacks.append(1) or original(self, *args, **kwargs))
    undo = run_unpadded(model)
    try:
        unpadded = model(**inputs)[0]
    finally:
        undo()
    # Every block attended with no mask: none fell back to the masked processor.
    assert fallbacks == []
    assert torch.allclose(unpadded, masked, rtol=1e-4, atol=1e-4), float((unpadded - masked).abs().max())
    # Undone: the pipeline's own processors again.
    assert all(type(block.attn.processor) is hv15.HunyuanVideo15AttnProcessor2_0 for block in model.transformer_blocks)


def test_what_is_dropped_and_what_is_kept(demo_folders):
    model = _transformer(demo_folders["demo-hunyuanvideo-1.5"])
    text = _inputs(model, slice(3, 9), slice(0, 4), image=False)
    trimmed = unpadded_inputs(text)
    assert trimmed["encoder_hidden_states"].shape[1] == 6 and bool(trimmed["encoder_attention_mask"].all())
    assert torch.equal(trimmed["encoder_hidden_states"], text["encoder_hidden_states"][:, 3:9])
    assert trimmed["encoder_hidden_states_2"].shape[1] == 4
    assert trimmed["image_embeds"].shape[1] == 0
    # An image's tokens are all valid and stay.
    image = unpadded_inputs(_inputs(model, slice(3, 9), slice(0, 4), image=True))["image_embeds"]
    assert image.shape[1] == IMAGE_TOKENS
    # A batch of two is left as it is (and runs masked).
    batch = {name: torch.cat([value, value]) if isinstance(value, torch.Tensor) else value
             for name, value in text.items()}
    assert unpadded_inputs(batch)["encoder_hidden_states"].shape[1] == 30


def test_a_call_with_padding_left_falls_back_to_the_masked_processor(demo_folders):
    model = _transformer(demo_folders["demo-hunyuanvideo-1.5"])
    block = model.transformer_blocks[0]
    width = model.config.num_attention_heads * model.config.attention_head_dim
    video, text = torch.randn(1, 20, width), torch.randn(1, 5, width)
    mask = torch.tensor([[True, True, True, False, False]])
    expected = hv15.HunyuanVideo15AttnProcessor2_0()(block.attn, video, text, mask)
    got = UnmaskedAttnProcessor()(block.attn, video, text, mask)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
