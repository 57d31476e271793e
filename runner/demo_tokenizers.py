"""Tokenizers and image processors for the embedded demo models, made offline from nothing.

The real checkpoints ship tokenizers trained on huge vocabularies; the demo
models need only the same classes, with the same special tokens and prompt
formats, over a vocabulary small enough to keep their embeddings tiny. Each is
built in memory (no files, no download) and saved with the pipeline.
"""

import string

# The Llama-3 chat markers used by the 13B pipelines' prompt templates: they must be
# single tokens, as they are in the real tokenizer.
LLAMA_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
# The 13B image-to-video template also holds an `<image>` placeholder that the Llava
# text encoder replaces with the image's tokens; it is a single token in Llava's tokenizer.
LLAVA_IMAGE_TOKEN = "<image>"

# Qwen2.5-VL's chat markers, used by HunyuanVideo 1.5's chat template.
QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# The ChatML format of Qwen2.5-VL's own chat template, for string contents (all the
# 1.5 pipelines send): a system turn, a user turn, and the assistant header when
# `add_generation_prompt` is set. HunyuanVideo 1.5 crops the tokens before the user's
# prompt away (`prompt_template_encode_start_idx`), so the format has to be the real one.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def llama_tokenizer(extra_special_tokens=()):
    """A character-level Llama tokenizer: every printable ASCII character, with byte fallback.

    `extra_special_tokens` are added as single tokens after the Llama-3 chat markers
    (the image-to-video model adds `<image>`).
    """
    from transformers import LlamaTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for char in "▁" + string.ascii_letters + string.digits + string.punctuation:
        vocab.setdefault(char, len(vocab))
    tokenizer = LlamaTokenizerFast(
        vocab=vocab,
        merges=[],
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        # The pipelines crop the template off the front of the sequence: padding must follow the text.
        padding_side="right",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": LLAMA_SPECIAL_TOKENS + list(extra_special_tokens)})
    return tokenizer


def clip_tokenizer():
    """A character-level CLIP tokenizer over the byte-level alphabet."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in alphabet:
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def qwen_tokenizer():
    """A byte-level Qwen2 tokenizer (one token per byte) with Qwen2.5-VL's chat markers and template."""
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    vocab = {char: index for index, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for token in QWEN_SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        # The pipeline crops the chat template off the front: padding must follow the text.
        padding_side="right",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS})
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


def byt5_tokenizer():
    """ByT5's tokenizer: bytes plus specials, so it needs no vocabulary file at all."""
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()


def chat_prefix_length(tokenizer, system_message):
    """Count the tokens 1.5's chat template puts before the user's prompt.

    The pipeline crops this many tokens (its `prompt_template_encode_start_idx`,
    108 for the real Qwen2.5-VL tokenizer) off the encoded prompt; with another
    tokenizer the count differs, and the wrong crop would cut the prompt itself.
    """
    marker = "\x00"
    conversation = [{"role": "system", "content": system_message}, {"role": "user", "content": marker}]
    text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return len(tokenizer(text.split(marker)[0])["input_ids"])


def square_image_processor(cls, size, mean, std):
    """An image processor of class `cls` resizing to a `size`x`size` square with the given normalisation."""
    return cls(
        do_resize=True,
        size={"height": size, "width": size},
        do_center_crop=False,
        do_normalize=True,
        image_mean=list(mean),
        image_std=list(std),
        do_convert_rgb=True,
    )
