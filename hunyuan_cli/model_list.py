"""`hunyuan-video models`: the server's models as GET /api/info lists them, with their ranges as flags."""

from .text import printable


def models_of(info):
    """The models of an /api/info answer; a server from before `models` existed has its one model."""
    models = info.get("models")
    if isinstance(models, list) and models:
        return models
    model = info.get("model") or {}
    return [{"name": model.get("name"), "family": "hunyuanvideo", "task": "text-to-video", "takes_image": False,
             "demo": model.get("demo"), "ready": model.get("ready"), "problem": model.get("problem"),
             "default": True, "parameters": info.get("parameters") or {}, "unused_fields": [],
             "size_rules": info.get("size_rules") or {}}]


def _number(value):
    return f"{value:g}" if isinstance(value, (int, float)) else printable(value)


def describe(models, flag_for):
    """Lines for people: each model's task, family and state, then its ranges by flag (`flag_for`: field -> flag).

    Parameters follow `flag_for`'s order; fields a model does not use are named
    on a line of their own rather than shown with ranges that mean nothing.
    """
    lines = []
    for model in models:
        state = "ready" if model.get("ready") else f"not ready: {model.get('problem') or 'being prepared'}"
        marks = [model.get("task"), model.get("family")] + (["demo"] if model.get("demo") else []) + [state]
        lines.append(printable(f"{model.get('name')}{' (default)' if model.get('default') else ''}: "
                               + ", ".join(str(mark) for mark in marks if mark)))
        rules = model.get("size_rules") or {}
        if model.get("takes_image"):
            lines.append(printable(f"  --image FILE               required (PNG, JPEG or WebP); "
                                   f"{rules.get('from_image') or 'the video starts from it'}"))
        parameters = model.get("parameters") or {}
        unused = list(model.get("unused_fields") or [])
        order = list(flag_for) + sorted(set(parameters) - set(flag_for))
        for name in order:
            if name in parameters and name not in unused:
                p = parameters[name]
                lines.append(printable(f"  {flag_for.get(name, name):26} {_number(p.get('minimum'))}-"
                                       f"{_number(p.get('maximum'))}, default {_number(p.get('default'))}"))
        if unused:
            lines.append(printable("  not used: " + ", ".join(flag_for.get(name, name) for name in unused)))
        if rules.get("buckets"):
            sizes = ", ".join(f"{ratio} {size}" for ratio, size in rules["buckets"].items())
            lines.append(printable(f"  sizes: {sizes}"))
    return lines
