"""`mmkit analyze`: every model at hand over photos and videos -> analysis.json and report.html.

run.py walks the files and writes the results, models.py loads the models once and runs them on batches,
report.py draws the pictures and the HTML page.
"""

from mmkit.apps.analyze.models import Models, load_models
from mmkit.apps.analyze.run import THUMB_SIDE, analyze, collect_files, key_frames

__all__ = ["THUMB_SIDE", "Models", "analyze", "collect_files", "key_frames", "load_models"]
