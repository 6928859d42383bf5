"""`mmkit serve`: a REST API (FastAPI) and a static page over the mmkit models.

from mmkit.apps.serve import ServeConfig, create_app
app = create_app(ServeConfig(detector="runs/detect/exp/best.pt"))   # then uvicorn.run(app)
"""

from mmkit.apps.serve.app import create_app
from mmkit.apps.serve.hub import ModelHub, ServeConfig

__all__ = ["ModelHub", "ServeConfig", "create_app"]
