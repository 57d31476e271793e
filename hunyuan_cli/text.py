"""Text from servers and files, made safe to print on a terminal.

A prompt or an error can hold characters a terminal acts on (ESC starts escape
sequences that retitle windows or erase lines, CR rewinds a line), characters
no encoding can write (unpaired surrogates), and line breaks that would split a
table row. `printable` writes each of them as a visible escape instead. Both
command lines use it (`hunyuan-video` and `hunyuan-ops`); it needs only the
standard library, so the client stays free of the service's dependencies.
"""

import sys
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char):
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text):
    """`text` with every non-printable character written as an escape: ESC as `\\x1b`, a lone surrogate as `\\ud800`.

    Printable characters of any script stay as they are, and so do spaces of
    other widths (an ideographic space in a Chinese prompt). None becomes "".
    """
    if text is None:
        return ""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() or unicodedata.category(char) == "Zs" else _escape(char) for char in text
    )


def tolerate_any_terminal():
    """Let stdout and stderr write characters their encoding lacks as escapes instead of crashing.

    With an ASCII terminal (LANG=C, PYTHONIOENCODING=ascii) a prompt with an
    accent would otherwise end the command with UnicodeEncodeError.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass  # a stream that cannot change (already written to in an odd mode): leave it
