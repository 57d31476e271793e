"""HunyuanVideo 1.5's VAE normalisation, in fewer passes over memory.

The 1.5 VAE normalises every resnet's input by its RMS over the channel axis
(diffusers' `HunyuanVideo15RMS_norm`). diffusers computes it as: a full fp32 copy
of the activation, `F.normalize` (a norm, a clamp and a division, each a pass),
back to the compute dtype, then times the scale, times gamma, plus a zero bias:
eight passes over the biggest tensors of the decode. On a CPU these are
memory-bound, and at the full-size level of the scaled-down 1.5 VAE (32
channels, 848x480x13, bf16) each norm took longer than the convolution after it.

`ChannelRMSNorm` computes the same function from one fp32 sum of squares per
voxel and one product with the input: five passes instead of eight, and no fp32
division (2.8x faster per norm at 32 channels over 13x240x424 voxels). In fp32 it
equals diffusers' to rounding. In bf16 the one difference is that the per-voxel
factor (1/RMS times the scale) is rounded to bf16 before the product, so outputs
differ in the last places; through the demo VAE's whole decoder the video is as
close to the fp32 decode as diffusers' own bf16 decode is (tests/test_vae_norms.py;
bench/vae_norms.py measures both, and the time saved).
"""

import torch
from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import HunyuanVideo15RMS_norm

# F.normalize's floor on the norm (1e-12), squared for the sum of squares.
EPS_SQUARED = 1e-24


class ChannelRMSNorm(HunyuanVideo15RMS_norm):
    """diffusers' 1.5 VAE RMS norm (same parameters, same state dict), computed in fewer passes."""

    def forward(self, x):
        """`x / RMS(x over the channel axis) * gamma (+ bias)`, the sum of squares in fp32."""
        axis = 1 if self.channel_first else -1
        wide = x.float()
        # x.float() is x itself for fp32 input: square a copy then, never the caller's tensor.
        squares = wide.square_() if wide is not x else wide.square()
        factor = squares.sum(dim=axis, keepdim=True).clamp_min_(EPS_SQUARED).rsqrt_().mul_(self.scale)
        out = x * factor.to(x.dtype) * self.gamma
        return out + self.bias if isinstance(self.bias, torch.Tensor) else out


def use_channel_rms_norms(module):
    """Make every 1.5 VAE RMS norm inside `module` a ChannelRMSNorm (in place; call before
    hooks such as layerwise casting wrap their forward). Returns how many were changed; 0 for a
    module without them (every other component)."""
    changed = 0
    for child in module.modules():
        if type(child) is HunyuanVideo15RMS_norm:
            child.__class__ = ChannelRMSNorm
            changed += 1
    return changed
