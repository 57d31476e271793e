"""Weights stored in a small dtype and computed in the compute dtype (diffusers' layerwise casting).

hunyuan_core/precision.py decides the dtypes; this module applies them to a
loaded component: which layers stay in the compute dtype, and moving what
layerwise casting leaves alone (norms, embedders) to it.
"""

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float8_e4m3fn": torch.float8_e4m3fn}


def casting_skips(module, storage, file_dtype):
    """Layers to keep in the compute dtype instead of storing them small.

    Stored in the checkpoint's own dtype, nothing loses precision: every layer is
    stored. Stored smaller than that (fp8), the model's precision-sensitive input
    embedders stay at full precision, as diffusers advises, but not everything it
    lists: its "norm" pattern also catches HunyuanVideo's adaptive-norm
    modulation Linears (3072 -> 18432 in each of the 60 blocks: 3.4B parameters,
    a quarter of the model), which would cost 13.6 GB in fp32. Norm layers
    themselves are never cast.
    """
    if storage == file_dtype:
        return ()
    patterns = getattr(module, "_skip_layerwise_casting_patterns", None) or ()
    return tuple(p for p in patterns if p != "norm")


def upcast_unhooked(module, dtype, copy=False, beat=None):
    """Move the modules layerwise casting leaves alone (norms, embedders) to the compute dtype.

    They are small, but left in a storage dtype like bf16 they would compute in it,
    which a CPU without native bf16 does ~100x slower. With `copy`, tensors already
    in `dtype` are copied as well, detaching them from the checkpoint file.
    """
    for child in module.modules():
        if beat is not None:
            beat()  # copying a big model's unconverted tensors takes a while
        registry = getattr(child, "_diffusers_hook", None)
        hooked = registry is not None and registry.get_hook("layerwise_casting") is not None
        if not hooked:
            for name, param in list(child.named_parameters(recurse=False)):
                if param.dtype != dtype or copy:
                    setattr(child, name, torch.nn.Parameter(param.to(dtype, copy=True), requires_grad=False))
            for name, buffer in list(child.named_buffers(recurse=False)):
                if buffer.is_floating_point() and (buffer.dtype != dtype or copy):
                    child.register_buffer(name, buffer.to(dtype, copy=True))
