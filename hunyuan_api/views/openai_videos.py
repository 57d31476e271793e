"""OpenAI-compatible videos (/v1/videos): a second face on the same jobs, for the official SDKs and gateways.

Everything a request asks is done by the same services as /api/*: submission
(hunyuan_core/submission.py), the job rules (hunyuan_core/jobs.py: another key's
job is an unknown one), the index for listing, the safe file helper for content.
What differs is the wording: `size` and `seconds` instead of width, height and
video_length, the Video object (hunyuan_core/video_objects.py), and errors in
OpenAI's shape (api.py renders them through openai_errors.py).
"""

import marshmallow as ma
from flask import current_app
from flask import request as flask_request
from flask.views import MethodView
from flask_smorest import abort
from webargs.core import missing

from hunyuan_core import idempotency, images, jobs, video_objects
from hunyuan_core.errors import InvalidInput, NotFound
from hunyuan_core.job_record import JobStatus

from .. import auth, uploads
from ..api import Blueprint, RequestParser
from ..body_limits import UPLOAD_MIMETYPE
from ..job_files import send_artifact
from ..schemas.openai_videos import (
    ContentQuerySchema,
    RemixRequestSchema,
    VideoDeletedSchema,
    VideoListQuerySchema,
    VideoListSchema,
    VideoObjectSchema,
)
from ..schemas.submission import GenerateRequestSchema
from ..services import services, viewer
from .jobs import IDEMPOTENCY_HEADER

blp = Blueprint("openai_videos", __name__, url_prefix="/v1",
                description="OpenAI-compatible videos API (the official `openai` SDKs' client.videos)")

INPUT_REFERENCE = "input_reference"
POLL_HEADER = "openai-poll-after-ms"
# How the SDK sends an input_reference given as an object ({"image_url": ...}) in a multipart body.
_REFERENCE_URL = f"{INPUT_REFERENCE}[image_url]"
_REFERENCE_FILE_ID = f"{INPUT_REFERENCE}[file_id]"
CREATE_BODY = {
    "required": True,
    "description": "multipart/form-data (what the SDK sends; input_reference as a file part) or JSON "
    "(input_reference as a data: URL). This service's own generation fields (the SDK's extra_body) are "
    "accepted beside OpenAI's and checked exactly as POST /api/generate checks them.",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/VideoCreate"}},
        UPLOAD_MIMETYPE: {"schema": {"$ref": "#/components/schemas/VideoCreateForm"}},
    },
}
POLL_HEADER_DOC = {POLL_HEADER: {"description": "How long a polling client should wait before asking again "
                                                "(from the job's estimate, 500 to 10000)",
                                 "schema": {"type": "integer"}}}


def _missing_video(video_id):
    return NotFound(f"No video with id {video_id!r}")


def _find(video_id):
    """The job `video_id` this request may see, else NotFound worded for videos."""
    try:
        return jobs.find_job(services().store, video_id, auth.access())
    except NotFound:
        raise _missing_video(video_id) from None


def _video(job):
    return video_objects.video_object(job, current_app.config.get("VIDEO_TTL") or 0)


def _reference(fields, data):
    """The input image's bytes, taking input_reference's object form ({"image_url": data URL}) too."""
    if fields.pop(_REFERENCE_FILE_ID, None) is not None:
        raise InvalidInput(INPUT_REFERENCE, "File ids are not supported; send the image itself (a file, or a "
                                            "data: URL in image_url)")
    url = fields.pop(_REFERENCE_URL, None)
    if url is None:
        return data
    if data is not None:
        raise InvalidInput(INPUT_REFERENCE, "Given both as a file and as image_url; send it once")
    return images.parse_data_url(url, INPUT_REFERENCE)


def _create_body():
    """`(fields, image bytes or None)` of a POST /v1/videos body, multipart or JSON."""
    if flask_request.mimetype == UPLOAD_MIMETYPE:
        fields, data, _ = uploads.generate_body(flask_request, GenerateRequestSchema, image_field=INPUT_REFERENCE)
        return fields, _reference(fields, data)
    fields = RequestParser().load_json(flask_request, None)
    if fields is missing:
        fields = {}
    if not isinstance(fields, dict):
        return fields, None
    reference = fields.pop(INPUT_REFERENCE, None)
    if isinstance(reference, dict):
        fields.update({f"{INPUT_REFERENCE}[{key}]": value for key, value in reference.items()})
        return fields, _reference(fields, None) if reference else None
    return fields, None if reference is None else images.parse_data_url(reference, INPUT_REFERENCE)


def _load(fields):
    """The /api/generate request `fields` stand for, checked by its schema (422 naming the field)."""
    try:
        return GenerateRequestSchema().load(fields)
    except ma.ValidationError as error:
        location = "form" if flask_request.mimetype == UPLOAD_MIMETYPE else "json"
        abort(422, messages={location: error.messages}, exc=error)


def _submit(request, image, **options):
    """Submit through the one submission service; its `image` errors are about input_reference here."""
    try:
        return services().submitter.submit(request, owner=auth.request_key_name(), image=image, **options)
    except InvalidInput as error:
        if error.field != "image":
            raise
        raise InvalidInput(INPUT_REFERENCE, error.message.replace("a multipart file part or a data: URL",
                                                                  "input_reference")) from None


@blp.route("/videos")
class Videos(MethodView):
    """POST /v1/videos, GET /v1/videos"""

    @blp.response(200, VideoObjectSchema)
    @blp.doc(parameters=[IDEMPOTENCY_HEADER], requestBody=CREATE_BODY)
    @blp.alt_response(400, description="The body is not valid JSON; a malformed Idempotency-Key")
    @blp.alt_response(409, description="The Idempotency-Key was used before with a different request body")
    @blp.alt_response(413, description="The body is larger than MAX_BODY_KB (MAX_UPLOAD_MB with an image)")
    @blp.alt_response(422, description="A field out of range or malformed (`param` names it), an unknown model "
                      "(the message lists the known ones), an image the model cannot take or needs")
    @blp.alt_response(429, description="The queue is full (MAX_QUEUE); Retry-After says when to try again")
    @blp.alt_response(503, description="Model not ready yet (Retry-After says when to try again)")
    @blp.alt_response(507, description="Free disk space in the data folder is below MIN_FREE_DISK_MB")
    def post(self):
        """Create a video (OpenAI: videos.create)

        `size` "WxH" sets width and height and `seconds` the frame count (seconds x
        fps, the model's default fps unless `fps` is given); both are rounded as
        POST /api/generate rounds, and the Video object reports what will be made.
        `model` picks a model from GET /api/info (absent: the first). This service's
        own fields (seed, num_inference_steps, guidance_scale, flow_shift,
        negative_prompt, fps, embedded_guidance_scale, webhook_url) may be added,
        as the SDK's `extra_body`; form fields are text and read as numbers where
        the field is one.
        """
        fields, data = _create_body()
        if isinstance(fields, dict):
            # The model first: size and seconds are judged by its ranges (an unknown one is a 422 naming it).
            fields = video_objects.generation_fields(fields, services().models.get(fields.get("model")))
        request = _load(fields)
        image = images.decode_image(data, INPUT_REFERENCE) if data is not None else None
        submitted = _submit(request, image, idempotency_key=flask_request.headers.get(idempotency.HEADER))
        return _video(submitted.job)

    @blp.arguments(VideoListQuerySchema, location="query")
    @blp.response(200, VideoListSchema)
    def get(self, query):
        """List videos (OpenAI: videos.list)

        A page of `limit` videos after the video `after`, by creation time (`order`:
        desc, newest first, or asc). With API keys, a key lists its own videos only
        (an admin key every one). `has_more` says whether another page follows;
        pass `last_id` as `after` to get it.
        """
        store = services().store
        try:
            ids, has_more = store.index.page_after(query.get("after"), query["limit"], query["order"],
                                                   auth.request_key_name(), auth.sees_every_job())
        except LookupError:
            raise InvalidInput("after", f"No video with id {query['after']!r} to list after") from None
        data = [_video(job) for job in store.read_many(ids, shared=True)]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": has_more}


@blp.route("/videos/<video_id>")
class Video(MethodView):
    """GET /v1/videos/{video_id}, DELETE /v1/videos/{video_id}"""

    @blp.response(200, VideoObjectSchema, headers=POLL_HEADER_DOC)
    @blp.alt_response(404, description="No such video (or another API key's)")
    def get(self, video_id):
        """Retrieve a video (OpenAI: videos.retrieve; videos.poll calls it)

        The `openai-poll-after-ms` header tells a polling client (the SDK's poll and
        create_and_poll) how long to wait before asking again, from the job's estimate.
        """
        job = _find(video_id)
        eta = None if JobStatus(job["status"]).is_terminal else viewer().describe(job)["eta_seconds"]
        return _video(job), 200, {POLL_HEADER: str(video_objects.poll_after_ms(eta))}

    @blp.response(200, VideoDeletedSchema)
    @blp.alt_response(400, description="The video is being made and cannot be deleted (cancel it first)")
    @blp.alt_response(404, description="No such video (or another API key's)")
    @blp.alt_response(409, description="The job has finished but its runner is still exiting (Retry-After)")
    def delete(self, video_id):
        """Delete a video (OpenAI: videos.delete)

        A queued video is removed from the queue; one being made must be canceled first
        (POST /api/jobs/{job_id}/cancel).
        """
        try:
            jobs.delete(services().store, video_id, auth.access())
        except NotFound:
            raise _missing_video(video_id) from None
        return video_objects.deleted_object(video_id)


@blp.route("/videos/<video_id>/content")
class Content(MethodView):
    """GET /v1/videos/{video_id}/content"""

    @blp.arguments(ContentQuerySchema, location="query")
    @blp.response(200, content_type="video/mp4", description="The MP4 (variant=video; Range requests answered "
                  "with 206), or the first frame as a JPEG (variant=thumbnail, image/jpeg)")
    @blp.alt_response(404, description="No such video, not completed, or variant=spritesheet (not made here)")
    def get(self, query, video_id):
        """Download a video's content (OpenAI: videos.download_content)"""
        job = _find(video_id)
        variant = query["variant"]
        if variant == "spritesheet":
            raise NotFound("This service makes no spritesheet; ask for variant=video (the MP4) or "
                           "variant=thumbnail (its first frame, a JPEG)")
        status = job["status"]
        if status != JobStatus.COMPLETED.value:
            raise NotFound(f"Video {video_id} has no content: its job is {status}; content exists once it "
                           "is completed")
        found = services()
        extension, kind, mimetype = ("mp4", "video", "video/mp4") if variant == "video" else (
            "jpg", "poster", "image/jpeg")
        missing_file = f"Video {video_id} has no {variant} file"
        jobs.find_served_file(found.store, f"{video_id}.{extension}", extension, kind, auth.access(), missing_file)
        return send_artifact(found.artifacts, video_id, kind, mimetype, missing_file)


@blp.route("/videos/<video_id>/remix")
class Remix(MethodView):
    """POST /v1/videos/{video_id}/remix"""

    @blp.arguments(RemixRequestSchema, location="json")
    @blp.response(200, VideoObjectSchema)
    @blp.alt_response(400, description="The body is not valid JSON")
    @blp.alt_response(404, description="No such video (or another API key's)")
    @blp.alt_response(429, description="The queue is full (MAX_QUEUE); Retry-After says when to try again")
    @blp.alt_response(503, description="Model not ready yet (Retry-After says when to try again)")
    @blp.alt_response(507, description="Free disk space in the data folder is below MIN_FREE_DISK_MB")
    def post(self, body, video_id):
        """Remix a video (OpenAI: videos.remix)

        A new video with the source's settings, the seed it used and input image,
        and the new prompt; its `remixed_from_video_id` names the source. The source
        may be in any state (its settings are all that is used).
        """
        source = _find(video_id)
        request = _load(video_objects.remix_request(source, body["prompt"]))
        image = video_objects.remix_image(services().store, source)
        return _video(_submit(request, image, remixed_from=source["job_id"]).job)
