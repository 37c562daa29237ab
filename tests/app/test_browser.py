"""A real headless Chromium drives the page: upload, type, search, see k results; hover the map."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture()
def page(open_page):
    return open_page()


def test_upload_type_search_shows_k_results(page, shoot):
    page.locator("#covr-details").get_by_text("Encoder, checkpoint and gallery").click()  # the details panel
    header = page.locator("#covr-header").inner_text()
    assert "Encoder" in header and os.environ.get("COVR_TEST_ENCODER", "lite") in header
    page.set_input_files("#ref-image input[type=file]", str(REPO / "assets" / "images" / "apple.jpg"))
    page.wait_for_selector("#ref-status :text('Reference encoded')", timeout=120_000)
    page.fill("#mod-text textarea", "make it an orange")
    page.click("#search-btn")
    page.wait_for_selector("#search-status :text('results')", timeout=120_000)
    items = page.locator("#results .thumbnail-item")
    items.first.wait_for(timeout=60_000)
    assert items.count() == 12
    captions = page.locator("#results .caption-label, #results .thumbnail-item").all_inner_texts()
    assert any(c.strip().startswith("#1 ·") for c in captions), captions[:3]
    shoot(page, "browser-search.png")
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_map_hover_shows_a_thumbnail(page, shoot):
    page.get_by_role("tab", name="Explore").click()
    page.get_by_role("tab", name="Map").click()
    points = page.locator("#covr-map .scatterlayer .point")
    points.first.wait_for(timeout=120_000)
    assert points.count() > 10
    tip = page.locator("#covr-map .covr-map-tip")
    for i in range(min(points.count(), 8)):  # the first point with a thumbnail (videos may have none)
        box = points.nth(i).bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(400)
        if tip.is_visible() and tip.locator("img").count():
            break
    assert tip.is_visible()
    img = tip.locator("img")
    assert img.count() == 1
    page.wait_for_function(
        "el => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=30_000
    )
    assert tip.locator(".covr-map-caption").inner_text().strip()
    shoot(page, "browser-map-hover.png", full_page=False)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(":text('Use it as the reference in Search')", timeout=30_000)
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_explore_lists_an_evaluation_written_after_start(page, live_app, shoot):
    from test_explore_live import write_evaluation

    if not (live_app.data_dir / "evaluations" / "zz-browser").exists():
        write_evaluation(live_app.data_dir, "zz-browser", 620, ["NA", "MLP"])
    page.get_by_role("tab", name="Explore").click()
    page.wait_for_selector("#explore-page-info :text('matching queries')", timeout=120_000)
    page.click("#explore-refresh")
    page.wait_for_timeout(1500)
    page.locator("#explore-bench input").click()
    option = page.get_by_role("option", name="zz-browser")
    option.wait_for(timeout=60_000)
    option.click()
    page.wait_for_selector("#explore-page-info :text('of 620 matching queries')", timeout=120_000)
    shoot(page, "browser-explore-refresh.png", full_page=False)
    assert not page.errors, page.errors  # type: ignore[attr-defined]
