"""Read replicas on the embedded file log: ``fjord serve --replica
--replica-of-dir DIR`` tails a writer's log on the same machine.

Functional tests over real sockets: a writer and replica(s) as child
processes, redis-py and raw bytes (store/replication.py, store/sentinel.py).
"""

from __future__ import annotations

import time

import pytest
import redis
from redis.sentinel import Sentinel

from conftest import FjordProcess, RawClient

READONLY = b"-READONLY You can't write against a read only replica.\r\n"


def until(predicate, timeout: float = 5.0, step: float = 0.01):
    """Poll ``predicate`` until it is truthy; return its last value."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value or time.time() > deadline:
            return value
        time.sleep(step)


def start_writer(tmp_path, *extra: str, name: str = "writer") -> FjordProcess:
    w = FjordProcess(str(tmp_path / name), args=extra)
    w.args += ["--advertise-addr", f"127.0.0.1:{w.port}"]
    return w.start()


def start_replica(tmp_path, writer: FjordProcess, *extra: str, name: str = "replica") -> FjordProcess:
    return FjordProcess(str(tmp_path / name), args=(
        "--replica", "--replica-of-dir", writer.data_dir, "--failover-timeout-ms", "0", *extra)).start()


def kill(p: FjordProcess) -> None:
    if p.proc is not None and p.proc.poll() is None:
        p.proc.kill()
        p.proc.wait()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """One writer and its replica for the module (starting them is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("pair")
    procs: list[FjordProcess] = []
    try:
        w = start_writer(tmp_path, "--log-segment-bytes", "4096")
        procs.append(w)
        r = start_replica(tmp_path, w)
        procs.append(r)
        yield w, r
    finally:
        for p in procs:
            kill(p)


def test_replica_serves_what_the_writer_wrote_and_tails_new_segments(pair):
    w, r = pair
    wc, rc = w.client(), r.client()
    wc.set("before", "1")
    # many records: the writer rolls 4 KiB segments, the replica follows
    for i in range(300):
        wc.hset("h", f"f{i}", "x" * 20)
    wc.set("after", "2", px=60_000)
    assert until(lambda: rc.get("after") == b"2")
    assert rc.get("before") == b"1"
    assert rc.hlen("h") == 300
    assert 0 < rc.pttl("after") <= 60_000
    assert rc.dbsize() == wc.dbsize()


def test_replica_refuses_writes_with_redis_words(pair):
    w, r = pair
    raw = RawClient(r.port)
    assert raw.call("SET", "k", "v") == READONLY
    assert raw.call("DEL", "k") == READONLY
    assert raw.call("GET", "k") == b"$-1\r\n"
    # in a transaction the write is refused when queued and EXEC aborts
    assert raw.call("MULTI") == b"+OK\r\n"
    assert raw.call("SET", "k", "v") == READONLY
    assert raw.call("EXEC") == b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    assert raw.call("WAIT", "0", "0").startswith(b"-ERR WAIT cannot be used with replica instances")


def test_info_replication_and_role_on_both_sides(pair):
    w, r = pair
    wc, rc = w.client(), r.client()
    wc.set("k", "v")
    assert wc.wait(1, 5000) == 1
    assert until(lambda: wc.info("replication")["connected_slaves"] == 1)
    info = rc.info("replication")
    assert info["role"] == "slave"
    assert info["master_host"] == "127.0.0.1" and info["master_port"] == w.port
    assert until(lambda: rc.info("replication")["master_link_status"] == "up")
    assert info["slave_read_only"] == 1
    assert "fjord_replica_lag_records" in info
    winfo = wc.info("replication")
    assert winfo["role"] == "master" and winfo["connected_slaves"] == 1
    assert winfo["slave0"]["port"] == r.port and winfo["slave0"]["state"] == "online"
    end = winfo["master_repl_offset"]
    assert until(lambda: wc.info("replication")["slave0"]["offset"] == end)
    assert wc.execute_command("ROLE") == [b"master", end, [[b"127.0.0.1", str(r.port).encode(), str(end).encode()]]]
    assert until(lambda: rc.execute_command("ROLE") == [b"slave", b"127.0.0.1", w.port, b"connected", end])


def test_sentinel_commands_and_redis_py_sentinel_client(pair):
    w, r = pair
    for node in (w, r):
        raw = RawClient(node.port)
        addr = b"*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%d\r\n" % (len(str(w.port)), w.port)
        assert raw.call("SENTINEL", "get-master-addr-by-name", "fjord") == addr
        assert raw.call("SENTINEL", "get-master-addr-by-name", "nope") == b"*-1\r\n"
        assert raw.call("SENTINEL", "master", "nope") == b"-ERR No such master with that name\r\n"
        assert raw.call("SENTINEL", "replicas", "nope") == b"-ERR No such master with that name\r\n"
        assert raw.call("SENTINEL", "sentinels", "fjord") == b"*0\r\n"
        assert raw.call("SENTINEL", "foo") == b"-ERR unknown subcommand 'foo'. Try SENTINEL HELP.\r\n"
        assert raw.call("SENTINEL", "get-master-addr-by-name") == \
            b"-ERR wrong number of arguments for 'sentinel|get-master-addr-by-name' command\r\n"
    assert until(lambda: w.client().info("replication")["connected_slaves"] == 1)
    sentinel = Sentinel([("127.0.0.1", r.port), ("127.0.0.1", w.port)], socket_timeout=2)
    assert sentinel.discover_master("fjord") == ("127.0.0.1", w.port)
    master = sentinel.master_for("fjord", socket_timeout=2)
    master.set("via-sentinel", "yes")
    assert sentinel.discover_slaves("fjord") == [("127.0.0.1", r.port)]
    replica = sentinel.slave_for("fjord", socket_timeout=2)
    assert until(lambda: replica.get("via-sentinel") == b"yes")
    with pytest.raises(redis.exceptions.ReadOnlyError):
        replica.set("x", "y")


def test_a_writer_without_an_address_writes_no_claim(tmp_path):
    w = FjordProcess(str(tmp_path / "plain")).start()
    try:
        c = w.client()
        c.set("k", "v")
        assert c.info("replication")["fjord_epoch"] == 0
        assert c.execute_command("SENTINEL", "get-master-addr-by-name", "fjord") == [b"127.0.0.1", str(w.port).encode()]
        assert c.info("persistence")["log_end_offset"] == 1  # the SET alone: no claim record
    finally:
        kill(w)


def test_replica_needs_the_writers_directory(tmp_path):
    p = FjordProcess(str(tmp_path / "lonely"), args=("--replica",))
    p.start(wait=False)
    assert p.proc.wait(timeout=20) == 1
    p.logfile.close()
    assert "--replica needs --replica-of-dir" in p.output()


def test_wait_counts_replicas_that_applied_the_write(pair, tmp_path):  # last: it adds a replica
    w, r = pair
    wc = w.client()
    wc.set("k", "1")
    assert wc.wait(1, 5000) == 1
    t0 = time.monotonic()
    assert wc.wait(2, 300) == 1  # only one replica: the timeout answers with the count
    assert 0.25 < time.monotonic() - t0 < 3
    r2 = start_replica(tmp_path, w, name="replica2")
    try:
        wc.set("k", "2")
        assert wc.wait(2, 5000) == 2
        assert r2.client().get("k") == b"2"
    finally:
        kill(r2)
    raw = RawClient(w.port)
    assert raw.call("WAIT", "0", "0") == b":1\r\n"
    assert raw.call("WAIT", "1", "-1") == b"-ERR timeout is negative\r\n"


def test_replica_links_to_a_writer_with_a_password(tmp_path):
    w = FjordProcess(str(tmp_path / "writer"), args=("--requirepass", "s3cret"))
    w.args += ["--advertise-addr", f"127.0.0.1:{w.port}"]
    w.start(password="s3cret")
    r = None
    try:
        r = FjordProcess(str(tmp_path / "replica"), args=(
            "--replica", "--replica-of-dir", w.data_dir, "--failover-timeout-ms", "0",
            "--requirepass", "s3cret")).start(password="s3cret")
        wc = w.client(password="s3cret")
        wc.set("k", "v")
        assert wc.wait(1, 5000) == 1
        assert r.client(password="s3cret").get("k") == b"v"
    finally:
        for p in (r, w):
            if p is not None:
                kill(p)


async def test_readonly_file_log_refresh_tails_the_owner(tmp_path):
    from streams.events import Event, encode_record
    from streams.filelog import FileLog

    owner = await FileLog.open(str(tmp_path / "log"), segment_bytes=2048, index_interval=512)
    reader = await FileLog.open(str(tmp_path / "log"), readonly=True)
    try:
        payload = encode_record(0, [Event("set", 0, b"k", {"value": b"x" * 100})])
        for n in range(1, 60):
            await owner.append([payload])
            assert await reader.refresh() == n  # one record at a time, across segment rolls
        assert len(reader.segment_list()) == len(owner.segment_list()) > 2
        assert [r.offset for r in [r async for r in reader.read(0)]] == list(range(59))
        # refreshing per record keeps the index sparse
        assert all(len(seg.index) <= 2048 // 512 + 2 for seg in reader._segments)
    finally:
        await reader.close()
        await owner.close()


def test_replica_starts_from_the_writers_snapshot(tmp_path):
    w = start_writer(tmp_path)
    r = None
    try:
        wc = w.client()
        wc.rpush("l", *range(100))
        assert wc.bgsave()
        assert until(lambda: wc.info("persistence")["snapshot_count"] >= 1
                     and not wc.info("persistence")["rdb_bgsave_in_progress"], timeout=20)
        wc.rpush("l", "tail")
        r = start_replica(tmp_path, w)
        assert r.client().lrange("l", -2, -1) == [b"99", b"tail"]
        assert r.client().llen("l") == 101
        assert "loaded the writer's snapshot" in r.output()
    finally:
        for p in (r, w):
            if p is not None:
                kill(p)
