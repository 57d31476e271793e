"""HunyuanVideo 1.5's transformer run on its valid tokens only, with no attention mask.

The 1.5 transformer always appends 1,985 tokens to the video's: 1,000 Qwen tokens and
256 ByT5 tokens (a prompt's own, then padding) and 729 image tokens (all zeros and
masked out for text-to-video). Every dual-stream block turns that key-padding mask
into a dense token x token boolean mask (0.7 GiB at 848x480x61, 2.5 GiB at 121
frames, three alive at once), and the masked attention runs well below the unmasked
one on a CPU (bench/block_efficiency.py).

Dropping the masked tokens is exact, as the 13B runner's `_trimmed` is:

- masked keys contribute nothing to any query (the mask is key-row AND key-column);
- the rows of masked queries are text-stream rows, which the transformer discards
  (only the video stream reaches its output), and no other layer mixes tokens: the
  norms, modulation and MLPs act per token, rotary embeddings touch only the video;
- the token refiner pools the Qwen tokens by a masked mean and attends under the
  same mask, both unchanged when only the valid tokens are given;
- the transformer itself reorders its text as [valid image, valid ByT5, valid Qwen,
  padding]; selecting the valid tokens with the mask keeps that order.

Text-to-video is recognised the transformer's own way (every image embedding 0):
its image tokens are then all masked, so an empty image embedding is passed.

With every remaining token valid, the blocks' processor is swapped for one that
calls attention with no mask, which PyTorch runs by its unmasked (flash) kernel.
A call that still has masked tokens (a batch of prompts of different lengths)
falls back to the pipeline's own masked processor, so the result never changes.
"""

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15AttnProcessor2_0

# (states, mask) argument pairs of the transformer's forward that carry padded text.
TEXT_INPUTS = (("encoder_hidden_states", "encoder_attention_mask"),
               ("encoder_hidden_states_2", "encoder_attention_mask_2"))


class UnmaskedAttnProcessor(HunyuanVideo15AttnProcessor2_0):
    """The 1.5 dual-stream attention with no mask when every token is valid.

    diffusers' processor builds the dense mask however the key-padding mask looks
    (it pads it with True and always passes it on), so the mask-free case needs its
    own body: the same projections, norms, rotary embeddings and output layers.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        if encoder_hidden_states is None or (attention_mask is not None and not bool(attention_mask.all())):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)

        def heads(states):
            return states.unflatten(2, (attn.heads, -1))

        query = attn.norm_q(heads(attn.to_q(hidden_states)))
        key = attn.norm_k(heads(attn.to_k(hidden_states)))
        value = heads(attn.to_v(hidden_states))
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
        text_query = heads(attn.add_q_proj(encoder_hidden_states))
        text_key = heads(attn.add_k_proj(encoder_hidden_states))
        text_value = heads(attn.add_v_proj(encoder_hidden_states))
        if attn.norm_added_q is not None:
            text_query = attn.norm_added_q(text_query)
        if attn.norm_added_k is not None:
            text_key = attn.norm_added_k(text_key)
        video = hidden_states.shape[1]
        out = dispatch_attention_fn(
            torch.cat([query, text_query], dim=1),
            torch.cat([key, text_key], dim=1),
            torch.cat([value, text_value], dim=1),
            attn_mask=None,
            dropout_p=0.0,
            is_causal=False,
            backend=self._attention_backend,
            parallel_config=self._parallel_config,
        )
        out = out.flatten(2, 3).to(query.dtype)
        # Split by the video's length: with no text token left, `[:, :-0]` would be empty.
        video_out, text_out = out[:, :video], out[:, video:]
        if getattr(attn, "to_out", None) is not None:
            video_out = attn.to_out[1](attn.to_out[0](video_out))
        if getattr(attn, "to_add_out", None) is not None:
            text_out = attn.to_add_out(text_out)
        return video_out, text_out


def unpadded_inputs(kwargs):
    """The transformer's keyword arguments with masked text tokens and all-zero image tokens dropped.

    Only for a batch of one (the pipeline's guider runs each condition on its own);
    a bigger batch is returned unchanged and runs masked.
    """
    states, mask = kwargs.get("encoder_hidden_states"), kwargs.get("encoder_attention_mask")
    if states is None or mask is None or states.shape[0] != 1:
        return kwargs
    kwargs = dict(kwargs)
    for states_name, mask_name in TEXT_INPUTS:
        states, mask = kwargs.get(states_name), kwargs.get(mask_name)
        if states is None or mask is None:
            continue
        keep = mask[0].bool()
        kwargs[states_name], kwargs[mask_name] = states[:, keep], mask[:, keep]
    image = kwargs.get("image_embeds")
    if image is not None and not bool(image.any()):
        # The transformer's own test for text-to-video: all image embeddings 0, all masked.
        kwargs["image_embeds"] = image[:, :0]
    return kwargs


def run_unpadded(transformer):
    """Make `transformer` (a HunyuanVideo15Transformer3DModel) drop its padding on every call;
    returns a function that undoes it."""
    handle = transformer.register_forward_pre_hook(lambda _module, args, kwargs: (args, unpadded_inputs(kwargs)),
                                                   with_kwargs=True)
    previous = [(block.attn, block.attn.processor) for block in transformer.transformer_blocks]
    for attn, _processor in previous:
        attn.set_processor(UnmaskedAttnProcessor())

    def undo():
        handle.remove()
        for attn, processor in previous:
            attn.set_processor(processor)

    return undo
