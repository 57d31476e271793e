"""The models one server offers: each model's source, family, parameter table and state.

The MODELS setting (hunyuan_core/models_setting.py) names them; this module makes
them: a demo name becomes the embedded demo model's folder under DATA_DIR/models,
a folder's family is read from its model_index.json (families.family_of) when the
catalog is made, and a folder that does not exist yet is not ready (requests naming
it get a 503 that says why) until it appears, when its family is read. The first
model is the default one.
"""

from dataclasses import replace
from pathlib import Path

from . import families, model_source, params
from .errors import InvalidInput
from .models_setting import DEFAULT_DEMO, Entry, entries_from_settings, looks_like_demo, safe_name

# The 13B text-to-video family is the API document's: the global settings shape its table, as they always did.
DOCUMENTED_FAMILY = families.FAMILIES["HunyuanVideoPipeline"]


class ServedModel:
    """One model the server offers: its name, source, family and parameter table."""

    def __init__(self, entry, source, family, settings, default=False):
        self.name = entry.name
        self.entry = entry
        self.source = source
        self.default = default
        self._family = family
        self._settings = settings
        self._table = None

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
        """The parameter table requests for this model are validated and resolved with.

        Kept once everything it depends on could be read (the family, and a 1.5
        model's resolution class); until then made afresh, so a folder that appears
        later is taken as it is.
        """
        if self._table is not None:
            return self._table
        family = self.family
        table = parameter_table(family, self._settings, self.entry.options)
        settled = self._family is not None
        if family.bucketed:
            if (self.source.path / "transformer" / "config.json").is_file():
                table = _bucket_defaults(table, family, families.target_size(self.source.path), self.entry.options)
            else:
                settled = False
        if settled:
            self._table = table
        return table

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


def _bucket_defaults(table, family, target, options):
    """A bucketed (1.5) model's table with its resolution class's defaults: size and flow shift.

    The family's table names the 480p class's 848x480 and shift 5; a model of another
    class (720p, or a demo's scaled-down one) makes its own 16:9 size, so a default
    request needs no rounding, and takes Tencent's shift for its class (unless its
    MODELS entry sets one). Ranges only widen to hold the defaults: a size /api/info
    shows as the default is one a client may send back.
    """
    width, height = families.nearest_bucket(16, 9, target, family.size_multiple)
    defaults = {"width": width, "height": height}
    if "default_flow_shift" not in options:
        defaults["flow_shift"] = families.recommended_flow_shift(family, target)
    return tuple(
        replace(p, default=defaults[p.name], minimum=min(p.minimum, defaults[p.name]),
                maximum=max(p.maximum, defaults[p.name]))
        if p.name in defaults else p
        for p in table
    )


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
            # repr() shows control characters escaped; a long name is cut, not echoed whole.
            shown = repr(name) if len(str(name)) <= 64 else repr(str(name)[:64]) + "..."
            raise InvalidInput("model", f"Unknown model {shown}; known models: {', '.join(self.names)}.") from None

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
        if looks_like_demo(entry.source):
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
    name = source.demo or (DEFAULT_DEMO if source.embedded else safe_name(source.path.name))
    return Catalog([ServedModel(Entry(name, str(source.path), {}, "code"), source, family, None, default=True)])


def of(models):
    """`models` as a Catalog: a Catalog as it is, a lone ModelSource as a one-model one."""
    return single(models) if isinstance(models, model_source.ModelSource) else models

