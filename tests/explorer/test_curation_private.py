"""Private curation and bounded exports (issue 12, defect 6) without a server.

Before: pins were shared by every visitor and grew without bound; export ZIPs were never deleted; names had
one-second resolution and a fixed temp name, so 2 of 4 simultaneous exports failed; "Export selected" with
nothing selected exported everything. Live: tests/app/test_public_curation_live.py.
"""

from __future__ import annotations

import os
import threading
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from explorer.curation import CurationStores, Exports, export_pinned
from explorer.visitors import RateLimiter, Visitor, client_address, identify, new_token, valid_token

SECRET = b"k" * 32


def visitor(token: str | None = None, user: str | None = None) -> Visitor:
    return identify(token or new_token(), user, SECRET, private=True)


def record(text: str) -> dict:
    return {"text": text, "combiner": "AVG", "gallery": "g", "results": []}


def test_visitors_are_hmacs_of_their_token_or_user() -> None:
    tok = new_token()
    a, a_again, b = visitor(tok), visitor(tok), visitor()
    assert a == a_again and a.key != b.key and tok not in a.key
    assert visitor(user="alice").key == visitor(user="alice").key != visitor(user="bob").key
    assert identify("anything", None, SECRET, private=False).shared
    with pytest.raises(ValueError, match="reload the page"):
        identify("short", None, SECRET, private=True)
    assert valid_token(tok) and not valid_token("../../x") and not valid_token(None)


def test_each_visitor_sees_only_their_own_pins(tmp_path: Path) -> None:
    stores = CurationStores(tmp_path / "curated", private=True, max_pins=5)
    alice, bob = visitor(), visitor()
    rec = stores.for_visitor(alice).add(record("alice's"), Image.new("RGB", (8, 8)))
    assert [r["id"] for r in stores.for_visitor(alice).list()] == [rec["id"]]
    assert stores.for_visitor(bob).list() == []
    with pytest.raises(KeyError):
        stores.for_visitor(bob).get(rec["id"])  # knowing the id is not enough
    stores.for_visitor(bob).remove(rec["id"])  # removing "it" from bob's store touches nothing of alice's
    assert len(stores.for_visitor(alice)) == 1
    with pytest.raises(ValueError, match="per visitor"):
        stores.for_visitor(identify("x", None, SECRET, private=False))  # the shared store is not reachable


def test_local_runs_share_one_store_in_the_old_place(tmp_path: Path) -> None:
    stores = CurationStores(tmp_path / "curated", private=False)
    shared = identify(None, None, SECRET, private=False)
    rec = stores.for_visitor(shared).add(record("mine"))
    assert (tmp_path / "curated" / f"{rec['id']}.json").exists()


def test_pins_per_visitor_are_bounded(tmp_path: Path) -> None:
    store = CurationStores(tmp_path, private=True, max_pins=3).for_visitor(visitor())
    for i in range(3):
        store.add(record(str(i)))
    with pytest.raises(ValueError, match="3 pinned examples, the most this server keeps"):
        store.add(record("one too many"))
    assert len(store) == 3


class _Services:
    """What export_pinned needs of the services (rendering reads no gallery for records without results)."""

    def item_path(self, gallery: str, item_id: str) -> Path:  # pragma: no cover - no results to render
        raise KeyError(item_id)


def test_export_selected_with_nothing_selected_says_so(tmp_path: Path) -> None:
    store = CurationStores(tmp_path, private=True).for_visitor(visitor())
    store.add(record("a"))
    with pytest.raises(ValueError, match="No example is selected"):
        export_pinned(_Services(), store, [], tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.slow  # six figure exports at once
def test_simultaneous_exports_all_succeed_with_unique_names(tmp_path: Path) -> None:
    exports = Exports(tmp_path / "exports", max_per_visitor=10)
    who = visitor()
    store = CurationStores(tmp_path / "curated", private=True).for_visitor(who)
    for i in range(3):
        store.add(record(f"example {i}"), Image.new("RGB", (32, 32), (i * 60, 0, 0)))
    results: list[Path | Exception] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            out = export_pinned(_Services(), store, None, exports.new_path(who, "3-examples"))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            out = exc
        with lock:
            results.append(out)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, Path) for r in results), results
    assert len({r.name for r in results}) == 6  # same second, different names
    for r in results:
        with zipfile.ZipFile(r) as zf:
            assert sum(n.endswith("record.json") for n in zf.namelist()) == 3


def test_exports_per_visitor_are_bounded_and_expire(tmp_path: Path) -> None:
    exports = Exports(tmp_path, max_per_visitor=2, max_age_s=60, grace_s=0.2)
    a, b = visitor(), visitor()
    made = []
    for _ in range(4):
        p = exports.new_path(a, "x")
        p.write_bytes(b"zip")
        made.append(p)
        time.sleep(0.01)
    assert sorted(p.name for p in (tmp_path / a.key).glob("*.zip")) == sorted(p.name for p in made[-2:])
    other = exports.new_path(b, "x")
    other.write_bytes(b"zip")
    old = time.time() - 120
    os.utime(other, (old, old))
    assert exports.sweep() == 1 and not other.exists() and made[-1].exists()
    assert exports.downloaded(made[-1]) and made[-1].exists()  # deleted after the grace period
    deadline = time.monotonic() + 10
    while made[-1].exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not made[-1].exists() and made[-2].exists()
    assert not exports.downloaded(tmp_path.parent / "not-an-export.zip")  # only its own files
    assert exports.sweep(now=time.time() + 120) == 1  # an hour later: the rest, and the empty folders
    assert not (tmp_path / a.key).exists() and not (tmp_path / b.key).exists()


def test_rate_limiter_and_client_address() -> None:
    limiter = RateLimiter(3, window_s=10)
    assert [limiter.wait_s("a", now=t) for t in (0, 1, 2)] == [0, 0, 0]
    assert limiter.wait_s("a", now=3) == pytest.approx(7)
    assert limiter.wait_s("b", now=3) == 0
    assert limiter.wait_s("a", now=10.5) == 0
    headers = {"x-forwarded-for": "6.6.6.6, 10.0.0.1, 203.0.113.9"}
    assert client_address(headers, "10.1.1.1", behind_proxy=True) == "203.0.113.9"
    assert client_address(headers, "10.1.1.1", behind_proxy=False) == "10.1.1.1"
