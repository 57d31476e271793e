"""Demo model folders holding only what the web side reads of them: for tests of what clients send.

A page or a command line that picks a model and uploads an image needs the server
to list the model and accept its jobs, not to render them, so these tests skip
building the weights (seconds each, and torch).
"""

import json

from hunyuan_core import families
from hunyuan_core.model_source import METADATA_FILE


def light_demo(data_dir, demo_name, target_size=256):
    """The folder of the demo `demo_name` in `data_dir`/models, without weights; returns its family.

    A demo's family comes from its name; the transformer's config gives a 1.5
    model its size class, and the metadata file marks the demo as built (ready).
    Without model_index.json the server's start skips calibrating it (seconds of
    torch nothing here needs), and its jobs fail in the runner: the tests that use
    it look at the jobs' records, not at videos.
    """
    family = families.by_demo_name(demo_name)
    folder = data_dir / "models" / family.demo_folder
    (folder / "transformer").mkdir(parents=True)
    (folder / "transformer" / "config.json").write_text(json.dumps({"target_size": target_size}))
    (folder / METADATA_FILE).write_text(json.dumps({"name": family.demo_folder, "demo": True}))
    return family
