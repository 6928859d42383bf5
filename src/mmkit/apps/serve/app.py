"""The REST API and the web page: `create_app(ServeConfig(...))` returns a FastAPI app; `mmkit serve` runs it.

    POST /classify /detect /faces/detect /faces/identify /faces/enroll /caption   multipart `file` (an image)
    POST /video                                                                    multipart `file` (a video)
    POST /analyze                                                                  multipart `files` (several)
    GET  /health /models /faces/people /docs /openapi.json /                       (/ is the page)

Endpoints are plain `def`s, so FastAPI runs them in its thread pool; each model is used by one thread at a time
(see `ModelHub`). Every refusal is a 4xx JSON `{"detail": "one line"}`: 413 too large (the body is cut off while it
streams in, before it is parsed), 415 not an accepted type (judged by content), 400 undecodable, 409 a model the
server was not started with (the message names the option), 422 a bad form field or query parameter.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from mmkit.apps.serve.guard import Guard
from mmkit.apps.serve.hub import ModelHub, ServeConfig
from mmkit.apps.serve.uploads import (
    ServeError,
    UploadedImage,
    UploadError,
    read_upload_image,
    save_upload_any,
    save_upload_video,
)
from mmkit.errors import MMKitError

log = logging.getLogger(__name__)

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and headers around the file(s)
MAX_ANALYZE_FILES = 8
PAGE = Path(__file__).with_name("static") / "index.html"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; media-src 'self' blob:",
    "X-Content-Type-Options": "nosniff",
}

ImageFile = Annotated[
    UploadFile, File(description="An image: JPEG, PNG, WebP, BMP or GIF (judged by content).")
]


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` (MAX_ANALYZE_FILES times that for /analyze) gets 413,
    from its Content-Length before anything is read, or as soon as the streamed bytes pass the limit."""

    def __init__(self, app, max_bytes: int, timeout: float = 30.0) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes * (MAX_ANALYZE_FILES if scope["path"] == "/analyze" else 1) + FORM_OVERHEAD
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await JSONResponse({"detail": "bad Content-Length header"}, 400)(scope, receive, send)
                return
            if int(declared) > limit:
                await _too_large(int(declared), limit)(scope, receive, send)
                return
        seen = 0

        async def counted():
            nonlocal seen
            try:  # a client that stops sending holds a worker and memory: 408 after `timeout` seconds of silence
                message = await asyncio.wait_for(receive(), self.timeout)
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body stalled for {self.timeout:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large_text(seen, limit))
            return message

        await self.app(scope, counted, send)


def in_image(img: UploadedImage, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results with their "box" [x1, y1, x2, y2] and "landmarks" [[x, y], ...] in the uploaded image's pixels
    (the models saw it reduced where it was larger than the working size)."""
    sx, sy = img.scale
    if sx == sy == 1:
        return items

    def scaled(v):
        if isinstance(v[0], list):
            return [scaled(p) for p in v]
        return [round(c * (sx if k % 2 == 0 else sy), 1) for k, c in enumerate(v)]

    return [{**r, **{k: scaled(r[k]) for k in ("box", "landmarks") if r.get(k)}} for r in items]


def work_min_face(img: UploadedImage, min_face: float) -> float:
    """The smallest face to find, in the (maybe reduced) pixels the detector sees; never below MTCNN's 12-pixel
    window, where it would have to enlarge the image again."""
    return max(min(min_face, 12.0), min_face / min(img.scale))


def _too_large_text(size: int, limit: int) -> str:
    return f"request body of {size / 2**20:.1f} MB or more is over the limit of {limit / 2**20:.1f} MB"


def _too_large(size: int, limit: int) -> JSONResponse:
    return JSONResponse({"detail": _too_large_text(size, limit)}, 413, headers={"Connection": "close"})


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The app for `config`; with `config.preload` every configured model is loaded now (bad weights fail here)."""
    from mmkit import __version__

    config = config or ServeConfig()
    hub = ModelHub(config)
    if config.preload:
        hub.load_all()
    limits = config.limits
    app = FastAPI(
        title="mmkit",
        version=__version__,
        description="Multimedia analytics with mmkit models: labels, boxes, faces, captions and video labels. "
        "Upload images and videos as multipart `file`; answers are JSON. The page at / draws the results.",
        docs_url=None,  # FastAPI's own pages load Swagger UI / ReDoc from a CDN: /docs is served from files here
        redoc_url=None,
    )
    _add_offline_docs(app)
    app.state.hub = hub
    app.add_middleware(BodyLimit, max_bytes=limits.max_bytes, timeout=config.body_timeout)
    app.add_middleware(
        Guard, bind_host=config.host, token=config.token, allow_hosts=tuple(config.allow_hosts)
    )
    _add_error_handlers(app)

    def image_of(file: UploadFile) -> UploadedImage:
        return read_upload_image(file.file.read(limits.max_bytes + 1), file.filename, limits)

    def about(img: UploadedImage) -> dict[str, Any]:
        return {"file": img.name, "width": img.width, "height": img.height}

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers=PAGE_HEADERS)

    @app.get("/health", tags=["server"])
    def health() -> dict[str, Any]:
        """Liveness: answers as long as the server serves."""
        return {"status": "ok", "version": __version__}

    @app.get("/models", tags=["server"])
    def models() -> dict[str, Any]:
        """Which models are configured and loaded, the option that configures each, and the upload limits."""
        return {
            "models": hub.describe(),
            "limits": {"max_upload_mb": config.max_upload_mb, "max_pixels": config.max_pixels},
            "device": str(hub.device),
        }

    @app.post("/classify", tags=["image"])
    def classify(file: ImageFile, topk: Annotated[int, Query(ge=1, le=100)] = 5) -> dict[str, Any]:
        """Top-k labels with probabilities (the ImageNet EfficientNet-Lite0 unless --classifier says otherwise)."""
        img = image_of(file)
        return {**about(img), "top": hub.classify(img.pixels, topk)}

    @app.post("/detect", tags=["image"])
    def detect(
        file: ImageFile,
        conf: Annotated[float, Query(ge=0, le=1)] = 0.25,
        iou: Annotated[float, Query(ge=0, le=1)] = 0.45,
    ) -> dict[str, Any]:
        """Boxes [x1, y1, x2, y2] in image pixels with score and class (needs --detector)."""
        hub.require("detector")  # 409 before reading the upload when there is no detector
        img = image_of(file)
        return {**about(img), "detections": in_image(img, hub.detect(img.pixels, conf, iou))}

    @app.post("/faces/detect", tags=["faces"])
    def faces_detect(file: ImageFile, min_face: Annotated[float, Query(ge=8)] = 20) -> dict[str, Any]:
        """Every face (MTCNN): box, score and five landmarks (eyes, nose, mouth corners)."""
        img = image_of(file)
        return {**about(img), "faces": in_image(img, hub.faces(img.pixels, work_min_face(img, min_face)))}

    @app.post("/faces/identify", tags=["faces"])
    def faces_identify(file: ImageFile, min_face: Annotated[float, Query(ge=8)] = 20) -> dict[str, Any]:
        """Every face with the nearest enrolled person, or "unknown" past the threshold (needs --face-db)."""
        hub.require("embedder")
        img = image_of(file)
        return {**about(img), "faces": in_image(img, hub.identify(img.pixels, work_min_face(img, min_face)))}

    @app.post("/faces/enroll", tags=["faces"])
    def faces_enroll(
        file: ImageFile,
        name: Annotated[str, Form(description="The person's name.")],
        min_face: Annotated[float, Query(ge=8)] = 20,
    ) -> dict[str, Any]:
        """Add the one face of the image to `name` in the gallery (needs --face-db)."""
        hub.require("embedder")
        img = image_of(file)
        r = hub.enroll(img.pixels, name, img.name, work_min_face(img, min_face))
        return {"file": img.name, **r, "face": in_image(img, [r["face"]])[0]}

    @app.get("/faces/people", tags=["faces"])
    def faces_people() -> dict[str, Any]:
        """Everyone enrolled in the gallery, with their number of faces."""
        return {"people": hub.people()}

    @app.post("/caption", tags=["image"])
    def caption(file: ImageFile, beam: Annotated[int, Query(ge=1, le=10)] = 3) -> dict[str, Any]:
        """A sentence (or paragraph) describing the image (needs --captioner)."""
        hub.require("captioner")
        img = image_of(file)
        return {**about(img), **hub.caption(img.pixels, beam)}

    @app.post("/video", tags=["video"])
    def video(
        file: Annotated[UploadFile, File(description="A video: MP4/MOV, WebM/Matroska or AVI.")],
        topk: Annotated[int, Query(ge=1, le=100)] = 5,
        segment_seconds: Annotated[float | None, Query(gt=0)] = None,
    ) -> dict[str, Any]:
        """Labels with scores for the whole video, and per segment with `segment_seconds` (needs --video)."""
        hub.require("video")
        with tempfile.TemporaryDirectory(prefix="mmkit-serve-") as tmp:
            v = save_upload_video(file.file.read(limits.max_bytes + 1), file.filename, Path(tmp), limits)
            try:
                result = hub.video(v.path, topk, segment_seconds)
            except MMKitError as e:
                raise UploadError(400, str(e).replace(str(v.path), v.name)) from e
        info = {
            "width": v.width,
            "height": v.height,
            "fps": round(v.fps, 3),
            "duration": round(v.duration, 3),
        }
        return {"file": v.name, **info, **result}

    analyze_lock = threading.Lock()
    analyze_models: list[Any] = []  # loaded by the first /analyze, then reused

    @app.post("/analyze", tags=["analyze"])
    def analyze(
        files: Annotated[list[UploadFile], File(description="Images and videos, analysed together.")],
        segment_seconds: Annotated[float, Query(gt=0)] = 5.0,
    ) -> dict[str, Any]:
        """`mmkit analyze` over the uploaded images and videos with the server's models: ImageNet labels, faces
        (named with --face-db), objects, captions, key frames and video labels, one record per file."""
        from mmkit.apps.analyze import analyze as run

        if len(files) > MAX_ANALYZE_FILES:
            raise ServeError(413, f"/analyze: {len(files)} files, at most {MAX_ANALYZE_FILES} per request")
        with tempfile.TemporaryDirectory(prefix="mmkit-analyze-") as tmp:
            inputs, out = Path(tmp) / "in", Path(tmp) / "out"
            inputs.mkdir()
            names: dict[str, str] = {}
            for i, f in enumerate(files):
                name, path = save_upload_any(f.file.read(limits.max_bytes + 1), f.filename, inputs, i, limits)
                names[str(path)] = name
            with analyze_lock:  # one analysis at a time, on the models the first one loaded
                if not analyze_models:
                    from mmkit.apps.analyze.models import load_models

                    analyze_models.append(load_models(config, device=config.device))
                doc = run(
                    inputs, out, progress=False, segment_seconds=segment_seconds, models=analyze_models[0]
                )
        doc = _rename(doc, names)
        doc["inputs"] = list(names.values())
        for rec in doc.get("files", []):  # drawn pictures and thumbnails stay in the deleted temporary folder
            for key in ("thumbnail", "picture"):
                rec.pop(key, None)
            for frame in rec.get("key_frames", []):
                if isinstance(frame, dict):
                    frame.pop("image", None)
        return doc

    return app


def _rename(obj: Any, names: dict[str, str]) -> Any:
    """The analyze result with the server's file names and paths replaced by the names the client gave."""
    if isinstance(obj, dict):
        return {k: _rename(v, names) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rename(v, names) for v in obj]
    if isinstance(obj, str):
        return names.get(obj, obj)
    return obj


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, e: ServeError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, e.status)

    @app.exception_handler(MMKitError)
    async def _mmkit_error(request: Request, e: MMKitError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, 400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        parts = []
        for err in e.errors():
            where = ".".join(str(x) for x in err.get("loc", ())[1:]) or "request"
            msg = (
                "missing (send it as a multipart form field)" if err.get("type") == "missing" else err["msg"]
            )
            parts.append(f"{where}: {msg}")
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, 422)

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> JSONResponse:
        log.exception("serve: %s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(e).__name__}); the server keeps serving"}, 500)


__all__ = ["ServeConfig", "create_app"]


def _add_offline_docs(app: FastAPI) -> None:
    """/docs: Swagger UI 5 (4.x cannot render the OpenAPI 3.1 that FastAPI writes) from the fastapi-offline
    package's files, served under /docs/ so the page works without a network and, like /docs, without the token."""
    import fastapi_offline
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_offline.__file__).with_name("static")
    app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="mmkit API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )
