"""Function sink: handlers from tests/trigger_handlers.py run in real worker
processes; batches built by hand. Success (sync and async), the
DynamoDB-Streams record shape, exceptions, partial failures, a hang killed
at the timeout, ``os._exit``, and a worker that cannot import its handler."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from triggers.delivery import Batch, ChangeRecord
from triggers.sinks import make_sink, validate_target
from triggers.sinks.formats import event_name
from triggers.subscription import Subscription, TriggerError

TESTS = os.path.dirname(os.path.abspath(__file__))


def record(offset, key="user:1", type_="set", view="KEYS_ONLY", old=None, new=None, index=0):
    return ChangeRecord(id=f"{offset}-{index}", offset=offset, index=index, time_ms=1764255600123, db=0,
                        key=key, type=type_, data={"value": "v"}, view=view, old_image=old, new_image=new)


def batch(*recs) -> Batch:
    return Batch("fn", f"{recs[0].id}.{recs[-1].id}", list(recs))


def sink_for(handler: str, *words: str, **kw):
    sub = Subscription.from_words([b"fn", b"FUNCTION", f"trigger_handlers:{handler}".encode(),
                                   *(w.encode() for w in words)])
    return make_sink(sub, fjord_url="redis://127.0.0.1:1", source_host="node1", python_path=[TESTS], **kw)


@pytest.fixture
def out_file(tmp_path, monkeypatch):
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FJORD_TEST_OUT", str(path))
    return path


def calls(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_sync_handler_gets_dynamodb_stream_records(out_file):
    sink = sink_for("ok")
    img = {"type": "hash", "value": [["f", "1"]]}
    recs = [record(5, type_="hset", view="NEW_AND_OLD_IMAGES", old=None, new=img),
            record(5, type_="del", view="NEW_AND_OLD_IMAGES", old=img, new=None, index=1)]
    out = await sink.deliver(batch(*recs))
    again = await sink.deliver(batch(record(6)))
    await sink.close()
    assert out.ok and again.ok, (out, again)
    first, second = calls(out_file)
    assert first["pid"] == second["pid"]            # the worker is reused
    assert first["trigger"] == "fn"                 # FJORD_TRIGGER
    r0, r1 = first["event"]["Records"]
    assert r0 == {
        "eventID": "5-0", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "fjord",
        "eventSourceARN": "fjord://node1/triggers/fn",
        "dynamodb": {"Keys": {"db": 0, "key": "user:1"}, "SequenceNumber": "00000000000000000005000000",
                     "ApproximateCreationDateTime": 1764255600.123, "StreamViewType": "NEW_AND_OLD_IMAGES",
                     "OldImage": None, "NewImage": img},
        "fjord": {"type": "hset", "db": 0, "offset": 5, "index": 0, "time_ms": 1764255600123,
                  "data": {"value": "v"}},
    }
    assert r1["eventName"] == "REMOVE" and r1["dynamodb"]["OldImage"] == img
    assert "OldImage" not in second["event"]["Records"][0]["dynamodb"]  # KEYS_ONLY: no images


def test_event_names():
    img = {"type": "string", "value": "v"}
    assert event_name(record(1, view="NEW_AND_OLD_IMAGES", old=img, new=img)) == "MODIFY"
    assert event_name(record(1, view="OLD_IMAGE", old=None)) == "INSERT"
    assert event_name(record(1, type_="lpop", view="NEW_IMAGE", new=None)) == "REMOVE"
    assert event_name(record(1, type_="expired")) == "REMOVE"
    assert event_name(record(1, type_="set")) == "MODIFY"   # KEYS_ONLY cannot tell INSERT
    assert event_name(record(1, key=None, type_="flushall")) == "REMOVE"


async def test_async_handler(out_file):
    sink = sink_for("ok_async")
    out = await sink.deliver(batch(record(1), record(2)))
    await sink.close()
    assert out.ok and not out.failed_ids
    assert len(calls(out_file)[0]["event"]["Records"]) == 2


async def test_lambda_style_handler_gets_a_context(out_file):
    sink = sink_for("lambda_style", "TIMEOUT", "5000")
    out = await sink.deliver(batch(record(1), record(2)))
    await sink.close()
    assert out.ok, out
    assert calls(out_file)[0]["event"] == {"function_name": "fn", "request_id": "1-0.2-0",
                                           "arn": "fjord://node1/triggers/fn", "remaining_ok": True}


async def test_exception_fails_the_batch_with_the_last_traceback_line():
    sink = sink_for("boom")
    out = await sink.deliver(batch(record(1)))
    again = await sink.deliver(batch(record(2)))
    await sink.close()
    assert not out.ok and not out.failed_ids and out.error == "ValueError: boom"
    assert again.error == "ValueError: boom" and sink.started == 1  # an exception does not cost the worker


async def test_partial_batch_failure():
    recs = [record(1), record(2), record(3)]
    sink = sink_for("fail_second_by_sequence")
    by_seq = await sink.deliver(batch(*recs))
    await sink.close()
    sink = sink_for("fail_first_by_id")
    by_id = await sink.deliver(batch(*recs))
    await sink.close()
    sink = sink_for("fail_unknown")
    unknown = await sink.deliver(batch(*recs))
    await sink.close()
    assert not by_seq.ok and by_seq.failed_ids == ["2-0"]
    assert not by_id.ok and by_id.failed_ids == ["1-0"]
    assert not unknown.ok and not unknown.failed_ids and "no-such-record" in unknown.error


async def test_hang_is_killed_at_the_timeout_and_the_worker_replaced(out_file):
    sink = sink_for("hang", "TIMEOUT", "300")
    t0 = time.monotonic()
    out = await sink.deliver(batch(record(1)))
    took = time.monotonic() - t0
    assert not out.ok and "timeout" in out.error and "300 ms" in out.error
    assert 0.3 <= took < 2
    assert sink._all == set()
    await sink.close()


async def test_os_exit_replaces_the_worker(out_file, tmp_path):
    sink = sink_for("exit_hard")
    out = await sink.deliver(batch(record(1)))
    assert not out.ok and "worker exited with code 3" in out.error
    out = await sink.deliver(batch(record(2)))
    assert not out.ok and sink.started == 2  # a fresh worker each time
    await sink.close()


async def test_a_worker_that_cannot_import_reports_why():
    sub = Subscription.from_words([b"fn", b"FUNCTION", b"no_such_module_here:handler"])
    sink = make_sink(sub, python_path=[TESTS])
    out = await sink.deliver(batch(record(1)))
    await sink.close()
    assert not out.ok
    assert out.error == ("cannot load no_such_module_here:handler: "
                         "ModuleNotFoundError: No module named 'no_such_module_here'")


def test_starting_a_worker_does_not_stall_the_loop_with_a_big_heap():
    """Under uvloop, ``asyncio.create_subprocess_exec`` is a plain fork() that
    copies the page tables of the whole heap while the loop waits (here, with
    512 MB of 4 KiB pages: 17-23 ms; in a server with 1M keys, far more).
    Workers are started with vfork (``subprocess.Popen``) instead: the loop's
    worst stall while a worker starts, runs a batch and stops stays a few ms.
    The best of three tries, so a busy machine does not fail it."""
    import mmap

    import uvloop

    heap = mmap.mmap(-1, 512 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    heap.madvise(mmap.MADV_NOHUGEPAGE)  # 4 KiB pages, like a fragmented keyspace (huge pages fork cheaply)
    heap.write(b"\x01" * len(heap))     # touched, so fork() would have to copy their page tables

    async def worst_stall_ms() -> float:
        worst, done = 0.0, False

        async def ticker():
            nonlocal worst
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                worst, last = max(worst, now - last), now

        ticking = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.01)
        sink = sink_for("ok")
        out = await sink.deliver(batch(record(1)))
        await sink.close()
        done = True
        await ticking
        assert out.ok, out
        assert sink.started == 1
        return (worst - 0.001) * 1000

    try:
        stalls = [uvloop.run(worst_stall_ms()) for _ in range(3)]
    finally:
        heap.close()
    assert min(stalls) < 10, f"the loop stalled {stalls} ms while a worker started"


@pytest.mark.parametrize("target", ["nocolon", "mod:", ":fn", "my-mod:fn", "mod:fn()", "class:fn", "a..b:fn"])
def test_function_targets_must_be_module_colon_name(target):
    with pytest.raises(TriggerError, match="ERR function target"):
        Subscription.from_words([b"fn", b"FUNCTION", target.encode()])


def test_valid_function_targets():
    for target in ("handlers:on_change", "pkg.mod:Class.method"):
        validate_target(Subscription(name="fn", sink="function", target=target))


async def test_handler_writes_back_with_its_trigger_origin(r, fjord, out_file):
    """``fjord_client()`` talks to FJORD_URL and tags its connection with
    ``trigger:<name>``, the origin the dispatcher skips for this trigger."""
    sub = Subscription.from_words([b"fn", b"FUNCTION", b"trigger_handlers:write_back"])
    sink = make_sink(sub, fjord_url=f"redis://127.0.0.1:{fjord.port}", python_path=[TESTS])
    out = await sink.deliver(batch(record(1), record(2)))
    await sink.close()
    assert out.ok, out
    assert r.get("seen") == b"2"
    assert calls(out_file)[0]["event"] == {"origin": "trigger:fn", "records": 2}


# ------------------------------------------------------------------ through a server


def wait_until(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def info(client, name) -> dict:
    reply = client.execute_command("FJORD.TRIGGER", "INFO", name)
    if isinstance(reply, list):
        reply = dict(zip(reply[::2], reply[1::2]))
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in reply.items()}


def test_end_to_end_write_back_does_not_loop(new_fjord, out_file, monkeypatch):
    """A handler that writes to a key its own trigger watches runs once per
    change from outside, not forever (its writes carry its origin)."""
    monkeypatch.setenv("PYTHONPATH", TESTS)
    server = new_fjord()
    client = server.client()
    client.execute_command("FJORD.TRIGGER", "CREATE", "loop", "FUNCTION", "trigger_handlers:write_back")
    client.set("a", "1")
    wait_until(lambda: client.get("seen") == b"1")
    client.set("b", "2")
    wait_until(lambda: client.get("seen") == b"2")
    time.sleep(0.5)  # room for a loop to show itself
    assert client.get("seen") == b"2"
    assert [c["event"]["records"] for c in calls(out_file)] == [1, 1]
    client.close()


def test_end_to_end_crashing_and_hanging_handlers_leave_the_server_serving(new_fjord, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS)
    server = new_fjord()
    client = server.client()
    for name, handler in (("crash", "exit_hard"), ("hang", "hang"), ("boom", "boom")):
        client.execute_command("FJORD.TRIGGER", "CREATE", name, "FUNCTION", f"trigger_handlers:{handler}",
                               "TIMEOUT", "300", "RETRIES", "1", "BACKOFF", "10", "CONCURRENCY", "1")
    client.set("k", "v")
    for name in ("crash", "hang", "boom"):
        wait_until(lambda: int(info(client, name).get("dead_lettered") or 0) == 1)
        assert client.ping() and client.get("k") == b"v"
    errors = {name: info(client, name)["last_error"] for name in ("crash", "hang", "boom")}
    assert "worker exited with code 3" in errors["crash"]
    assert "timeout" in errors["hang"] and "300 ms" in errors["hang"]
    assert errors["boom"] == "ValueError: boom"
    assert server.proc.poll() is None
    client.close()
