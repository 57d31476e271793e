"""Where the work process's progress heartbeat beats (see hunyuan_core/heartbeat.py).

Only real progress beats: a module being imported, a block or layer of a model
starting or finishing its forward pass. A process stuck anywhere (a deadlock, a
read that never returns) stops beating, however many other threads it has.
"""

import sys


class _ImportBeat:
    """A meta-path finder that finds nothing: it beats as each module begins importing."""

    def __init__(self, beat):
        self.beat = beat

    def find_spec(self, _name, _path=None, _target=None):
        """Beat, then let the real finders find the module."""
        self.beat()
        return None


def watch_imports(beat):
    """Beat on every import from now on (importing torch and diffusers runs thousands of them)."""
    sys.meta_path.insert(0, _ImportBeat(beat))


def watch_blocks(module, beat):
    """Beat before and after the forward pass of `module` and of every block or layer inside it.

    Blocks are the members of the module's ModuleLists: the transformer's dual- and
    single-stream blocks and token refiner, the VAE's up/down blocks and their
    resnets (run once per tile when decoding tiled), the text encoders' layers.
    `beat` is throttled, so this costs a clock read per call. Returns the hook handles.
    """
    import torch

    targets = [module] + [
        member
        for child in module.modules()
        if isinstance(child, torch.nn.ModuleList)
        for member in child
        if isinstance(member, torch.nn.Module)  # a list may hold None for a level without that part
    ]
    handles = []
    for target in targets:
        handles.append(target.register_forward_pre_hook(beat))
        handles.append(target.register_forward_hook(beat))
    return handles
