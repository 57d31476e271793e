"""The 1.5 VAE's RMS norm in fewer passes (runner/vae_norms.py): the same function, used where the runner loads it."""

import pytest
import torch
from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import HunyuanVideo15RMS_norm

from runner.vae_norms import ChannelRMSNorm, use_channel_rms_norms


def norms(channels, **options):
    """diffusers' norm with a non-trivial gamma (and bias, if asked), and ours with its state."""
    theirs = HunyuanVideo15RMS_norm(channels, **options)
    with torch.no_grad():
        theirs.gamma.copy_(torch.rand_like(theirs.gamma) + 0.5)
        if isinstance(theirs.bias, torch.Tensor):
            theirs.bias.copy_(torch.randn_like(theirs.bias))
    ours = ChannelRMSNorm(channels, **options)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


@pytest.mark.parametrize("options, shape", [
    (dict(images=False), (2, 16, 5, 12, 20)),  # the resnets' norms: channels first over 3-D volumes
    (dict(images=True), (2, 16, 12, 20)),
    (dict(images=False, bias=True), (1, 8, 3, 6, 6)),
    (dict(channel_first=False), (2, 5, 12, 16)),
])
def test_fp32_equals_diffusers_norm(options, shape):
    theirs, ours = norms(shape[1] if options.get("channel_first", True) else shape[-1], **options)
    x = torch.randn(shape) * 3
    before = x.clone()
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(x, before)  # fp32 input is squared in a copy, not in place


def test_bf16_differs_from_diffusers_norm_in_the_last_places_only():
    theirs, ours = norms(32, images=False)
    theirs, ours = theirs.to(torch.bfloat16), ours.to(torch.bfloat16)
    x = (torch.randn(1, 32, 4, 24, 40) * 4).to(torch.bfloat16)
    with torch.no_grad():
        expected, got = theirs(x).float(), ours(x).float()
    # bf16 keeps 8 significant bits: a few units in the last place apart at most.
    assert ((got - expected).abs() <= expected.abs() * 2**-6 + 1e-3).all()
    assert (got - expected).abs().mean() < 0.01 * expected.abs().mean()
    # All zeros at a voxel: no division by zero, zeros out (F.normalize's floor).
    with torch.no_grad():
        assert torch.equal(ours(torch.zeros(1, 32, 1, 2, 2, dtype=torch.bfloat16)),
                           torch.zeros(1, 32, 1, 2, 2, dtype=torch.bfloat16))


@pytest.mark.demo_model
def test_the_runner_decodes_with_it_and_the_video_stays_the_same(demo_folders):
    from diffusers import AutoencoderKLHunyuanVideo15

    from hunyuan_core import precision
    from runner.pipeline import StagedPipeline

    folder = demo_folders["demo-hunyuanvideo-1.5"]
    staged = StagedPipeline(str(folder), "cpu", precision.plan(str(folder), "cpu", compute="bfloat16"),
                            keep_loaded=True)
    vae = staged._load("vae")
    found = [type(m) for m in vae.modules() if isinstance(m, HunyuanVideo15RMS_norm)]
    assert found and set(found) == {ChannelRMSNorm}
    # diffusers' own VAE in fp32 (the reference) and in bf16 (the dtype's own error).
    reference = AutoencoderKLHunyuanVideo15.from_pretrained(folder, subfolder="vae").eval()
    plain = AutoencoderKLHunyuanVideo15.from_pretrained(folder, subfolder="vae", dtype=torch.bfloat16).eval()
    for decoder in (reference, plain, vae):
        decoder.disable_tiling()
    latents = torch.randn(1, plain.config.latent_channels, 4, 12, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference.decode(latents, return_dict=False)[0]
        theirs = (plain.decode(latents.bfloat16(), return_dict=False)[0].float() - expected).abs()
        ours = (vae.decode(latents.bfloat16(), return_dict=False)[0].float() - expected).abs()
    # The decoded pixels (in [-1, 1]) are as close to fp32's as diffusers' own bf16 decode is.
    assert ours.shape == theirs.shape
    assert ours.mean() < 1.25 * theirs.mean() and ours.max() < 2 * theirs.max(), (ours.mean(), theirs.mean())
    # Nothing else has these norms: the 13B VAE and the 1.5 transformer are left alone.
    assert use_channel_rms_norms(staged._load("transformer")) == 0
    thirteen = demo_folders["demo-hunyuanvideo"]
    assert use_channel_rms_norms(StagedPipeline(str(thirteen), "cpu", precision.plan(str(thirteen), "cpu"))
                                 ._load("vae")) == 0


@pytest.mark.demo_model
def test_layerwise_casting_still_runs_it(demo_folders):
    """Stored smaller than it computes (fp8 weights, bf16 compute), the VAE's norms are ours under the casting hooks."""
    from hunyuan_core import precision
    from runner.pipeline import StagedPipeline

    folder = demo_folders["demo-hunyuanvideo-1.5"]
    plan = precision.plan(str(folder), "cpu", compute="bfloat16", storage="float8_e4m3fn")
    vae = StagedPipeline(str(folder), "cpu", plan, keep_loaded=True)._load("vae")
    calls = []
    norm = next(m for m in vae.decoder.modules() if isinstance(m, ChannelRMSNorm))
    original = ChannelRMSNorm.forward

    def counting(self, x):
        calls.append(self)
        return original(self, x)

    ChannelRMSNorm.forward = counting
    try:
        with torch.no_grad():
            vae.decode(torch.randn(1, vae.config.latent_channels, 2, 4, 4, dtype=torch.bfloat16))
    finally:
        ChannelRMSNorm.forward = original
    assert any(called is norm for called in calls)
