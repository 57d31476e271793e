"""Schemas of the service's own endpoints: /health and the model state it shows."""

import marshmallow as ma


class ModelStateSchema(ma.Schema):
    """The model the service generates with."""

    name = ma.fields.String()
    path = ma.fields.String()
    embedded = ma.fields.Boolean(metadata={"description": "True for the built-in demo model"})
    demo = ma.fields.Boolean(metadata={"description": "True when videos are noise (random weights)"})
    description = ma.fields.String()
    ready = ma.fields.Boolean()
    problem = ma.fields.String(allow_none=True)
    # In `models` (one entry per configured model): the name requests use, and what the model is.
    served_as = ma.fields.String(metadata={"description": "The name a request's `model` field gives"})
    family = ma.fields.String(metadata={"description": "hunyuanvideo, hunyuanvideo-i2v, hunyuanvideo-1.5 or "
                                        "hunyuanvideo-1.5-i2v (from its model_index.json)"})
    task = ma.fields.String(metadata={"description": "text-to-video or image-to-video"})


class HealthModelSchema(ModelStateSchema):
    """The model as /health shows it: open without a key, so without its path (on /api/info)."""

    class Meta:
        exclude = ("path",)


class HealthSchema(ma.Schema):
    """GET /health."""

    status = ma.fields.String(metadata={"description": "healthy, starting (a model is not ready yet) or unhealthy"})
    model_loaded = ma.fields.Boolean(metadata={"description": "True when every model is ready for runners to load"})
    active_jobs = ma.fields.Integer(metadata={"description": "Jobs processing now"})
    queued_jobs = ma.fields.Integer()
    total_jobs = ma.fields.Integer()
    running_runners = ma.fields.Integer(metadata={"description": "Jobs whose runner processes are alive"})
    max_workers = ma.fields.Integer()
    unreadable_jobs = ma.fields.Integer()
    model = ma.fields.Nested(HealthModelSchema, metadata={"description": "The default model"})
    models = ma.fields.List(ma.fields.Nested(HealthModelSchema), metadata={"description": "Every configured model"})
    problems = ma.fields.List(ma.fields.String())
