"""Shared pytest fixtures (keep them small)."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Small real photos from scikit-image (CC0): RGB crops of 48x64 and one grayscale crop."""
    import skimage.data

    return {
        "astronaut": skimage.data.astronaut()[100:148, 180:244],
        "chelsea": skimage.data.chelsea()[60:108, 120:184],
        "coffee": skimage.data.coffee()[150:198, 200:264],
        "rocket": skimage.data.rocket()[200:248, 250:314],
        "camera": skimage.data.camera()[100:148, 200:264],
    }
