"""The MLP training-curve figure (precompute._curve_plot): the data drawn, the best epoch, the PNG."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from precompute._curve_plot import LOSS_COLOUR, RECALL_COLOUR, curve_figure, save_curve

EPOCHS = [0, 1, 2, 3, 4]
LOSSES = [math.nan, 2.5, 1.8, 1.5, 1.45]
RECALLS = [10.0, 22.0, 31.5, 30.0, 29.0]


def test_figure_draws_the_history_and_marks_the_best_epoch():
    fig = curve_figure(EPOCHS, LOSSES, RECALLS, best_epoch=2, title="run 7")
    loss_ax, recall_ax = fig.axes
    (loss_line,) = loss_ax.get_lines()
    assert loss_line.get_xdata().tolist() == [1, 2, 3, 4]  # epoch 0 has no loss yet
    assert loss_line.get_ydata().tolist() == LOSSES[1:]
    recall_line, best = recall_ax.get_lines()
    assert recall_line.get_xdata().tolist() == EPOCHS and recall_line.get_ydata().tolist() == RECALLS
    assert np.asarray(best.get_xdata()).tolist() == [2, 2] and best.get_linestyle() == "--"
    assert [t.get_text() for t in recall_ax.get_legend().get_texts()] == ["best epoch 2"]
    assert (loss_ax.get_ylabel(), recall_ax.get_ylabel()) == ("train loss", "val R@1 (%)")
    assert fig.get_suptitle() == "run 7"
    assert all(float(t).is_integer() for t in recall_ax.get_xticks())  # whole epochs only


def test_without_best_epoch_there_is_no_marker():
    fig = curve_figure([0, 1], [math.nan, 1.0], [5.0, 6.0])
    assert len(fig.axes[1].get_lines()) == 1 and fig.axes[1].get_legend() is None


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        curve_figure([0, 1, 2], [1.0, 2.0], [1.0, 2.0, 3.0])


def test_png_holds_both_series(tmp_path):
    path = save_curve(tmp_path / "sub" / "mlp.curve.png", EPOCHS, LOSSES, RECALLS, best_epoch=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(path).convert("RGB")
    assert img.size == (900, 350)
    pixels = np.asarray(img).reshape(-1, 3).astype(int)
    half = img.size[0] // 2
    left, right = np.asarray(img)[:, :half].reshape(-1, 3), np.asarray(img)[:, half:].reshape(-1, 3)
    for colour, panel, other in ((LOSS_COLOUR, left, right), (RECALL_COLOUR, right, left)):
        rgb = np.array([round(255 * c) for c in to_rgb(colour)])
        assert (np.abs(panel.astype(int) - rgb).sum(axis=1) < 30).sum() > 50, colour  # the line is drawn
        assert (np.abs(other.astype(int) - rgb).sum(axis=1) < 30).sum() == 0, colour  # in its own panel
    assert len(np.unique(pixels, axis=0)) > 20
