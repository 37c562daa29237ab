"""CoVR Explorer model layer: encoders, combiners, media, galleries, datasets and metrics.

This package never imports gradio. See docs/ARCHITECTURE.md for the module map.
"""

__version__ = "0.1.0"
