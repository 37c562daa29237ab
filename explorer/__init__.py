"""CoVR Explorer's analyses (plain Python, tested without a browser) and its Gradio UI (``ui*.py``)."""
