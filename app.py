"""CoVR Explorer: composed image/video retrieval demo. ``python app.py`` serves http://127.0.0.1:7860.

The page answers within seconds; the model weights, the galleries and the bundled demo gallery are then
prepared while it is served, with their progress in the page. Every flag also has an environment
variable (a Hugging Face Space runs ``python app.py`` with none): see the table in README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from covr_core.factory import resolve_encoder_choice
from covr_core.pretrained import WeightsIntegrityError, WeightsUnavailableError
from covr_core.settings import APP_ENV_VARS, COMPUTE_ENV_VARS, AppOptions, app_options_from_env


def parse_args(argv: list[str] | None = None) -> AppOptions:
    """Flags over the ``COVR_*`` environment (flag > variable > default); host and port follow Gradio's
    GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    env = app_options_from_env()
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Environment: " + ", ".join([*APP_ENV_VARS, *COMPUTE_ENV_VARS]) + ", COVR_MODEL_CONFIGS, "
        "HF_HOME, HF_HUB_OFFLINE, GRADIO_SERVER_NAME, GRADIO_SERVER_PORT.",
    )
    for var, (attr, flag, default, meaning) in APP_ENV_VARS.items():
        p.add_argument(
            flag,
            dest=attr,
            default=getattr(env, attr),
            help=f"{meaning.replace('`', '')} [${var}; default {default.replace('`', '')}]",
        )
    a = p.parse_args(argv)
    return AppOptions(**vars(a))


def main(argv: list[str] | None = None) -> None:
    """Decide the encoder (fast), serve the page, then load everything with progress in the page."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_args(argv)
    if options.webvid_root:  # read by explorer.filter_view.webvid_root
        os.environ["COVR_WEBVID_ROOT"] = options.webvid_root
    if options.data_dir is not None:  # read where no options travel (the compile cache's default folder)
        os.environ["COVR_DATA_DIR"] = str(options.data_dir)
    # decide first, without torch or gradio: a request that cannot work stops within seconds
    try:
        choice = resolve_encoder_choice(options.encoder, options.weights, options.checkpoint, options.blip_source)
    except (ValueError, WeightsUnavailableError, WeightsIntegrityError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    # `spaces` (ZeroGPU) has to come before anything initialises CUDA: explorer.spaces imports it first
    import explorer.spaces  # noqa: F401
    from explorer.bootstrap import run_startup
    from explorer.services import Services
    from explorer.ui import build_demo, launch_kwargs, queue_kwargs
    from explorer.ui_startup import sync_media_paths
    from precompute.demo import DemoJobs

    services = Services.create(options, choice)
    demo = build_demo(services)
    demo.queue(**queue_kwargs(services))
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        prevent_thread_lock=True,
        **launch_kwargs(services),
    )
    # the main thread does the slow part (ZeroGPU emulates CUDA in this thread) while the server answers
    # the app reads, jobs write: the bundled demo's folders come from the demo jobs' chain
    run_startup(services, DemoJobs(services.data_dir), on_galleries=lambda: sync_media_paths(services))
    demo.block_thread()


if __name__ == "__main__":
    main()
