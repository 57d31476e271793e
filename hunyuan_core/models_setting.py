"""The MODELS setting: comma-separated entries `[NAME=]SOURCE[;OPTION=VALUE...]`, parsed and checked.

SOURCE is a diffusers model folder or the name of an embedded demo model
(`demo-hunyuanvideo`, `demo-hunyuanvideo-i2v`, `demo-hunyuanvideo-1.5`,
`demo-hunyuanvideo-1.5-i2v`); NAME is what requests put in `model` (default: the
demo's name, or the folder's name); OPTIONs are per-model limits named like the
global settings, lower-cased (`min_steps`, `default_steps`, `max_steps`,
`default_flow_shift`, `max_flow_shift`). `MODEL_PATH` is a one-entry list; with
neither set the one model is `demo-hunyuanvideo`, as before MODELS existed.
Everything here is checked without touching the disk; hunyuan_core/catalog.py
makes the models.
"""

import math
import re
from dataclasses import dataclass
from pathlib import Path

from . import families

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
    if looks_like_demo(source):
        try:
            families.by_demo_name(source)
        except families.UnknownFamilyError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if equals and not name:
        raise ValueError(f"{where}: an empty name before '='")
    name = name or (source if looks_like_demo(source) else Path(source).name)
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


def looks_like_demo(source):
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
        return (Entry(safe_name(Path(path).expanduser().resolve().name), path, {}, "MODEL_PATH"),)
    return (Entry(DEFAULT_DEMO, DEFAULT_DEMO, {}, "the default"),)


def safe_name(name):
    """MODEL_PATH's folder name as a model name, made plain (MODEL_PATH never needed a name of its own)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.@-]", "-", name).lstrip("_.@-")[:64]
    return cleaned or "model"
