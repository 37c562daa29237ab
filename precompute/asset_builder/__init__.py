"""Developer-time builder of the bundled ``assets/`` (media, ``gallery.csv``, attribution, the mini benchmark)
and of the lite encoder's ImageNet class data: ``python -m precompute.asset_builder --help``. The app and the
jobs never import it; its extra requirements are in ``requirements-assets.txt``."""
