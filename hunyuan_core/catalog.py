"""The models one server offers: the MODELS setting, each model's family, source and parameter table.

`MODELS` is a comma-separated list of entries `[NAME=]SOURCE[;OPTION=VALUE...]`:
SOURCE is a diffusers model folder or the name of an embedded demo model
(`demo-hunyuanvideo`, `demo-hunyuanvideo-i2v`, `demo-hunyuanvideo-1.5`,
`demo-hunyuanvideo-1.5-i2v`); NAME is what requests put in `model` (default: the
demo's name, or the folder's name); OPTIONs are per-model limits named like the
global settings, lower-cased (`min_steps`, `default_steps`, `max_steps`,
`default_flow_shift`, `max_flow_shift`). The first entry is the default model.
`MODEL_PATH` is a one-entry list; with neither set the one model is
`demo-hunyuanvideo`, as before MODELS existed.

A folder's family is read from its model_index.json (families.family_of) when the
catalog is made; a folder that does not exist yet is not ready (requests naming it
get a 503 that says why) and its family is read once it appears.
"""

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from . import families, model_source, params
from .errors import InvalidInput

DEFAULT_DEMO = "demo-hunyuanvideo"
# What a request's `model` names: plain words, like API key names (they end up in job files and logs).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
# Per-model options: (kind, smallest value), with the global setting each one overrides.
OPTIONS = {
    "min_steps": (int, 1),
    "default_steps": (int, 1),
    "max_steps": (int, 1),
    "default_flow_shift": (float, 0.0),
    "max_flow_shift": (float, 0.01),
}
# The 13B text-to-video family is the API document's: the global settings shape its table, as they always did.
DOCUMENTED_FAMILY = families.FAMILIES["HunyuanVideoPipeline"]


@dataclass(frozen=True)
class Entry:
    """One parsed MODELS entry: its name, its source (folder path or demo name) and its options."""

    name: str
    source: str
    options: dict
    # Where it came from, for messages: "MODELS entry 2", "MODEL_PATH", or the default.
    setting: str = "MODELS"


def parse(value):
    """Parse a MODELS value into Entries; raise ValueError naming MODELS for anything malformed.

    Checked here, without touching the disk: the entry syntax, names, demo names,
    option names and values, and repeated names. Families are read by `Catalog`.
    """
    entries = []
    for number, text in enumerate(value.split(","), start=1):
        text = text.strip()
        if not text:
            continue
        entries.append(_parse_entry(number, text))
    if not entries:
        raise ValueError(f"MODELS is set but names no model ({value!r}); unset it for the demo model")
    seen = set()
    for entry in entries:
        if entry.name in seen:
            raise ValueError(f"MODELS: the name {entry.name!r} is given twice (name one entry NAME=SOURCE)")
        seen.add(entry.name)
    return tuple(entries)


def _parse_entry(number, text):
    where = f"MODELS entry {number} ({text!r})"
    head, *option_texts = (part.strip() for part in text.split(";"))
    name, equals, source = (part.strip() for part in head.partition("="))
    if not equals:
        name, source = "", name
    if not source:
        raise ValueError(f"{where}: no model folder or demo name (write [NAME=]SOURCE[;option=value...])")
    if _looks_like_demo(source):
        try:
            families.by_demo_name(source)
        except families.UnknownFamilyError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if equals and not name:
        raise ValueError(f"{where}: an empty name before '='")
    name = name or (source if _looks_like_demo(source) else Path(source).name)
    if not _NAME.fullmatch(name):
        raise ValueError(f"{where}: the name {name!r} must be 1 to 64 letters, digits, '_', '.', '@' or '-', "
                         "starting with a letter or digit (give one: NAME=SOURCE)")
    options = {}
    for option_text in option_texts:
        key, equals, raw = (part.strip() for part in option_text.partition("="))
        key = key.lower()
        if key not in OPTIONS:
            raise ValueError(f"{where}: unknown option {key!r} (known: {', '.join(OPTIONS)})")
        if not equals or not raw:
            raise ValueError(f"{where}: option {key} has no value (write {key}=VALUE)")
        if key in options:
            raise ValueError(f"{where}: option {key} is given twice")
        kind, minimum = OPTIONS[key]
        try:
            number_value = kind(raw)
        except ValueError:
            words = "an integer" if kind is int else "a number"
            raise ValueError(f"{where}: option {key} must be {words}, not {raw!r}") from None
        if not math.isfinite(number_value) or number_value < minimum:
            raise ValueError(f"{where}: option {key} must be at least {minimum}, not {raw}")
        options[key] = number_value
    return Entry(name, source, options, where)


def _looks_like_demo(source):
    """A source without a path separator that starts like a demo name is meant as one (a folder would be ./demo-...)."""
    return source.startswith("demo-") and "/" not in source and "\\" not in source


def entries_from_settings(settings):
    """The configured entries: MODELS, else MODEL_PATH as a one-entry list, else the 13B demo."""
    if settings.get("MODELS") and settings.get("MODEL_PATH"):
        raise ValueError("MODELS and MODEL_PATH are both set: list the MODEL_PATH folder in MODELS instead")
    if settings.get("MODELS"):
        return settings["MODELS"]
    if settings.get("MODEL_PATH"):
        path = settings["MODEL_PATH"]
        return (Entry(_safe_name(Path(path).expanduser().resolve().name), path, {}, "MODEL_PATH"),)
    return (Entry(DEFAULT_DEMO, DEFAULT_DEMO, {}, "the default"),)


def _safe_name(name):
    """MODEL_PATH's folder name as a model name, made plain (MODEL_PATH never needed a name of its own)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.@-]", "-", name).lstrip("_.@-")[:64]
    return cleaned or "model"


class ServedModel:
    """One model the server offers: its name, source, family and parameter table."""

    def __init__(self, entry, source, family, settings, default=False):
        self.name = entry.name
        self.entry = entry
        self.source = source
        self.default = default
        self._family = family
        self._settings = settings

    @property
    def family(self):
        """The model's family; for a folder not there yet, read once it appears (13B text-to-video until then)."""
        if self._family is None and (self.source.path / "model_index.json").is_file():
            try:
                self._family = families.family_of(self.source.path)
            except families.UnknownFamilyError:
                pass  # the folder changed under a running server; describe() says it is not usable
        return self._family or DOCUMENTED_FAMILY

    @property
    def parameters(self):
        """The parameter table requests for this model are validated and resolved with."""
        return parameter_table(self.family, self._settings, self.entry.options)

    def describe(self, reveal_paths=True):
        """The model's state (model_source.describe) with its name, family and task."""
        state = model_source.describe(self.source, reveal_paths)
        return state | {"served_as": self.name, "family": self.family.name, "task": self.family.task}

    def job_model(self):
        """What a job records about the model it was made with (`name` keys the host's timing statistics)."""
        state = model_source.describe(self.source)
        return {"name": state["name"], "path": state["path"], "demo": state["demo"], "family": self.family.name,
                "task": self.family.task, "served_as": self.name}


def parameter_table(family, settings, options=None):
    """A family's parameter table with the configured limits applied.

    The 13B text-to-video family takes the global MIN_STEPS ... MAX_FLOW_SHIFT
    settings exactly as params.parameter_table always applied them; every family
    then takes the model's own options. Raises ValueError when the result is not
    min <= default <= max.
    """
    table = params.parameter_table(settings) if family is DOCUMENTED_FAMILY and settings else family.parameters
    options = options or {}
    changed = []
    for p in table:
        if p.name == "num_inference_steps":
            p = replace(p, minimum=options.get("min_steps", p.minimum), default=options.get("default_steps", p.default),
                        maximum=options.get("max_steps", p.maximum))
        elif p.name == "flow_shift":
            p = replace(p, default=options.get("default_flow_shift", p.default),
                        maximum=options.get("max_flow_shift", p.maximum))
        changed.append(p)
    for p in changed:
        if p.name in params.CONFIGURABLE and not p.minimum <= p.default <= p.maximum:
            raise ValueError(f"{p.name}: need minimum <= default <= maximum, not {p.minimum}, {p.default}, "
                             f"{p.maximum}")
    return tuple(changed)


class Catalog:
    """The configured models, the first one the default."""

    def __init__(self, models):
        self.models = tuple(models)
        self.by_name = {m.name: m for m in self.models}

    @property
    def default(self):
        """The model a request without `model` gets."""
        return self.models[0]

    @property
    def names(self):
        """The models' names, in configured order."""
        return [m.name for m in self.models]

    def get(self, name=None):
        """The model called `name` (None: the default); InvalidInput (422, field `model`) if none is."""
        if name is None:
            return self.default
        try:
            return self.by_name[name]
        except (KeyError, TypeError):
            raise InvalidInput("model", f"Unknown model {name!r}; known models: {', '.join(self.names)}.") from None

    def lookup(self, name):
        """The model called `name`, or the default when there is none (for range checks before the name's own)."""
        return self.by_name.get(name, self.default) if isinstance(name, str) else self.default

    def sources(self):
        """Every model's ModelSource, in configured order."""
        return [m.source for m in self.models]


def from_settings(settings):
    """The Catalog the settings describe; ValueError naming the setting for an unusable entry.

    `settings` are hunyuan_core.config's (MODELS already parsed, MODEL_PATH, DATA_DIR
    and the global step and flow-shift limits).
    """
    data_dir = Path(settings["DATA_DIR"]).resolve()
    served = []
    for number, entry in enumerate(entries_from_settings(settings)):
        label = "MODEL_PATH" if entry.setting == "MODEL_PATH" else "MODELS"
        if _looks_like_demo(entry.source):
            family = families.by_demo_name(entry.source)
            source = model_source.ModelSource(data_dir / "models" / family.demo_folder, embedded=True,
                                              demo=entry.source)
        else:
            path = Path(entry.source).expanduser().resolve()
            source = model_source.ModelSource(path, embedded=False, setting=label)
            family = None
            if (path / "model_index.json").is_file():
                try:
                    family = families.family_of(path)
                except families.UnknownFamilyError as exc:
                    raise ValueError(f"{label}: {entry.name}: {exc}") from None
        try:
            parameter_table(family or DOCUMENTED_FAMILY, settings, entry.options)
        except ValueError as exc:
            raise ValueError(f"{entry.setting}: {exc}") from None
        served.append(ServedModel(entry, source, family, settings, default=number == 0))
    return Catalog(served)


def single(source):
    """A one-model Catalog for a ModelSource given by code rather than configuration (tests, another face).

    Its family is read from the folder; one whose model_index.json names no family
    is taken as the 13B text-to-video model, as every folder was before families.
    """
    family = None
    if (source.path / "model_index.json").is_file():
        try:
            family = families.family_of(source.path)
        except families.UnknownFamilyError:
            family = DOCUMENTED_FAMILY
    name = source.demo or (DEFAULT_DEMO if source.embedded else _safe_name(source.path.name))
    return Catalog([ServedModel(Entry(name, str(source.path), {}, "code"), source, family, None, default=True)])


def of(models):
    """`models` as a Catalog: a Catalog as it is, a lone ModelSource as a one-model one."""
    return single(models) if isinstance(models, model_source.ModelSource) else models


class Builders:
    """The embedded demo models' builders, driven together by the supervisor and gunicorn's start hook."""

    def __init__(self, sources):
        self.builders = [model_source.EmbeddedModelBuilder(s) for s in sources if s.embedded]

    def build_now(self):
        """Build every missing demo model, one after another; raise if one fails."""
        for builder in self.builders:
            builder.build_now()

    def build_in_background(self):
        """Start a build of each missing demo model (one subprocess each); never blocks."""
        for builder in self.builders:
            builder.build_in_background()

    def ready(self):
        """True when every demo model is built."""
        return all(builder.ready() for builder in self.builders)

    def not_ready_paths(self):
        """The folders of demo models not built yet: jobs for them wait (others start)."""
        return {str(b.source.path) for b in self.builders if not b.ready()}
