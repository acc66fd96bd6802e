"""Functional tests: start-up progress in INFO persistence while loading.

A restart replays a big log tail; meanwhile other commands get -LOADING but
INFO (flagged ``loading``) answers with ``loading:1`` and a growing
``loading_loaded_perc``; once ready, ``loading:0``.
"""

from __future__ import annotations

import socket
import time

RECORDS = 150_000


def _resp(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _fill(port: int, n: int) -> None:
    """Pipeline ``n`` SETs over one socket and read every reply."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        batch = 10_000
        for base in range(0, n, batch):
            s.sendall(b"".join(_resp(b"SET", b"key:%d" % i, b"value:%d" % i) for i in range(base, base + batch)))
            want = b"+OK\r\n" * batch
            got = b""
            while len(got) < len(want):
                chunk = s.recv(1 << 20)
                assert chunk, "server closed the connection while loading data"
                got += chunk
            assert got == want


def _info_persistence(sock: socket.socket) -> dict[str, str]:
    sock.sendall(_resp(b"INFO", b"persistence"))
    buf = b""
    while True:
        buf += sock.recv(1 << 16)
        if buf.startswith(b"-"):
            raise AssertionError(f"INFO refused: {buf!r}")
        head, _, rest = buf.partition(b"\r\n")
        if head.startswith(b"$") and len(rest) >= int(head[1:]) + 2:
            body = rest[: int(head[1:])].decode()
            return dict(line.split(":", 1) for line in body.splitlines() if ":" in line)


def _connect(port: int, timeout: float = 20) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def test_info_reports_loading_progress_during_replay(new_fjord):
    srv = new_fjord("--snapshot-every-events", "0")
    _fill(srv.port, RECORDS)
    srv.kill()
    srv.start(wait=False)
    samples: list[dict[str, str]] = []
    sock = _connect(srv.port)
    try:
        sock.sendall(_resp(b"GET", b"key:1"))
        first = sock.recv(256)
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            info = _info_persistence(sock)
            samples.append(info)
            if info["loading"] == "0":
                break
            time.sleep(0.02)
    finally:
        sock.close()
    # the first replies may come while it looks for a snapshot (phase "snapshot")
    loading = [s for s in samples if s["loading"] == "1" and s["loading_phase"] == "log"]
    assert first.startswith(b"-LOADING"), first
    assert len(loading) >= 2, f"saw only {len(loading)} INFO replies while loading"
    assert samples[-1]["loading"] == "0"
    assert "loading_loaded_perc" not in samples[-1]
    for s in loading:
        assert s["async_loading"] == "0"
        assert int(s["loading_snapshot_events"]) == 0  # no snapshot: the whole log is the tail
        assert int(s["loading_total_items"]) == RECORDS
        assert int(s["loading_start_time"]) <= int(time.time())
        assert int(s["loading_eta_seconds"]) >= 0
    percs = [float(s["loading_loaded_perc"]) for s in loading]
    assert percs == sorted(percs) and percs[-1] > percs[0], percs
    done = [int(s["loading_events_done"]) for s in loading]
    assert done == sorted(done) and done[-1] > 0
    r = srv.client()
    assert r.get("key:149999") == b"value:149999"
    assert r.dbsize() == RECORDS


def test_info_reports_the_snapshot_phase(new_fjord):
    """With a snapshot, loading starts in phase ``snapshot``, counted in
    snapshot events, then replays the tail in phase ``log``."""
    srv = new_fjord("--snapshot-every-events", "0")
    _fill(srv.port, RECORDS)
    r = srv.client()
    r.save()
    _fill(srv.port, 20_000)  # a tail past the snapshot (overwrites key:0..19999)
    srv.kill()
    srv.start(wait=False)
    phases: list[str] = []
    sock = _connect(srv.port)
    try:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            info = _info_persistence(sock)
            if info["loading"] == "0":
                break
            phases.append(info["loading_phase"])
            assert int(info["loading_snapshot_events"]) in (0, RECORDS)
            time.sleep(0.01)
    finally:
        sock.close()
    assert "snapshot" in phases, phases
    assert phases == sorted(phases, key=["snapshot", "log"].index)
    assert srv.client().dbsize() == RECORDS
