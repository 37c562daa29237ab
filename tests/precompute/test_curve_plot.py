"""The MLP training-curve figure (precompute._curve_plot): the data drawn, the best epoch, the shared print
style of covr_core.figure_style (sizes, fonts, colours, DPI), the PNG / PDF / SVG files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.font_manager import FontProperties, findfont
from PIL import Image

from covr_core import figure_style
from precompute._curve_plot import HEIGHT_IN, LOSS_COLOUR, PRESET, RECALL_COLOUR, curve_figure, save_curve

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


def test_the_figure_takes_the_shared_print_style():
    fig = curve_figure(EPOCHS, LOSSES, RECALLS, best_epoch=2)
    assert tuple(fig.get_size_inches()) == (figure_style.COLUMN_WIDTHS_IN[PRESET], HEIGHT_IN)  # print size
    assert (LOSS_COLOUR, RECALL_COLOUR) == figure_style.SERIES_COLOURS[:2]
    loss_ax, recall_ax = fig.axes
    (loss_line,), (recall_line, best) = loss_ax.get_lines(), recall_ax.get_lines()
    assert [to_rgb(x.get_color()) for x in (loss_line, recall_line, best)] == [
        to_rgb(c) for c in (*figure_style.SERIES_COLOURS[:2], figure_style.GUIDE_COLOUR)]
    texts = figure_style.visible_texts(fig)
    with figure_style.paper_style():  # the family the style resolves when the figure is saved
        assert {FontProperties(fname=findfont(t.get_fontproperties())).get_name() for t in texts} == {
            figure_style.FONT_FAMILY}
    assert not figure_style.too_small_text(fig)
    sizes = {t.get_text(): t.get_fontsize() for t in texts}
    assert sizes["train loss"] == sizes["best epoch 2"] == figure_style.DEFAULT_FONT_PT  # labels, legend
    assert sizes["MLP combiner training"] == figure_style.DEFAULT_FONT_PT + 1  # the style's figure title


def test_files_hold_both_series_at_print_resolution(tmp_path):
    files = save_curve(tmp_path / "sub" / "mlp.curve.png", EPOCHS, LOSSES, RECALLS, best_epoch=2)
    assert {f: p.name for f, p in files.items()} == {"png": "mlp.curve.png", "pdf": "mlp.curve.pdf",
                                                    "svg": "mlp.curve.svg"}
    pdf = files["pdf"].read_bytes()
    assert b"/FontFile2" in pdf and b"DejaVuSans" in pdf  # TrueType embedded (figure_style: pdf.fonttype 42)
    svg = files["svg"].read_text()
    assert 'width="496.8pt"' in svg and "<text" not in svg  # 6.9 in wide, glyphs as paths
    img = Image.open(files["png"])
    assert img.size == (round(6.9 * figure_style.PNG_DPI), round(HEIGHT_IN * figure_style.PNG_DPI))
    assert img.info["dpi"] == pytest.approx((figure_style.PNG_DPI,) * 2, abs=0.01)
    img = img.convert("RGB")
    pixels = np.asarray(img).reshape(-1, 3).astype(int)
    half = img.size[0] // 2
    left, right = np.asarray(img)[:, :half].reshape(-1, 3), np.asarray(img)[:, half:].reshape(-1, 3)
    for colour, panel, other in ((LOSS_COLOUR, left, right), (RECALL_COLOUR, right, left)):
        rgb = np.array([round(255 * c) for c in to_rgb(colour)])
        assert (np.abs(panel.astype(int) - rgb).sum(axis=1) < 30).sum() > 500, colour  # the line is drawn
        assert (np.abs(other.astype(int) - rgb).sum(axis=1) < 30).sum() == 0, colour  # in its own panel
    assert len(np.unique(pixels, axis=0)) > 20
    with pytest.raises(ValueError, match="PNG"):
        save_curve(tmp_path / "mlp.curve.pdf", EPOCHS, LOSSES, RECALLS)
