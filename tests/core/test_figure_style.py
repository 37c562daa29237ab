"""The shared figure style (covr_core.figure_style) under concurrent use."""

from __future__ import annotations


def test_style_blocks_of_two_threads_do_not_undo_each_other():
    """Exports run in server threads: matplotlib's rcParams are global, so a second block must wait for the
    first (without the lock it would change the first one's font size mid-figure and leave its own behind)."""
    import threading

    import matplotlib

    from covr_core.figure_style import paper_style

    before = matplotlib.rcParams["font.size"]
    inside, release = threading.Event(), threading.Event()
    seen: list[float] = []

    def first() -> None:
        with paper_style(8.0):
            inside.set()
            release.wait(5)
            seen.append(matplotlib.rcParams["font.size"])

    def second() -> None:
        inside.wait(5)
        with paper_style(12.0):
            seen.append(matplotlib.rcParams["font.size"])

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    inside.wait(5)
    threads[1].join(0.3)  # the second block is waiting for the first
    assert threads[1].is_alive()
    release.set()
    for t in threads:
        t.join(5)
    assert seen == [8.0, 12.0]
    assert matplotlib.rcParams["font.size"] == before
