"""`mmkit serve`: the REST API and the web page on http://HOST:PORT (loopback unless told otherwise)."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

import typer

from mmkit.apps.options import ModelOptions
from mmkit.cli import common as c

log = logging.getLogger("mmkit")


def _serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 8000,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest upload.", min=0.01)] = 20.0,
    max_megapixels: Annotated[
        float,
        typer.Option("--max-megapixels", help="Largest image (or video frame), checked before decoding."),
    ] = 40.0,
    device: c.Device = "auto",
    threads: c.Threads = None,
    *,
    models: ModelOptions,
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
        **vars(models), max_upload_mb=max_upload_mb, max_pixels=int(max_megapixels * 1e6), device=device
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


serve = c.options_command(_serve, "models", ModelOptions)
