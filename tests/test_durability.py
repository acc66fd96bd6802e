"""Functional tests of the durability invariants (ARCHITECTURE.md 2, 3 and 6).

Real servers, real sockets, real files. What a test claims about the log is
checked by reading the segment files from outside the server with the
``streams`` codec, the way any other consumer of the log would.

Timing is made deterministic with ``strace``: attached to a running server it
can hold every ``fdatasync`` for half a second (``inject=...:delay_enter``) or
make it fail (EIO, ENOSPC), so "the reply did not arrive before the fsync" is a
fact about syscalls, not a race we hope to win. Those tests skip when strace
is missing or may not attach. Disk-full tests mount a 2 MiB tmpfs and fill it;
they skip when mounting is not permitted (needs root).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import FjordProcess, RawClient
from store import errors
from logtools import logged_events

FSYNC_DELAY = 0.5
ENOSPC_REPLY = b"-" + errors.misconf_log("No space left on device").encode() + b"\r\n"
EIO_REPLY = b"-" + errors.misconf_log("Input/output error").encode() + b"\r\n"
LOADING_REPLY = b"-" + errors.LOADING.encode() + b"\r\n"


# ---------------------------------------------------------------- helpers


def logged_sets(data_dir: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a ``set`` event in the log under ``data_dir``,
    in log order (a torn frame at the end, a write in progress, ends it)."""
    return [(e.key, e.data["value"]) for e in logged_events(data_dir) if e.type == "set"]


def is_logged(data_dir: str, key: bytes, value: bytes) -> bool:
    return (key, value) in logged_sets(data_dir)


def resp(*args) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


def wait_serving(srv: FjordProcess, timeout: float = 20.0) -> None:
    """Wait until the server answers a GET with something other than -LOADING
    (independent of PING, so these tests need only GET and SET)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert srv.proc.poll() is None, f"server exited: {srv.output()[-2000:]}"
        try:
            c = RawClient(srv.port, timeout=2)
        except OSError:
            time.sleep(0.02)
            continue
        try:
            if c.call("GET", "__probe__") != LOADING_REPLY:
                return
        except OSError:
            pass
        finally:
            c.close()
        time.sleep(0.02)
    raise TimeoutError(f"server on port {srv.port} never served: {srv.output()[-2000:]}")


@pytest.fixture
def serve(tmp_path):
    """``serve(*args, data_dir=None)`` starts a private server and waits
    until it serves; every server is killed at the end of the test."""
    servers: list[FjordProcess] = []

    def start(*args: str, data_dir: str | None = None) -> FjordProcess:
        srv = FjordProcess(data_dir or str(tmp_path / f"data{len(servers)}"), args=tuple(args))
        srv.log_path = str(tmp_path / f"server{len(servers)}.log")  # never on a small disk
        servers.append(srv)
        srv.start(wait=False)
        wait_serving(srv)
        return srv

    yield start
    for srv in servers:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()


def restart(srv: FjordProcess) -> None:
    """SIGKILL (no shutdown path runs) and start again on the same data dir."""
    srv.kill()
    srv.start(wait=False)
    wait_serving(srv)


def get_retrying(c: RawClient, key, timeout: float = 10.0) -> bytes:
    """GET, retrying while the server answers -LOADING (a rebuild)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = c.call("GET", key)
        if reply != LOADING_REPLY or time.monotonic() > deadline:
            return reply
        time.sleep(0.01)


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def reply_within(c: RawClient, seconds: float) -> bool:
    """True if some reply bytes arrive on ``c`` within ``seconds``."""
    if c.buf:
        return True
    c.sock.settimeout(seconds)
    try:
        chunk = c.sock.recv(65536)
    except socket.timeout:
        return False
    finally:
        c.sock.settimeout(10)
    if not chunk:
        raise ConnectionError("connection closed")
    c.buf += chunk
    return True


@contextlib.contextmanager
def strace(pid: int, *options: str, output: str = "/dev/null"):
    """Attach strace to every thread of ``pid`` for the duration of the block.

    ``options`` are strace options, e.g. ``-e inject=fdatasync:delay_enter=500000``.
    Skips the test if strace is missing or may not attach (ptrace denied)."""
    binary = shutil.which("strace")
    if binary is None:
        pytest.skip("strace is not installed (apt-get install strace): needed to control fsync timing")
    proc = subprocess.Popen(
        [binary, "-f", "-tt", "-o", output, *options, "-p", str(pid)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )
    line = proc.stderr.readline().decode()
    if "attached" not in line:
        proc.kill()
        proc.wait()
        pytest.skip(f"strace cannot attach here: {line.strip() or 'no output'}")
    try:
        yield
    finally:
        proc.terminate()  # detaches cleanly; the server runs on untraced
        proc.communicate(timeout=10)


def fsync_delayed(pid: int, seconds: float = FSYNC_DELAY):
    return strace(pid, "-e", "trace=fdatasync", "-e", f"inject=fdatasync:delay_enter={int(seconds * 1e6)}")


# ---------------------------------------------------------------- sync: held until fsync


def test_write_replies_arrive_only_after_their_record_is_logged(serve):
    srv = serve()
    c = RawClient(srv.port)
    for i in range(100):
        key, value = b"k:%d" % i, b"v:%d" % i
        assert c.call("SET", key, value) == b"+OK\r\n"
        assert is_logged(srv.data_dir, key, value), f"reply to SET {key!r} came before its record was on the log"
    # a pipeline: the first reply comes only when every record of the read is logged
    c.send_raw(b"".join(resp("SET", b"p:%d" % i, b"w:%d" % i) for i in range(50)))
    assert c.read_reply() == b"+OK\r\n"
    logged = set(logged_sets(srv.data_dir))
    assert all((b"p:%d" % i, b"w:%d" % i) in logged for i in range(50))
    for _ in range(49):
        assert c.read_reply() == b"+OK\r\n"


def test_write_reply_waits_for_a_slow_fsync(serve):
    srv = serve()
    c = RawClient(srv.port)
    with fsync_delayed(srv.proc.pid):
        t0 = time.monotonic()
        c.send_raw(resp("SET", "slow", "1"))
        deadline = time.monotonic() + 5
        while not is_logged(srv.data_dir, b"slow", b"1"):  # written, fsync in progress
            assert time.monotonic() < deadline, "the record never reached the log file"
            time.sleep(0.005)
        assert not reply_within(c, 0.2), "SET was acknowledged while its fsync was still running"
        assert c.read_reply() == b"+OK\r\n"
        assert time.monotonic() - t0 >= FSYNC_DELAY * 0.9


def test_read_of_a_value_written_elsewhere_waits_for_its_durability(serve):
    """Connection B must not see A's write before A's write is durable."""
    srv = serve()
    a, b = RawClient(srv.port), RawClient(srv.port)
    seen = 0
    for i in range(200):
        key, value = b"x:%d" % (i % 7), b"v:%d" % i
        a.send_raw(resp("SET", key, value))
        got = b.call("GET", key)
        if got == bulk(value):
            seen += 1
            assert is_logged(srv.data_dir, key, value), "B read A's write before it was on the log"
        assert a.read_reply() == b"+OK\r\n"
    # Deterministic version: the fsync of A's record is held for half a second.
    with fsync_delayed(srv.proc.pid):
        a.send_raw(resp("SET", "shared", "future"))
        deadline = time.monotonic() + 5
        while not is_logged(srv.data_dir, b"shared", b"future"):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        b.send_raw(resp("GET", "shared"))  # A's record is written, not yet durable
        assert not reply_within(b, 0.2), "B was answered with a value that was not durable yet"
        assert b.read_reply() == bulk(b"future")
        assert a.read_reply() == b"+OK\r\n"


def test_reads_answer_at_once_when_nothing_is_pending(serve):
    srv = serve()
    c = RawClient(srv.port)
    assert c.call("SET", "k", "v") == b"+OK\r\n"
    with fsync_delayed(srv.proc.pid, 1.0):
        t0 = time.monotonic()
        for _ in range(20):
            assert c.call("GET", "k") == bulk(b"v")
            assert c.call("GET", "missing") == b"$-1\r\n"
        assert time.monotonic() - t0 < 0.5, "reads waited although nothing was pending"


def syscall_order(trace: str) -> str:
    """The strace output as a string of events in order: ``F`` an
    fdatasync returned 0, ``R`` the write of a ``+OK`` reply began."""
    order = []
    with open(trace) as f:
        for line in f:
            if '"+OK\\r\\n"' in line:  # arguments are printed on entry
                order.append("R")
            elif "fdatasync" in line and line.rstrip().endswith("= 0"):  # the return, maybe "resumed"
                order.append("F")
    return "".join(order)


def test_sync_mode_fsyncs_before_every_sequential_reply(serve, tmp_path):
    """At the syscall level: every ``+OK`` goes out after an fdatasync that
    returned after the previous one."""
    srv = serve()
    c = RawClient(srv.port)
    trace = str(tmp_path / "sync.strace")
    with strace(srv.proc.pid, "-e", "trace=fdatasync,write,writev,sendto,sendmsg", output=trace):
        for i in range(50):
            assert c.call("SET", b"s:%d" % i, b"v") == b"+OK\r\n"
    order = syscall_order(trace)
    assert order.count("R") == 50, order
    assert "RR" not in order and order.startswith("F"), order


# ---------------------------------------------------------------- async


def test_async_mode_replies_before_the_fsync(serve, tmp_path):
    srv = serve("--durability", "async")
    c = RawClient(srv.port)
    with fsync_delayed(srv.proc.pid, 2.0):
        t0 = time.monotonic()
        for i in range(50):
            assert c.call("SET", b"a:%d" % i, b"v") == b"+OK\r\n"
        assert time.monotonic() - t0 < 1.0, "async replies waited for a (2 s) fsync"
    trace = str(tmp_path / "async.strace")
    with strace(srv.proc.pid, "-e", "trace=fdatasync,write,writev,sendto,sendmsg", output=trace):
        for i in range(50):
            assert c.call("SET", b"b:%d" % i, b"v") == b"+OK\r\n"
        time.sleep(1.5)  # the periodic fsync runs once a second
    order = syscall_order(trace)
    assert order.count("R") == 50, order
    assert 1 <= order.count("F") <= 4 and "R" * 10 in order, f"50 async writes, 1.5 s: {order}"


def test_async_mode_keeps_data_written_seconds_before_a_kill(serve):
    srv = serve("--durability", "async")
    c = RawClient(srv.port)
    for i in range(200):
        assert c.call("SET", b"k:%d" % i, b"v:%d" % i) == b"+OK\r\n"
    time.sleep(2.0)
    restart(srv)
    c = RawClient(srv.port)
    for i in range(200):
        assert c.call("GET", b"k:%d" % i) == bulk(b"v:%d" % i)


# ---------------------------------------------------------------- failed appends


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, so the log can really run out of space."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) to create a small tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {r.stderr.strip()}")
    yield str(mnt)
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: str) -> str:
    """Fill the file system holding ``directory``; return the filler's path."""
    path = os.path.join(directory, "filler")
    chunk = 1 << 16
    with open(path, "wb", buffering=0) as f:
        while chunk:
            try:
                f.write(b"\0" * chunk)
            except OSError:
                chunk //= 2
    return path


def test_disk_full_refuses_writes_keeps_reads_and_recovers(serve, small_disk):
    data_dir = os.path.join(small_disk, "data")
    srv = serve(data_dir=data_dir)
    a, b = RawClient(srv.port), RawClient(srv.port)
    acked = {}
    for i in range(20):
        assert a.call("SET", b"k:%d" % i, b"v:%d" % i) == b"+OK\r\n"
        acked[b"k:%d" % i] = b"v:%d" % i
    assert a.call("SET", "over", "old") == b"+OK\r\n"
    acked[b"over"] = b"old"
    filler = fill(small_disk)

    big = b"x" * 100_000  # needs new pages: cannot fit in the last page's slack
    assert a.call("SET", "over", big) == ENOSPC_REPLY
    assert a.call("SET", "new", big) in (ENOSPC_REPLY, LOADING_REPLY)
    # reads keep working, on both connections, and the failed writes are not visible
    assert get_retrying(b, "over") == bulk(b"old")
    assert get_retrying(a, "over") == bulk(b"old")
    assert get_retrying(b, "new") == b"$-1\r\n"
    for key, value in acked.items():
        assert get_retrying(b, key) == bulk(value)
    assert srv.proc.poll() is None
    assert not any(k in (b"over", b"new") and v == big for k, v in logged_sets(data_dir))

    # writes stay refused while the disk is full ...
    assert a.call("SET", "new", big) in (ENOSPC_REPLY, LOADING_REPLY)
    # ... and work again once there is room
    os.unlink(filler)
    deadline = time.monotonic() + 10
    while (reply := a.call("SET", "over", big)) != b"+OK\r\n":
        assert reply in (ENOSPC_REPLY, LOADING_REPLY), reply
        assert time.monotonic() < deadline, "writes never worked again after space was freed"
        time.sleep(0.05)
    acked[b"over"] = big
    assert b.call("GET", "over") == bulk(big)

    restart(srv)
    c = RawClient(srv.port)
    for key, value in acked.items():
        assert c.call("GET", key) == bulk(value)
    assert c.call("GET", "new") == b"$-1\r\n"
    assert logged_sets(data_dir)[-1] == (b"over", big)


def test_disk_filling_under_concurrent_writers_acknowledges_only_what_is_logged(serve, small_disk):
    """Writers race the disk to full. Afterwards exactly the acknowledged
    writes exist; a write answered with an error never shows up, and no
    value a reader saw is lost."""
    data_dir = os.path.join(small_disk, "data")
    srv = serve(data_dir=data_dir)
    filler = os.path.join(small_disk, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * (1 << 20))  # half the disk: the writers fill the rest
    value = b"y" * 16_000
    acked: set[bytes] = set()
    refused: set[bytes] = set()
    seen: set[bytes] = set()
    unexpected: list[bytes] = []
    stop = threading.Event()

    writers = 6
    in_flight = [b"w%d:0" % n for n in range(writers)]

    def writer(n: int) -> None:
        c = RawClient(srv.port)
        i = 0
        while not stop.is_set():
            key = in_flight[n] = b"w%d:%d" % (n, i)
            i += 1
            reply = c.call("SET", key, value)
            if reply == b"+OK\r\n":
                acked.add(key)
            elif reply in (ENOSPC_REPLY, LOADING_REPLY):
                refused.add(key)
            else:
                unexpected.append(reply)
                return

    def reader() -> None:
        """Read the keys being written right now: the ones a failure loses."""
        c = RawClient(srv.port)
        while not stop.is_set():
            keys = list(in_flight)
            c.send_raw(b"".join(resp("GET", key) for key in keys))
            for key in keys:
                reply = c.read_reply()
                if reply == bulk(value):
                    seen.add(key)
                elif reply not in (b"$-1\r\n", LOADING_REPLY, ENOSPC_REPLY):
                    unexpected.append(reply)
                    return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 15
    # each failed append starts a rebuild; every one is a chance to catch a stale read
    while srv.output().count("rebuilding the keyspace") < 3 and time.monotonic() < deadline and not unexpected:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    assert not unexpected, unexpected[:3]
    assert acked and refused, (len(acked), len(refused))
    assert srv.proc.poll() is None

    c = RawClient(srv.port)
    for key in refused:
        assert get_retrying(c, key) == b"$-1\r\n", f"refused write {key!r} is visible"
    os.unlink(filler)
    restart(srv)
    c = RawClient(srv.port)
    for key in acked | seen:
        assert c.call("GET", key) == bulk(value), f"{key!r} (acked={key in acked}, seen={key in seen}) was lost"
    for key in refused:
        assert c.call("GET", key) == b"$-1\r\n", f"refused write {key!r} came back after restart"
    assert {k for k, _ in logged_sets(data_dir)} == acked


def test_async_mode_failed_append_keeps_earlier_written_records(serve, small_disk):
    """With ``--durability async`` a failed append still rebuilds the
    keyspace from the log, and records written (not yet fsynced) before the
    failure are part of it: they are on the file and come back on restart,
    so they must not vanish from reads in between."""
    data_dir = os.path.join(small_disk, "data")
    srv = serve("--durability", "async", data_dir=data_dir)
    c = RawClient(srv.port)
    assert c.call("SET", "first", "v") == b"+OK\r\n"
    time.sleep(0.1)  # written: the segment's first page exists
    filler = fill(small_disk)
    assert c.call("SET", "early", "v") == b"+OK\r\n"  # fits in that page
    time.sleep(0.1)  # written on its own, before the batch that fails
    assert c.call("SET", "big", b"x" * 100_000) == b"+OK\r\n"  # async: acknowledged, then lost
    deadline = time.monotonic() + 5
    while "rebuilding the keyspace" not in srv.output():
        assert time.monotonic() < deadline, "the failed append was not noticed"
        time.sleep(0.01)
    assert get_retrying(c, "early") == bulk(b"v")
    assert get_retrying(c, "big") == b"$-1\r\n"
    os.unlink(filler)
    restart(srv)
    c = RawClient(srv.port)
    assert c.call("GET", "early") == bulk(b"v")
    assert c.call("GET", "big") == b"$-1\r\n"


def test_reads_of_expired_keys_do_not_write_while_appends_fail(serve):
    """Lazy expiry is a write (an ``expired`` event). While appends fail, a
    read of an expired key answers nil and defers the deletion, instead of
    failing the read and forcing another rebuild of the keyspace. (A tiny
    record may still fit a full tmpfs's last page, so the failure here is
    an fsync failing with ENOSPC, as thin-provisioned and network disks do.)"""
    srv = serve()
    c = RawClient(srv.port)
    assert c.call("SET", "short", "lived", "PX", "300") == b"+OK\r\n"
    assert c.call("SET", "kept", "v") == b"+OK\r\n"
    with strace(srv.proc.pid, "-e", "trace=fdatasync", "-e", "inject=fdatasync:error=ENOSPC"):
        assert c.call("SET", "other", "v") == ENOSPC_REPLY
        assert get_retrying(c, "kept") == bulk(b"v")
        time.sleep(0.35)
        for _ in range(5):
            assert c.call("GET", "short") == b"$-1\r\n"
            assert c.call("GET", "kept") == bulk(b"v")
        assert srv.output().count("rebuilding the keyspace") == 1
    restart(srv)
    c = RawClient(srv.port)
    assert c.call("GET", "short") == b"$-1\r\n"
    assert c.call("GET", "kept") == bulk(b"v")
    assert c.call("GET", "other") == b"$-1\r\n"


def test_fsync_io_error_fails_the_write_and_nothing_else(serve):
    srv = serve()
    a, b = RawClient(srv.port), RawClient(srv.port)
    assert a.call("SET", "k", "old") == b"+OK\r\n"
    with strace(srv.proc.pid, "-e", "trace=fdatasync", "-e", "inject=fdatasync:error=EIO"):
        assert a.call("SET", "k", "new") == EIO_REPLY
        assert get_retrying(b, "k") == bulk(b"old")
        assert a.call("SET", "k", "newer") in (EIO_REPLY, LOADING_REPLY)
    deadline = time.monotonic() + 10
    while (reply := a.call("SET", "k", "after")) != b"+OK\r\n":
        assert reply in (EIO_REPLY, LOADING_REPLY), reply
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not is_logged(srv.data_dir, b"k", b"new")
    restart(srv)
    assert RawClient(srv.port).call("GET", "k") == bulk(b"after")


# ---------------------------------------------------------------- restart: LOADING


LOADED = re.compile(r"loaded (\d+) records / (\d+) events up to offset \d+ in ([\d.]+)s \((\d+) events/s\)")


def test_restart_answers_loading_while_replaying_a_big_log(serve):
    # No automatic snapshots: this measures a replay of the whole log
    # (tests/test_snapshot.py covers start-up from a snapshot plus the tail).
    srv = serve("--snapshot-every-events", "0")
    c = RawClient(srv.port)
    n, batch = 200_000, 10_000
    for start in range(0, n, batch):
        c.send_raw(b"".join(resp("SET", b"key:%d" % i, b"value:%d" % i) for i in range(start, start + batch)))
        for _ in range(batch):
            assert c.read_reply() == b"+OK\r\n"
    c.close()

    srv.kill()
    srv.start(wait=False)
    replies = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            probe = RawClient(srv.port, timeout=5)
        except OSError:
            time.sleep(0.002)
            continue
        reply = probe.call("GET", "key:123")
        probe.close()
        replies.append(reply)
        if reply != LOADING_REPLY:
            break
        time.sleep(0.01)  # probe, do not compete with the replay for the loop
    assert LOADING_REPLY in replies, "never saw -LOADING: the replay was too quick to catch"
    assert replies[-1] == bulk(b"value:123")
    c = RawClient(srv.port)
    assert c.call("GET", "key:199999") == bulk(b"value:199999")

    found = LOADED.findall(srv.output())
    records, events, seconds, rate = found[-1]
    assert int(records) == n and int(events) == n
    print(f"replayed {n} events in {seconds}s: {rate} events/s")
