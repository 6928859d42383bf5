"""`mmkit serve`: the REST API and the web page on http://HOST:PORT (loopback unless told otherwise)."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

import typer

from mmkit.cli import common as c

log = logging.getLogger("mmkit")


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 8000,
    classifier: Annotated[
        str,
        typer.Option(
            "--classifier", help="Classify checkpoint, or a weights name of --classifier-model ('': none)."
        ),
    ] = "imagenet",
    classifier_model: Annotated[
        str, typer.Option("--classifier-model", help="Model of a named --classifier weights.")
    ] = "efficientnet_lite0",
    detector: Annotated[str | None, typer.Option("--detector", help="Detect checkpoint (/detect).")] = None,
    face_db: Annotated[
        str | None,
        typer.Option("--face-db", help="SQLite face gallery (created if new); needs --face-weights."),
    ] = None,
    face_weights: Annotated[
        str | None,
        typer.Option(
            "--face-weights", help="Face checkpoint, or facenet's vggface2 (/faces/identify, /enroll)."
        ),
    ] = None,
    face_threshold: Annotated[
        float | None, typer.Option("--face-threshold", help="Squared L2 (default: the weights' own).")
    ] = None,
    captioner: Annotated[
        str | None, typer.Option("--captioner", help="Caption checkpoint (/caption).")
    ] = None,
    video: Annotated[str | None, typer.Option("--video", help="Video checkpoint (/video).")] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest upload.", min=0.01)] = 20.0,
    max_megapixels: Annotated[
        float,
        typer.Option("--max-megapixels", help="Largest image (or video frame), checked before decoding."),
    ] = 40.0,
    device: c.Device = "auto",
    threads: c.Threads = None,
) -> None:
    """Serve the models over HTTP: POST an image to /classify, /detect, /faces/..., /caption, a video to /video;
    the page at / draws the answers; the API is documented at /docs.

    Example: mmkit serve --detector runs/detect/exp/best.pt --face-db faces.db --face-weights runs/face/exp/best.pt
    """
    import torch
    import uvicorn

    from mmkit.apps.serve import ServeConfig, create_app

    if threads:
        torch.set_num_threads(threads)
    config = ServeConfig(
        classifier=classifier,
        classifier_model=classifier_model,
        detector=detector,
        face_db=face_db,
        face_weights=face_weights,
        face_threshold=face_threshold,
        captioner=captioner,
        video=video,
        max_upload_mb=max_upload_mb,
        max_pixels=int(max_megapixels * 1e6),
        device=device,
    )
    app = create_app(config)  # loads every model now: bad weights fail here, as one line
    if not _is_loopback(host):
        log.warning("serve: listening on %s, reachable from other machines; there is no authentication", host)
    loaded = [k for k, v in app.state.hub.describe().items() if v["loaded"]]
    log.info("serve: %s on http://%s:%d (page /, API docs /docs)", ", ".join(loaded), host, port)
    uvicorn.run(app, host=host, port=port, log_level="info")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
