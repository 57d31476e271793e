"""The sizes of a model that decide the cost of running it, read from its folder's config files.

One reader for every family (hunyuan_core/families.py): the transformer's width
and depth, the text encoders' and image encoders' sizes, the VAE's levels, and
how many tokens each family's encoders and transformer run over. The 13B models
encode a 256-token Llama prompt after its template (the image-to-video one with
576 Llava image tokens inside it) and the runner trims the prompt's padding;
HunyuanVideo 1.5 always runs its Qwen encoder over 1000 tokens after its chat
template and ByT5 over 256; its pipeline hands the transformer those 1256 text
tokens plus 729 image tokens (SigLIP's, zeros masked out for text-to-video), but
the runner drops the masked ones (runner/unpadded.py): the transformer runs over
the prompt's own Qwen tokens, the ByT5 bytes of its quoted text, and the image
tokens of image-to-video, with no attention mask.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .families import FAMILIES
from .precision import component_weights

# The 13B pipelines pad the Llama prompt to 256 tokens after its template.
TEXT_TOKENS = 256
# The real Llama-3 tokenizer turns the text-to-video template into 95 tokens (the pipeline's crop_start).
DEFAULT_TEMPLATE_TOKENS = 95
# English runs about 4 characters per Llama-3 token; the demo models' tokenizers are per character.
DEFAULT_CHARS_PER_TOKEN = 4.0
CLIP_TOKENS = 77
# HunyuanVideo 1.5 (diffusers' pipeline): Qwen padded to 1000 tokens after a 108-token chat
# template, ByT5 to 256, and 729 SigLIP tokens (27 x 27 patches of a 384-pixel image).
QWEN_TOKENS = 1000
DEFAULT_CHAT_TEMPLATE_TOKENS = 108
BYT5_TOKENS = 256
SIGLIP_TOKENS = 729
QWEN_TAIL_TOKENS = 5
# The 13B image-to-video model: 576 Llava image tokens, every 4th kept (token_replace) or every 2nd.
LLAVA_IMAGE_TOKENS = 576


@dataclass(frozen=True)
class Geometry:
    """The sizes of a model that decide the cost of running it."""

    heads: int
    head_dim: int
    blocks: int  # transformer blocks (13B: dual-stream plus single-stream; 1.5: dual-stream)
    patch: int
    patch_t: int
    spatial_ratio: int
    temporal_ratio: int
    latent_channels: int
    vae_channels: tuple
    vae_layers_per_block: int
    text_params: int  # the main text encoder (Llama / Llava's Llama / Qwen), roughly
    text_hidden: int
    text_vocab: int
    text_layer_params: int
    clip_params: int  # the second text encoder (CLIP for 13B, ByT5 for 1.5)
    template_tokens: int
    chars_per_token: float
    weight_bytes: int  # all safetensors files, as stored
    family: str = "hunyuanvideo"
    # Tokens the main text encoder runs over besides the template (13B: 256; 13B I2V: + the image's 575 more).
    text_tokens: int = TEXT_TOKENS
    second_text_tokens: int = CLIP_TOKENS
    # Transformer tokens besides the video's and the prompt's: the image tokens (13B I2V; 1.5 I2V: 729 SigLIP).
    extra_tokens: int = 0
    # Whether the runner trims the prompt's padding (every family), so the prompt's own length counts.
    trims_prompt: bool = True
    # The prompt's padded length and the template's tokens after the prompt (13B Llama: 256 and 2;
    # 1.5 Qwen: 1000 and 5: <|im_end|>, a newline, <|im_start|>, "assistant", a newline).
    prompt_limit: int = TEXT_TOKENS
    prompt_tail_tokens: int = 2
    # Whether the bytes of the prompt's quoted text reach the transformer as ByT5 tokens (1.5).
    glyph_tokens: bool = False
    # An image encoder run once per job: parameters and tokens (Llava's CLIP tower, 1.5's SigLIP).
    image_params: int = 0
    image_tokens: int = 0
    # Whether the VAE encodes the input image (image-to-video).
    encodes_image: bool = False
    # Whether the transformer attends with no mask (1.5 as the runner calls it); the 13B pipelines
    # pass a key-padding mask, which PyTorch runs by another kernel. Calibration measures the same.
    unmasked_attention: bool = False
    # Whether the VAE decoder's mid-block attends over every latent position of a tile under a
    # dense causal mask in the compute dtype (1.5).
    vae_attention: bool = False
    # Whether the VAE decoder's memory-bound steps are priced on their own, per channel x voxel
    # (1.5: its RMS norms run in fp32 over the channel axis, each costing about a convolution
    # at the full-size level's width; see cost_model.decode_elements).
    vae_elementwise: bool = False

    @property
    def width(self):
        """The transformer's hidden size."""
        return self.heads * self.head_dim


def _read_json(path):
    return json.loads(Path(path).read_text())


def _decoder_params(cfg):
    """Llama / Qwen decoder layers: attention 4 d^2 (GQA counted as full) and a gated MLP 3 d x inter."""
    hidden, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    return layers * (4 * hidden * hidden + 3 * hidden * inter)


def _vit_params(cfg):
    """CLIP / SigLIP encoder layers: attention 4 d^2 and a plain MLP 2 d x inter."""
    hidden, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    return layers * (4 * hidden * hidden + 2 * hidden * inter)


def _t5_params(cfg):
    """T5 (ByT5) encoder layers: attention over heads x d_kv and a gated MLP."""
    inner = cfg["num_heads"] * cfg["d_kv"]
    return cfg["num_layers"] * (4 * cfg["d_model"] * inner + 3 * cfg["d_model"] * cfg["d_ff"])


def _text_encoders(root, family):
    """The text encoders' sizes: `{text_params, text_hidden, text_vocab, text_layer_params, clip_params}` and more."""
    found = {}
    try:
        cfg = _read_json(root / "text_encoder" / "config.json")
        text = cfg.get("text_config", cfg)  # Llava nests its Llama
        found.update(text_params=_decoder_params(text), text_hidden=text["hidden_size"],
                     text_vocab=text.get("vocab_size", 0))
        found["text_layer_params"] = found["text_params"] // max(text["num_hidden_layers"], 1)
        if "vision_config" in cfg:
            vision = cfg["vision_config"]
            found["image_params"] = _vit_params(vision)
            found["image_tokens"] = (vision["image_size"] // vision["patch_size"]) ** 2 + 1
        second = _read_json(root / "text_encoder_2" / "config.json")
        found["clip_params"] = _t5_params(second) if "d_model" in second else _vit_params(second)
    except (OSError, KeyError, ValueError, TypeError):
        found = {}
    if family.startswith("hunyuanvideo-1.5") and (root / "image_encoder").is_dir():
        try:
            vision = _read_json(root / "image_encoder" / "config.json")
            found.update(image_params=_vit_params(vision), image_tokens=SIGLIP_TOKENS)
        except (OSError, KeyError, ValueError):
            pass
    return found


def _family_name(root):
    try:
        return FAMILIES[_read_json(root / "model_index.json")["_class_name"]].name
    except (OSError, KeyError, ValueError, TypeError):
        return "hunyuanvideo"


@lru_cache(maxsize=16)
def _geometry_cached(model_dir, _stamp):
    root = Path(model_dir)
    family = _family_name(root)
    is_15 = family.startswith("hunyuanvideo-1.5")
    takes_image = family.endswith("i2v")
    tcfg = _read_json(root / "transformer" / "config.json")
    vcfg = _read_json(root / "vae" / "config.json")
    try:
        meta = _read_json(root / "hunyuan_api_model.json")
    except (OSError, ValueError):
        meta = {}
    encoders = _text_encoders(root, family)
    family_sizes = {}
    if is_15:
        template = meta.get("prompt_template_encode_start_idx", DEFAULT_CHAT_TEMPLATE_TOKENS)
        # The runner drops the padding and, for text-to-video, the all-zero image tokens.
        family_sizes = dict(text_tokens=QWEN_TOKENS, second_text_tokens=BYT5_TOKENS,
                            extra_tokens=SIGLIP_TOKENS if takes_image else 0, prompt_limit=QWEN_TOKENS,
                            prompt_tail_tokens=QWEN_TAIL_TOKENS, glyph_tokens=True, unmasked_attention=True,
                            vae_attention=True, vae_elementwise=True)
    elif takes_image:
        llava = meta.get("prompt_template") or {}
        template = llava.get("crop_start", DEFAULT_TEMPLATE_TOKENS)
        image_tokens = llava.get("image_emb_len", LLAVA_IMAGE_TOKENS)
        interleave = {"latent_concat": 2, "token_replace": 4}.get(tcfg.get("image_condition_type"), 1)
        # The Llava prompt holds the image's tokens in place of its one <image> token.
        family_sizes = dict(text_tokens=TEXT_TOKENS + image_tokens - 1, extra_tokens=-(-image_tokens // interleave))
    else:
        template = meta.get("prompt_template_crop_start", DEFAULT_TEMPLATE_TOKENS)
    components = ("transformer", "vae", "text_encoder", "text_encoder_2", "image_encoder")
    return Geometry(
        heads=tcfg.get("num_attention_heads", 24),
        head_dim=tcfg.get("attention_head_dim", 128),
        blocks=tcfg.get("num_layers", 20) + tcfg.get("num_single_layers", 0 if is_15 else 40),
        patch=tcfg.get("patch_size", 2),
        patch_t=tcfg.get("patch_size_t", 1),
        spatial_ratio=vcfg.get("spatial_compression_ratio", 8),
        temporal_ratio=vcfg.get("temporal_compression_ratio", 4),
        latent_channels=vcfg.get("latent_channels", 16),
        vae_channels=tuple(vcfg.get("block_out_channels", (128, 256, 512, 512))),
        vae_layers_per_block=vcfg.get("layers_per_block", 2),
        text_params=encoders.get("text_params", 0),
        text_hidden=encoders.get("text_hidden", 0),
        text_vocab=encoders.get("text_vocab", 0),
        text_layer_params=encoders.get("text_layer_params", 0),
        clip_params=encoders.get("clip_params", 0),
        template_tokens=template,
        chars_per_token=meta.get("chars_per_token", DEFAULT_CHARS_PER_TOKEN),
        weight_bytes=sum(component_weights(root, c)["bytes"] for c in components),
        family=family,
        image_params=encoders.get("image_params", 0),
        image_tokens=encoders.get("image_tokens", 0),
        encodes_image=takes_image,
        **family_sizes,
    )


def geometry(model_dir):
    """Read a diffusers HunyuanVideo folder's configs (cached until they change)."""
    config = Path(model_dir) / "transformer" / "config.json"
    return _geometry_cached(str(model_dir), config.stat().st_mtime_ns)
