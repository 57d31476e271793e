"""Schemas of the OpenAI-compatible face (/v1/videos): the Video object, the list, queries, bodies.

The create body is checked by POST /api/generate's own schema once `size` and
`seconds` are translated (hunyuan_core/video_objects.py); `VideoCreateSchema`
documents it.
"""

from copy import deepcopy

import marshmallow as ma
from marshmallow import validate

from hunyuan_core import video_objects

from .common import RANGE_ERROR
from .submission import GenerateRequestSchema

MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 20
VARIANTS = ("video", "thumbnail", "spritesheet")
# The generation fields of POST /api/generate a create body may add (the SDK's extra_body), as documented there.
EXTRA_FIELDS = ("seed", "negative_prompt", "num_inference_steps", "guidance_scale", "flow_shift",
                "embedded_guidance_scale", "fps", "webhook_url")


class VideoErrorSchema(ma.Schema):
    """Why a video failed or was canceled."""

    code = ma.fields.String(required=True, metadata={"enum": sorted(set(video_objects.ERROR_CODES.values()))})
    message = ma.fields.String(required=True)


class VideoObjectSchema(ma.Schema):
    """A video job, as OpenAI's Videos API describes one."""

    id = ma.fields.String(required=True, metadata={"description": "The job id (the same as /api/status/{job_id})"})
    object = ma.fields.String(required=True, metadata={"enum": [video_objects.OBJECT]})
    created_at = ma.fields.Integer(required=True, metadata={"description": "Unix seconds"})
    completed_at = ma.fields.Integer(required=True, allow_none=True,
                                     metadata={"description": "Unix seconds it finished (completed or failed)"})
    expires_at = ma.fields.Integer(required=True, allow_none=True, metadata={
        "description": "Unix seconds its files will be removed (VIDEO_TTL), once finished; null without VIDEO_TTL"})
    model = ma.fields.String(required=True, allow_none=True)
    progress = ma.fields.Integer(required=True, metadata={"description": "Percent, 0 to 100"})
    prompt = ma.fields.String(required=True, allow_none=True)
    seconds = ma.fields.String(required=True, allow_none=True,
                               metadata={"description": "How long the video lasts: frames / fps", "example": "4.067"})
    size = ma.fields.String(required=True, allow_none=True, metadata={"example": "640x480"})
    status = ma.fields.String(required=True, metadata={
        "enum": ["queued", "in_progress", "completed", "failed"],
        "description": "A canceled job is `failed`, with error.code `canceled`"})
    error = ma.fields.Nested(VideoErrorSchema, required=True, allow_none=True)
    remixed_from_video_id = ma.fields.String(required=True, allow_none=True)


class VideoListSchema(ma.Schema):
    """One page of videos."""

    object = ma.fields.String(required=True, metadata={"enum": ["list"]})
    data = ma.fields.List(ma.fields.Nested(VideoObjectSchema), required=True)
    first_id = ma.fields.String(required=True, allow_none=True)
    last_id = ma.fields.String(required=True, allow_none=True,
                               metadata={"description": "Pass as `after` for the next page"})
    has_more = ma.fields.Boolean(required=True)


class VideoListQuerySchema(ma.Schema):
    """The query of GET /v1/videos."""

    after = ma.fields.String(metadata={"description": "The id of the last video of the previous page"})
    limit = ma.fields.Integer(load_default=DEFAULT_LIST_LIMIT,
                              validate=validate.Range(min=1, max=MAX_LIST_LIMIT, error=RANGE_ERROR))
    order = ma.fields.String(load_default="desc", validate=validate.OneOf(("asc", "desc")),
                             metadata={"description": "By creation time: desc newest first (the default), asc "
                                                      "oldest first"})


class ContentQuerySchema(ma.Schema):
    """The query of GET /v1/videos/{video_id}/content."""

    variant = ma.fields.String(load_default="video", validate=validate.OneOf(VARIANTS), metadata={
        "description": "video: the MP4; thumbnail: its first frame as a JPEG; spritesheet: not made by this "
                       "service (404)"})


class VideoDeletedSchema(ma.Schema):
    """The answer to DELETE /v1/videos/{video_id}."""

    id = ma.fields.String(required=True)
    object = ma.fields.String(required=True, metadata={"enum": [video_objects.DELETED_OBJECT]})
    deleted = ma.fields.Boolean(required=True)


class RemixRequestSchema(ma.Schema):
    """The body of POST /v1/videos/{video_id}/remix: a new prompt (checked as /api/generate checks one)."""

    prompt = deepcopy(GenerateRequestSchema._declared_fields["prompt"])


def _extra_fields():
    fields = {}
    for name in EXTRA_FIELDS:
        field = deepcopy(GenerateRequestSchema._declared_fields[name])
        description = field.metadata.get("description", "")
        field.metadata = dict(field.metadata, description=f"This service's own field (the SDK's extra_body). "
                                                          f"{description}")
        fields[name] = field
    return fields


class VideoCreateSchema(ma.Schema.from_dict(_extra_fields())):
    """The body of POST /v1/videos (documentation: the view translates it and checks it as /api/generate's)."""

    prompt = deepcopy(GenerateRequestSchema._declared_fields["prompt"])
    model = ma.fields.String(metadata={"description": "A model name from GET /api/info `models`; absent: the "
                                                      "first configured model", "example": "demo-hunyuanvideo"})
    size = ma.fields.String(metadata={"description": "WIDTHxHEIGHT in pixels within the model's ranges, rounded "
                                                     "as /api/generate rounds width and height", "example": "640x480"})
    seconds = ma.fields.String(metadata={"description": "Length in seconds (a string): frames = seconds x fps "
                                                        "(the fps field, else the model's default), rounded to "
                                                        "the frame counts the model makes", "example": "4"})
    input_reference = ma.fields.String(metadata={
        "description": "Image-to-video models only (and required by them): the first frame, a data: URL "
                       "(or {\"image_url\": data URL}) in JSON, a file part in multipart/form-data"})


class VideoCreateFormSchema(VideoCreateSchema):
    """The multipart/form-data body of POST /v1/videos (what the OpenAI SDK sends)."""

    input_reference = ma.fields.Raw(metadata={
        "type": "string", "format": "binary",
        "description": "Image-to-video models only (and required by them): the first frame, a PNG, JPEG or "
                       "WebP file"})
