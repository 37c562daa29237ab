"""What a person sees in Chromium (issue 13): one rank everywhere, state that follows the user, the weights
view, near-duplicates, the WebVid browser, the first impression at 400 px, and the paper-grade export.
Screenshots and the exported figure are kept in test-output/ for review."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "assets" / "images"
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1800)]
WAIT = 120_000


def _status(page) -> str:
    return page.locator("#search-status").inner_text()


def _search(page, image: str, text: str, combiner: str | None = None) -> str:
    page.set_input_files("#ref-image input[type=file]", str(IMAGES / image))
    page.wait_for_selector("#ref-status :text('Reference encoded')", timeout=WAIT)
    page.fill("#mod-text textarea", text)
    if combiner:
        _choose(page, "#combiner", combiner)
    before = _status(page)
    page.click("#search-btn")
    page.wait_for_function(
        "([b]) => { const t = document.querySelector('#search-status').innerText; "
        "return t !== b && t.includes('results'); }",
        arg=[before],
        timeout=WAIT,
    )
    page.locator("#results .thumbnail-item").first.wait_for(timeout=WAIT)
    return _status(page)


def _choose(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _captions(page, root: str = "#results") -> list[str]:
    return [c.strip() for c in page.locator(f"{root} .caption-label").all_inner_texts()]


def _explore(page, sub: str = "Benchmark browser") -> None:
    page.get_by_role("tab", name="Explore").click()
    page.get_by_role("tab", name=sub).click()


def _bench_rank(page, query_id: str, combiner: str) -> int:
    """The rank the benchmark table shows for a query (filters the table by the query id)."""
    _explore(page)
    page.locator("#bench-table").wait_for(timeout=WAIT)
    page.fill("textarea[placeholder='words of the caption or an id']", query_id)  # few rows: all rendered
    page.keyboard.press("Enter")
    page.wait_for_timeout(1500)
    header = page.locator("#bench-table [role=columnheader]").all_inner_texts()
    col = [h.strip() for h in header].index(f"rank_{combiner}")
    rows = page.locator("#bench-table [role=gridcell][data-col='0']")
    for i in range(rows.count()):
        if rows.nth(i).inner_text().strip() == query_id:
            return int(page.locator(f"#bench-table [data-testid='cell-{i}-{col}']").inner_text())
    raise AssertionError(f"query {query_id} not in the table")


@pytest.mark.parametrize(
    "bench, query, combiner",
    [("mini-cirr-lite", "0", "AVG"), ("mini-cirr-lite", "30", "AVG"), ("mini-webvid-lite", "2", "AVG")],
)
def test_deep_link_rank_agrees_with_frame_record_table_and_curate(
    open_page, bench, query, combiner, shoot
):
    page = open_page(f"?bench={bench}&query={query}&combiner={combiner}")
    page.wait_for_selector("#search-status :text('target')", timeout=WAIT)
    status = _status(page)
    m = re.search(r"at rank (\d+) among (\d+) (items|videos)", status)
    assert m, status
    rank, scope = int(m.group(1)), f"{m.group(2)} {m.group(3)}"
    if bench == "mini-webvid-lite":
        assert m.group(3) == "videos"  # CoVR's WebVid protocol ranks the evaluation's videos only
    framed = [c for c in _captions(page) if "✔ target" in c]
    if rank <= 12:
        assert len(framed) == 1 and framed[0].startswith(f"#{rank} · "), (framed, status)
        frame = page.locator("#results .thumbnail-item.covr-target")
        assert (
            frame.count() == 1
            and frame.evaluate("e => getComputedStyle(e).outlineColor") == "rgb(44, 160, 44)"
        )
    assert page.locator("#results .preview").count() == 0  # the grid, not a large preview
    shoot(page, f"browser-deeplink-{bench}-{query}.png")
    # the pinned record and the Curate table say the same
    page.click("#pin-btn")
    page.wait_for_selector("#search-status :text('Pinned')", timeout=WAIT)
    page.get_by_role("tab", name="Curate").click()
    page.locator("#pinned-table [role=gridcell]").first.wait_for(timeout=WAIT)
    page.locator("#pinned-table").evaluate(  # the newest pin is the last row: scroll the table down
        "t => t.querySelectorAll('*').forEach(e => {"
        " if (e.scrollHeight > e.clientHeight) e.scrollTop = e.scrollHeight; })"
    )
    page.locator("#pinned-table [role=gridcell]", has_text=f"{rank} of {scope}").first.wait_for(timeout=WAIT)
    # the benchmark table says the same
    assert _bench_rank(page, query, combiner) == rank
    assert f"rank of the target: {rank} among {scope}" in page.locator("#opened-md").inner_text()
    assert not page.errors  # type: ignore[attr-defined]


def test_unavailable_combiner_in_a_link_falls_back_to_the_default_and_says_so(open_page):
    page = open_page("?bench=mini-cirr-lite&query=0&combiner=MLP")
    page.wait_for_selector("#search-status :text('target')", timeout=WAIT)
    status = _status(page)
    assert "combiner NA" in status and "MLP is not available here" in status and "the default" in status


def test_a_bad_link_is_reported_once_and_the_page_still_loads(open_page):
    page = open_page("?bench=nope&query=0")
    page.wait_for_selector("#search-status :text('could not be opened')", timeout=WAIT)
    page.wait_for_timeout(3000)
    toasts = [t for t in page.locator(".toast-body").all_inner_texts() if "nope" in t]
    assert len(toasts) == 1, toasts
    _explore(page)
    assert page.locator("#bench-table [role=gridcell]").count() > 0  # the rest of the page loaded


def test_open_in_search_lands_on_the_grid_with_the_target_framed(open_page):
    page = open_page()
    _search(page, "apple.jpg", "make it an orange")
    page.locator("#results .thumbnail-item").nth(2).click()  # a large preview is open...
    page.wait_for_selector("#results .preview", timeout=WAIT)
    _explore(page)
    page.locator("#bench-table [data-testid='cell-1-1']").click()
    page.wait_for_selector("#opened-md :text('rank of the target')", timeout=WAIT)
    page.click("#open-in-search")
    page.wait_for_selector("#search-status :text('target')", timeout=WAIT)
    assert page.locator("#results .preview").count() == 0  # ...and is closed by the new query
    assert page.locator("#results .thumbnail-item").count() == 12
    rank = int(re.search(r"at rank (\d+)", _status(page)).group(1))
    if rank <= 12:
        assert page.locator("#results .thumbnail-item.covr-target").count() == 1


def test_a_new_query_clears_frames_comparison_and_preview(open_page, shoot):
    page = open_page()
    page.set_input_files("#ref-video input[type=file]", str(REPO / "assets" / "videos" / "zoom_cat.mp4"))
    page.wait_for_selector("#ref-status :text('Reference encoded')", timeout=WAIT)
    page.click("#frames-btn")
    page.locator("#frames .thumbnail-item").first.wait_for(timeout=WAIT)
    page.fill("#mod-text textarea", "a small brown dog instead of the cat")
    page.click("#compare-btn")
    page.wait_for_selector("#compare-md :text('Compared')", timeout=WAIT)
    page.click("#search-btn")
    page.wait_for_selector("#search-status :text('results')", timeout=WAIT)
    page.locator("#results .thumbnail-item").first.click()
    page.wait_for_selector("#results .preview", timeout=WAIT)
    page.fill("#mod-text textarea", "a cup of coffee instead of the cat")
    page.click("#search-btn")
    page.wait_for_selector("#search-status :text('a cup of coffee')", timeout=WAIT)
    assert page.locator("#results .preview").count() == 0
    assert not page.locator("#frames").is_visible()
    assert (
        "Click **Compare combiners**" in page.locator("#compare-md").inner_text()
        or "Compare combiners" in page.locator("#compare-md").inner_text()
    )
    assert "Compared" not in page.locator("#compare-md").inner_text()
    shoot(page, "browser-new-query-cleared.png")


def test_a_failed_video_upload_leaves_no_old_reference(open_page, tmp_path):
    page = open_page()
    page.set_input_files("#ref-image input[type=file]", str(IMAGES / "apple.jpg"))
    page.wait_for_selector("#ref-status :text('Reference encoded')", timeout=WAIT)
    old = page.locator("#ref-status").inner_text()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    page.set_input_files("#ref-video input[type=file]", str(bad))
    page.wait_for_selector(".toast-body", timeout=WAIT)
    page.wait_for_timeout(1500)
    assert page.locator("#ref-status").inner_text() != old
    assert page.locator("#ref-image img").count() == 0  # the previous image is gone
    page.fill("#mod-text textarea", "make it an orange")
    page.click("#search-btn")
    page.wait_for_timeout(3000)
    assert "results" not in _status(page)  # no silent search on the old image
    toasts = " ".join(page.locator(".toast-body").all_inner_texts())
    assert "video" in toasts.lower() or "reference" in toasts.lower(), toasts


def test_explore_panels_empty_states_and_webvid_videos(open_page, shoot):
    page = open_page()
    _explore(page)
    assert page.locator("#opened-md").is_visible()
    page.fill("textarea[placeholder='words of the caption or an id']", "zzzz-nothing")
    page.keyboard.press("Enter")
    page.wait_for_selector("#bench-message :text('No query matches')", timeout=WAIT)
    for sub in ("Map", "WebVid filter"):
        page.get_by_role("tab", name=sub).click()
        page.wait_for_timeout(500)
        assert not page.locator("#opened-md").is_visible(), sub  # the opened query belongs to the browser
    page.get_by_role("tab", name="Benchmark browser").click()
    page.fill("textarea[placeholder='words of the caption or an id']", "")
    page.keyboard.press("Enter")
    page.get_by_label("Benchmark (evaluation run)").click()
    page.get_by_role("option", name="mini-webvid-lite").click()
    page.wait_for_timeout(1500)
    page.locator("#bench-table [data-testid='cell-2-1']").click()
    page.wait_for_selector("#opened-md :text('rank of the target')", timeout=WAIT)
    assert (
        page.locator("#opened-reference video").count() == 1
        and page.locator("#opened-target video").count() == 1
    )
    broken = page.evaluate(
        "Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0 && i.src).map(i => i.src)"
    )
    assert not broken, broken
    shoot(page, "browser-webvid-opened.png")


def test_map_says_what_to_do_and_keeps_the_overlay(open_page):
    page = open_page()
    _explore(page, "Map")
    page.click("#map-query-btn")
    page.wait_for_selector("#map-message :text('No search yet')", timeout=WAIT)
    page.get_by_role("tab", name="Search").click()
    _search(page, "apple.jpg", "make it an orange")
    _explore(page, "Map")
    page.click("#map-query-btn")
    page.wait_for_selector("#map-message :text('Your last search')", timeout=WAIT)
    page.wait_for_selector("#covr-map .legendtext:text-is('query')", timeout=WAIT)
    page.get_by_label("split", exact=True).check()
    page.wait_for_timeout(3000)
    assert page.locator("#covr-map .legendtext:text-is('query')").count() == 1  # the overlay stays


def test_weights_view_shows_every_query_with_counts(open_page, shoot):
    page = open_page()
    _explore(page, "Weights")
    page.locator("#ternary .legendtext").first.wait_for(timeout=WAIT)
    legend = page.locator("#ternary .legendtext").evaluate_all("ts => ts.map(t => t.textContent)")  # SVG text
    counts = [int(re.search(r"\((\d+)\)", t).group(1)) for t in legend if re.search(r"\((\d+)\)", t)]
    assert any(t.startswith("success (") for t in legend) and sum(counts) == 46, legend
    assert page.locator("#ternary .point").count() == 46
    xs = page.locator("#ternary .point").evaluate_all("ps => ps.map(p => p.getAttribute('transform'))")
    assert len(set(xs)) > 40  # jittered: the fixed combiner's 46 equal weights do not collapse into one dot
    shoot(page, "browser-weights.png")


def test_near_duplicates_are_hidden_and_counted(open_page):
    page = open_page()
    status = _search(page, "cat.jpg", "the same cat in a video, slowly zooming in")
    assert "near-duplicate" in status and "videos/zoom_cat" in status, status
    assert not any("videos/zoom_cat ·" in c for c in _captions(page))
    page.locator("#hide-dups input").uncheck()
    page.click("#search-btn")
    page.wait_for_function(
        "() => !document.querySelector('#search-status').innerText.includes('near-duplicate')", timeout=WAIT
    )
    page.wait_for_timeout(1000)
    assert any("videos/zoom_cat ·" in c for c in _captions(page))


def test_first_impression_examples_and_400px(open_page, shoot):
    page = open_page()
    intro = page.locator("#covr-intro").inner_text()
    assert intro.startswith("CoVR Explorer") and "reference" in intro and "text" in intro
    banner = page.locator("#covr-banner").inner_text()
    assert "not CoVR" in banner and len(banner) < 260
    assert not page.locator("#covr-header").is_visible()  # encoder details are folded away
    rows = page.locator("#examples tbody tr")
    assert rows.count() >= 4
    rows.first.click()
    page.wait_for_selector("#search-status :text('results')", timeout=WAIT)
    page.locator("#results .thumbnail-item").first.wait_for(timeout=WAIT)
    title = page.locator("#results .thumbnail-item").first.get_attribute("title")
    item_id = title.split(" · ")[1]
    assert title.startswith("#1 · ") and item_id  # the full id on hover
    shoot(page, "browser-first-impression.png")
    phone = open_page(width=400, height=860)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 402
    phone.locator("#examples tbody tr").nth(1).click()
    phone.wait_for_selector("#search-status :text('results')", timeout=WAIT)
    phone.locator("#results .thumbnail-item").first.wait_for(timeout=WAIT)
    phone.wait_for_timeout(1000)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 402
    for box in phone.locator("#results .thumbnail-item").evaluate_all(
        "items => items.map(i => i.getBoundingClientRect()).map(r => [r.left, r.right])"
    ):
        assert box[0] >= 0 and box[1] <= 400, box  # no result column cut off
    shoot(phone, "browser-400px.png")
    assert not page.errors and not phone.errors  # type: ignore[attr-defined]


def test_curate_exports_a_paper_grade_figure(open_page, output_dir, shoot):
    page = open_page()
    _search(page, "lemon_half.jpg", "a juicy wedge of orange instead of the halved lemon")
    page.click("#pin-btn")
    page.wait_for_selector("#search-status :text('Pinned')", timeout=WAIT)
    pinned_id = re.search(r"Pinned (\S+)", _status(page)).group(1)
    page.get_by_role("tab", name="Curate").click()
    page.get_by_label("selected example id").fill(pinned_id)  # (many pins: the table shows only some rows)
    page.get_by_label("selected example id").press("Enter")
    page.locator("#fig-preview img").wait_for(timeout=WAIT)
    page.get_by_label("double column (6.9 in)").check()
    page.get_by_label("show ids").check()
    page.wait_for_timeout(1000)
    page.wait_for_function(  # the preview has been redrawn with the new options
        "() => !document.querySelector('#fig-preview .progress-text, #fig-preview .eta-bar')", timeout=WAIT)
    shoot(page, "browser-curate.png")
    page.get_by_role("button", name="Export selected (ZIP)").click()
    link = page.locator("#export-file a[download$='.zip']")
    try:
        link.first.wait_for(timeout=2 * WAIT)
    except Exception:
        raise AssertionError(f"no ZIP; messages: {page.locator('.toast-body').all_inner_texts()}") from None
    with page.expect_download(timeout=WAIT) as dl:
        link.first.click()
    data = Path(dl.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        for ext in ("pdf", "svg", "png"):
            blob = zf.read(next(n for n in names if n.endswith(f"figure.{ext}")))
            (output_dir / f"exported-figure.{ext}").write_bytes(blob)
        tex = zf.read(next(n for n in names if n.endswith("snippet.tex"))).decode()
        record = zf.read(next(n for n in names if n.endswith("record.json"))).decode()
    assert r"\includegraphics[width=\textwidth]{figure.pdf}" in tex and "figure*" in tex
    assert '"preset": "double"' in record and '"show_ids": true' in record
    from PIL import Image

    png = Image.open(output_dir / "exported-figure.png")
    assert png.size[0] == round(6.9 * 300)
    assert (output_dir / "exported-figure.pdf").read_bytes().startswith(b"%PDF")
