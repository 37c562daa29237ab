"""CoVR Explorer: composed image/video retrieval demo. ``python app.py`` serves http://127.0.0.1:7860."""

from __future__ import annotations

import argparse
import logging
import os

from covr_core.factory import ENCODER_CHOICES
from explorer.services import Services
from explorer.ui import build_demo, launch_kwargs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags; host and port follow Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument(
        "--encoder",
        default=os.environ.get("COVR_ENCODER", "auto"),
        choices=ENCODER_CHOICES,
        help="auto: BLIP when its weights are local or downloadable, else the offline lite encoder",
    )
    p.add_argument(
        "--checkpoint", default=None, help="CoVR checkpoint (.ckpt/.pth/.safetensors) applied on top"
    )
    p.add_argument(
        "--mlp", default=None, help="trained MLP combiner (.safetensors): enables the MLP combiner"
    )
    p.add_argument(
        "--gallery", default=None, help="default gallery: a folder, or a name under <data>/galleries/"
    )
    p.add_argument("--data-dir", default=None, help="data folder (default: $COVR_DATA_DIR or ./data)")
    p.add_argument("--device", default="cpu", help="torch device of the encoder")
    p.add_argument(
        "--webvid-root",
        default=os.environ.get("COVR_WEBVID_ROOT"),
        help="WebVid videos as <root>/<pth>.mp4 for the filter view's example frames "
        "(default: $COVR_WEBVID_ROOT or <data>/webvid)",
    )
    p.add_argument(
        "--dtype",
        default=os.environ.get("COVR_DTYPE", "float32"),
        choices=("float32", "bfloat16", "float16"),
        help="encoder precision; bfloat16 halves BLIP's CPU latency (galleries stay compatible)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Build the services and the page, then serve it (never a public share link)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    a = parse_args(argv)
    if a.webvid_root:  # read by explorer.filter_view.webvid_root
        os.environ["COVR_WEBVID_ROOT"] = a.webvid_root
    services = Services.create(a.encoder, a.gallery, a.data_dir, a.checkpoint, a.device, a.mlp, a.dtype)
    demo = build_demo(services)
    demo.queue(default_concurrency_limit=services.settings.limits.max_concurrent_jobs)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_kwargs(services),
    )


if __name__ == "__main__":
    main()
