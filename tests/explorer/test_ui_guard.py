"""The page's guards without a server (issue 12, defect 5): one encoder pool for every heavy endpoint, a
bounded queue. Live behaviour: tests/app/test_public_space_live.py."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tiny_services, tiny_encoder):
    """The page over a copy of the tiny gallery named like the bundled demo one, so that it has every event
    (the example rows exist only over a ``demo-*`` default gallery)."""
    from covr_core.settings import Settings
    from explorer.services import Services
    from explorer.ui import build_demo

    src = tiny_services.data_dir / "galleries" / "pics"
    copy = src.parent / "demo-pics"
    shutil.copytree(src, copy)
    try:
        yield build_demo(Services(tiny_encoder, Settings(data_dir=tiny_services.data_dir), "demo-pics"))
    finally:
        shutil.rmtree(copy)


def test_every_heavy_endpoint_shares_the_one_encoder_pool(demo, tiny_services):
    """Before: only /search, /compare and /open_query shared the encoder slots; /encode_reference,
    /video_still, /sample_frames and /export_all each had their own pool of COVR_MAX_CONCURRENT_JOBS."""
    from explorer.ui_guard import ENCODER_POOL, HEAVY_ENDPOINTS

    fns = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    missing = HEAVY_ENDPOINTS - set(fns)
    assert not missing, f"heavy endpoints renamed or gone (update HEAVY_ENDPOINTS): {missing}"
    limit = tiny_services.settings.limits.max_concurrent_jobs
    for name in HEAVY_ENDPOINTS:
        assert fns[name].concurrency_id == ENCODER_POOL and fns[name].concurrency_limit == limit, name
    for name in ("encode_reference", "video_still", "sample_frames", "export_all", "search", "compare"):
        assert name in HEAVY_ENDPOINTS
    light = [n for n, fn in fns.items() if fn.concurrency_id == ENCODER_POOL and n not in HEAVY_ENDPOINTS]
    assert not light


def test_queue_is_bounded_and_fair(demo, tiny_services):
    from explorer.ui import queue_kwargs
    from explorer.ui_guard import ExplorerBlocks, FairQueue

    kwargs = queue_kwargs(tiny_services)
    assert kwargs["max_size"] == tiny_services.settings.limits.max_queue_size
    assert isinstance(demo, ExplorerBlocks)
    demo.queue(**kwargs)
    assert isinstance(demo._queue, FairQueue) and demo._queue.max_size == kwargs["max_size"]


def test_sign_in_is_offered_only_when_the_space_enables_it(tiny_services, monkeypatch):
    """With ``hf_oauth: true`` (OAUTH_CLIENT_ID set on a Space) pins can follow the visitor's account."""
    import gradio.oauth

    from explorer.ui import build_demo

    space = {"SYSTEM": "spaces", "SPACE_ID": "covr/demo", "OAUTH_CLIENT_ID": "client-id",
             "OAUTH_CLIENT_SECRET": "secret", "OAUTH_SCOPES": "openid profile",
             "OPENID_PROVIDER_URL": "https://huggingface.co"}  # what a Space with hf_oauth: true sets
    for name, value in space.items():
        monkeypatch.setenv(name, value)
        if hasattr(gradio.oauth, name):  # gradio reads these once, at import
            monkeypatch.setattr(gradio.oauth, name, value)
    assert build_demo(tiny_services).expects_oauth
    monkeypatch.delenv("OAUTH_CLIENT_ID")
    assert not build_demo(tiny_services).expects_oauth


def test_waiting_events_are_counted_per_session_and_per_address():
    """The exact bounds, decided on the queue's own event table (the live flood tests cannot pin exact
    counts: a search that finishes during a flood frees its place, as it should)."""
    from types import SimpleNamespace

    from covr_core.settings import Limits
    from explorer.ui_guard import ENCODER_POOL, FairQueue

    def event(session: str, address: str, pool: str = ENCODER_POOL) -> SimpleNamespace:
        request = SimpleNamespace(client=SimpleNamespace(host=address), headers={})
        return SimpleNamespace(concurrency_id=pool, session_hash=session, request=request)

    queue = FairQueue.__new__(FairQueue)  # the decision only reads the event table and the limits
    queue.limits = Limits(max_pending_per_session=2, max_pending_per_client=4)
    queue.event_ids_to_events = {}
    accepted = []
    for i, (session, address) in enumerate([("a", "203.0.113.1")] * 3 + [("b", "203.0.113.1")] * 3
                                           + [("c", "203.0.113.1")] * 3):  # fmt: skip
        reason = queue.busy_reason(session, address)
        if not reason:
            queue.event_ids_to_events[str(i)] = event(session, address)
        accepted.append((session, reason))
    assert [s for s, r in accepted if not r] == ["a", "a", "b", "b"]  # 2 per session, then 4 per address
    assert "2 searches or uploads waiting" in accepted[2][1]
    assert all("your address" in r for s, r in accepted[6:])
    assert queue.busy_reason("d", "198.51.100.9") == ""  # another visitor is not affected
    queue.event_ids_to_events["x"] = event("e", "198.51.100.9", pool="light")  # light events are not counted
    assert queue.busy_reason("e", "198.51.100.9") == ""
