"""mmkit: deep-learning multimedia analytics on PyTorch."""

__version__ = "0.1.0"
