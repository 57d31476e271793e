"""How hunyuan-ops prints: sizes and ages for people, JSON for scripts, unreadable records."""

import json

from hunyuan_cli.text import printable


def human_bytes(count):
    """`812 B`, `3.4 MB`, `1.2 GB`."""
    if count is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000


def human_age(seconds):
    """`45s`, `12m`, `5h`, `3d`."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def emit(args, value, text_lines):
    """Print `value` as JSON with --json, else the text lines.

    Text that came from job files or file names must already have gone through
    `printable`; JSON escapes every non-ASCII character by itself (ensure_ascii).
    """
    if args.json:
        print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=True))
    else:
        for line in text_lines:
            print(line)


def unreadable_lines(unreadable):
    """One line per job file that cannot be read, saying why."""
    return [f"UNREADABLE {printable(bad['file'])}: {printable(bad['error'])}" for bad in unreadable]
