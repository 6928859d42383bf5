"""`mmkit serve`: the REST API and the web page on http://HOST:PORT (loopback unless told otherwise)."""

from __future__ import annotations

import logging
import secrets
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
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="MMKIT_TOKEN",
            help="Access token every API request must carry (the page passes it on from its URL's ?token=). "
            "Made up and printed when binding anything but loopback without one.",
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host", help="Another Host name to answer (behind a proxy; '*': any). Repeatable."
        ),
    ] = None,
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
    from mmkit.apps.serve.guard import is_loopback, is_wildcard

    if threads:
        torch.set_num_threads(threads)
    if not token and not is_loopback(host):
        token = secrets.token_urlsafe(24)  # reachable from other machines: never without a token
    config = ServeConfig(
        **vars(models),
        max_upload_mb=max_upload_mb,
        max_pixels=int(max_megapixels * 1e6),
        device=device,
        host=host,
        token=token or None,
        allow_hosts=tuple(allow_host or ()),
    )
    app = create_app(config)  # loads every model now: bad weights fail here, as one line
    loaded = [k for k, v in app.state.hub.describe().items() if v["loaded"]]
    page = f"http://{'localhost' if is_wildcard(host) else host}:{port}/"
    log.info("serve: %s; page %s, API docs %sdocs", ", ".join(loaded) or "no models", page, page)
    if config.token:
        log.info("serve: access token %s (open %s?token=%s)", config.token, page, config.token)
    uvicorn.run(app, host=host, port=port, log_level="info")


serve = c.options_command(_serve, "models", ModelOptions)
