"""A small Server-Sent Events parser for the tests (the format of text/event-stream)."""

import json


def parse_blocks(text):
    """Split SSE text into messages: dicts with `event`, `id`, `data` (parsed JSON), or `comment`, or `retry`."""
    messages = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        message = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                message["comment"] = line[1:].strip()
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            message[field] = json.loads(value) if field == "data" else value
        messages.append(message)
    return messages


def read_stream(chunks):
    """Read a whole stream from an iterable of byte or str chunks; return its messages."""
    text = "".join(chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in chunks)
    return parse_blocks(text)


def events_only(messages):
    """The messages that carry data (not comments or the retry hint)."""
    return [m for m in messages if "data" in m]
