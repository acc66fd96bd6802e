"""The text of ``INFO``: Redis's sections and field names, from server state.

Each section is a list of (field, value) pairs rendered as ``field:value``
lines under ``# Section``, as Redis does, so clients that parse INFO
(redis-py's ``info()``, monitoring agents) read Fjord unchanged. Fields are
Redis's where Fjord has the concept; Fjord's own figures (the log, group
commit, durability) sit beside them in the Persistence and Stats sections.

Fjord's own fields:

- Server: ``fjord_version``, ``python_version``, ``event_loop``.
- Persistence: ``rdb_*`` describe snapshots (``rdb_changes_since_last_save``
  counts log records past the newest snapshot), ``snapshot_offset`` (the log
  offset the newest snapshot covers), ``snapshot_count``;
  ``durability`` (sync/async); ``log_start_offset``,
  ``log_end_offset`` (everything below it is durable), then the backend's
  ``stats()`` (file log: ``log_written_offset``, segments, bytes, fsync
  count/last/avg/max ms); ``durability_lag_records`` (staged or written but
  not yet durable); ``group_commit_batches/records/max_batch/avg_batch``;
  ``last_write_error(_time)``; ``replay_*`` (the replay at start).
  While loading, Redis's ``loading_*`` fields count items, not bytes:
  ``loading_total_items``/``loading_loaded_items`` are snapshot events plus
  tail log records; ``loading_phase`` (snapshot|log),
  ``loading_snapshot_events``, ``loading_total_records``/
  ``loading_loaded_records`` (the tail) and ``loading_events_done`` are
  Fjord's own (see store/loading.py).
- Stats: ``total_held_replies`` (replies that waited for durability),
  ``total_protocol_errors``, ``total_log_write_errors``.
- Replication: ``master_repl_offset`` is the log's end offset.

Approximations, on purpose:

- ``used_memory`` is the process's resident set size (``/proc/self/statm``;
  ``getrusage`` peak where /proc is missing): Python has no cheap count of
  the bytes its objects hold.
- ``instantaneous_ops_per_sec`` and the kbps figures are rates between
  samples taken when INFO runs (see ``RateMeter``): the first INFO after a
  quiet spell reports the average since the previous one.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .server import Server

DEFAULT_SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "cpu",
                    "cluster", "keyspace")
ALL_SECTIONS = DEFAULT_SECTIONS  # Fjord has no modules/commandstats/latencystats yet


def info_text(server: "Server", args: list[bytes]) -> str:
    """INFO's reply text for ``args`` (the section names, possibly none).

    Unknown sections are ignored; if nothing is left the reply is empty, as
    in Redis. Sections always come in Redis's order.
    """
    wanted: set[str] = set()
    for a in args or [b"default"]:
        name = a.decode("utf-8", "replace").lower()
        if name in ("all", "everything"):
            wanted.update(ALL_SECTIONS, EXTRA_SECTIONS)
        elif name == "default":
            wanted.update(DEFAULT_SECTIONS, EXTRA_SECTIONS)
        else:
            wanted.add(name)
    parts = []
    for name in ALL_SECTIONS:
        if name in wanted:
            fields = SECTIONS[name](server)
            title = "CPU" if name == "cpu" else name.capitalize()
            parts.append("".join([f"# {title}\r\n", *(f"{k}:{_clean(v)}\r\n" for k, v in fields)]))
    for name, section in EXTRA_SECTIONS.items():
        fields = section(server) if name in wanted else None
        if fields is not None:
            parts.append("".join([f"# {name.capitalize()}\r\n", *(f"{k}:{_clean(v)}\r\n" for k, v in fields)]))
    return "\r\n".join(parts)


#: Sections other packages add (``add_section``): shown after Redis's own, in
#: the default and ``all`` sets too. A function answering None leaves its
#: section out (e.g. a server that does not carry that feature).
EXTRA_SECTIONS: dict[str, Callable[["Server"], "list[tuple[str, object]] | None"]] = {}


def add_section(name: str, fields: Callable[["Server"], "list[tuple[str, object]] | None"]) -> None:
    """Register an INFO section (``# Triggers``) from outside store/."""
    EXTRA_SECTIONS[name.lower()] = fields


def _clean(value) -> str:
    """Keep every field on one line."""
    return str(value).replace("\r", " ").replace("\n", " ")


def _free_text(text: str) -> str:
    """Free text (an error message) never in the ``a=1,b=2`` shape that
    INFO parsers read as a dict."""
    return text.replace(",", ";") if "=" in text else text


def human_bytes(n: int) -> str:
    """Redis's ``bytesToHuman``: 1023B, 1.00K, 1.50M, ..."""
    if n < 1024:
        return f"{n}B"
    for unit in "KMGTP":
        n /= 1024
        if n < 1024 or unit == "P":
            return f"{n:.2f}{unit}"
    return f"{n:.2f}P"  # pragma: no cover


# ------------------------------------------------------------------ sections


def _server(srv: "Server") -> list[tuple[str, object]]:
    from .server import FJORD_VERSION, REDIS_VERSION

    now = time.time()
    uptime = int(now - srv.stats.start_time)
    u = platform.uname()
    return [
        ("redis_version", REDIS_VERSION),
        ("fjord_version", FJORD_VERSION),
        ("redis_mode", "standalone"),
        ("os", f"{u.system} {u.release} {u.machine}"),
        ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
        ("python_version", platform.python_version()),
        ("event_loop", _event_loop()),
        ("process_id", os.getpid()),
        ("run_id", srv.run_id),
        ("tcp_port", srv.port),
        ("server_time_usec", time.time_ns() // 1000),
        ("uptime_in_seconds", uptime),
        ("uptime_in_days", uptime // 86400),
        ("hz", srv.config["hz"]),
        ("configured_hz", srv.config["hz"]),
        ("executable", os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else sys.executable),
        ("config_file", srv.config.file or ""),
    ]


def _event_loop() -> str:
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "none"
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def _clients(srv: "Server") -> list[tuple[str, object]]:
    return [
        ("connected_clients", len(srv.clients)),
        ("maxclients", srv.config["maxclients"]),
        ("blocked_clients", srv.blocking.blocked_clients()),
    ]


def _memory(srv: "Server") -> list[tuple[str, object]]:
    rss = rss_bytes()
    peak = max(peak_rss_bytes(), rss)
    fields: list[tuple[str, object]] = [
        ("used_memory", rss),
        ("used_memory_human", human_bytes(rss)),
        ("used_memory_rss", rss),
        ("used_memory_rss_human", human_bytes(rss)),
        ("used_memory_peak", peak),
        ("used_memory_peak_human", human_bytes(peak)),
    ]
    total = _total_system_memory()
    if total:
        fields += [("total_system_memory", total), ("total_system_memory_human", human_bytes(total))]
    fields += [
        ("maxmemory", 0),
        ("maxmemory_human", "0B"),
        ("maxmemory_policy", "noeviction"),
        ("mem_allocator", "pymalloc"),
    ]
    return fields


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def _total_system_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _persistence(srv: "Server") -> list[tuple[str, object]]:
    log = srv.log
    committer = srv.committer
    fields: list[tuple[str, object]] = [("loading", 1 if srv.loading else 0), ("async_loading", 0)]
    if srv.loading and log is not None:
        fields += _loading_fields(srv)
    elif srv.loading:  # the Kafka broker has not answered yet: nothing to count
        fields += [("loading_start_time", int(srv.loading_started)), ("loading_total_items", 0),
                   ("loading_loaded_items", 0), ("loading_loaded_perc", "0.00"), ("loading_eta_seconds", -1),
                   ("loading_phase", "connecting"),
                   ("loading_log_error", (getattr(srv, "log_wait_error", None) or "").replace(",", ";"))]
    last_error = srv.write_error or (committer.last_error if committer is not None else None)
    fields += [
        ("rdb_changes_since_last_save", srv.saver.changes_since_save()),
        ("rdb_bgsave_in_progress", 1 if srv.saver.in_progress else 0),
        ("rdb_last_save_time", srv.last_save_time),
        ("rdb_last_bgsave_status", srv.saver.last_status),
        ("rdb_last_bgsave_time_sec", srv.saver.last_seconds),
        ("rdb_current_bgsave_time_sec",
         int(time.time() - srv.saver.last_started) if srv.saver.in_progress else -1),
        ("snapshot_offset", srv.saver.offset),
        ("snapshot_count", srv.saver.count),
        ("aof_enabled", 1),
        ("aof_rewrite_in_progress", 0),
        ("aof_last_write_status", "err" if srv.write_error else "ok"),
        ("durability", srv.config["durability"]),
    ]
    if log is not None:
        fields += [("log_start_offset", log.start_offset), ("log_end_offset", log.end_offset)]
        fields += [(k, v) for k, v in log.stats().items() if k not in ("log_start_offset", "log_end_offset")]
    if srv.retention is not None:
        fields += srv.retention.info_fields()
    if committer is not None:
        # staged but not yet appended, plus appended but not yet fsynced
        unsynced = max(getattr(log, "written_offset", log.end_offset) - log.end_offset, 0) if log else 0
        batches = committer.batches
        fields += [
            ("durability_lag_records", committer.staged - committer.durable + unsynced),
            ("group_commit_batches", batches),
            ("group_commit_records", committer.records),
            ("group_commit_max_batch", committer.max_batch),
            ("group_commit_avg_batch", f"{committer.records / batches if batches else 0:.2f}"),
        ]
    fields += [
        ("last_write_error", _free_text(last_error or "")),
        ("last_write_error_time", int(committer.last_error_time) if committer is not None else 0),
    ]
    replay = srv.replay_stats
    if replay is not None:
        fields += [
            ("replay_records", replay.records),
            ("replay_events", replay.events),
            ("replay_seconds", f"{replay.seconds:.3f}"),
            ("replay_events_per_sec", int(replay.events_per_second)),
        ]
    return fields


def _loading_fields(srv: "Server") -> list[tuple[str, object]]:
    """Redis's loading fields, counted in items instead of bytes (snapshot
    events, then log records of the tail: see store/loading.py), plus the
    phase and the events applied so far."""
    phase = getattr(srv, "loading_phase", "log")
    snap_total = getattr(srv, "loading_snapshot_events", 0)
    snap_done = getattr(srv, "loading_snapshot_done", 0)
    tail_start = getattr(srv, "loading_tail_start", srv.log.start_offset)
    tail_total = max(srv.loading_end_offset - tail_start, 0)
    tail_done = max(srv.loading_offset - tail_start, 0) if phase == "log" else 0
    total = snap_total + tail_total
    done = snap_done + tail_done
    elapsed = time.time() - srv.loading_started
    perc = 100.0 * done / total if total else 0.0
    eta = int(elapsed * (total - done) / done) if done else 1
    return [
        ("loading_start_time", int(srv.loading_started)),
        ("loading_total_items", total),
        ("loading_loaded_items", done),
        ("loading_loaded_perc", f"{perc:.2f}"),
        ("loading_eta_seconds", eta),
        ("loading_phase", phase),
        ("loading_snapshot_events", snap_total),
        ("loading_total_records", tail_total),
        ("loading_loaded_records", tail_done),
        ("loading_events_done", getattr(srv, "loading_events_done", 0)),
    ]


def _stats(srv: "Server") -> list[tuple[str, object]]:
    st = srv.stats
    ops, in_kbps, out_kbps = rates(srv)
    return [
        ("total_connections_received", st.connections_received),
        ("total_commands_processed", st.commands_processed),
        ("instantaneous_ops_per_sec", ops),
        ("total_net_input_bytes", st.net_input_bytes),
        ("total_net_output_bytes", st.net_output_bytes),
        ("instantaneous_input_kbps", f"{in_kbps:.2f}"),
        ("instantaneous_output_kbps", f"{out_kbps:.2f}"),
        ("rejected_connections", st.rejected_connections),
        ("expired_keys", st.expired_keys),
        ("evicted_keys", 0),
        ("keyspace_hits", st.keyspace_hits),
        ("keyspace_misses", st.keyspace_misses),
        ("pubsub_channels", len(srv.pubsub.channels)),
        ("pubsub_patterns", len(srv.pubsub.patterns)),
        ("pubsubshard_channels", len(srv.pubsub.shard_channels)),
        ("total_held_replies", st.held_replies),
        ("total_protocol_errors", st.protocol_errors),
        ("total_log_write_errors", st.write_errors),
    ]


def _replication(srv: "Server") -> list[tuple[str, object]]:
    replication = getattr(srv, "replication", None)
    if replication is not None:  # roles, replicas, offsets, lag: store/replication.py
        return replication.info_fields()
    return [
        ("role", "slave" if srv.is_replica else "master"),
        ("connected_slaves", 0),
        ("master_failover_state", "no-failover"),
        ("master_replid", srv.run_id),
        ("master_repl_offset", srv.log.end_offset if srv.log is not None else 0),
    ]


def _cpu(srv: "Server") -> list[tuple[str, object]]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return [
        ("used_cpu_sys", f"{me.ru_stime:.6f}"),
        ("used_cpu_user", f"{me.ru_utime:.6f}"),
        ("used_cpu_sys_children", f"{kids.ru_stime:.6f}"),
        ("used_cpu_user_children", f"{kids.ru_utime:.6f}"),
    ]


def _cluster(srv: "Server") -> list[tuple[str, object]]:
    return [("cluster_enabled", 0)]


def _keyspace(srv: "Server") -> list[tuple[str, object]]:
    return [
        (f"db{db.index}", f"keys={len(db.data)},expires={len(db.expires)},avg_ttl=0")
        for db in srv.keyspace.dbs if db.data
    ]


SECTIONS: dict[str, Callable[["Server"], list[tuple[str, object]]]] = {
    "server": _server, "clients": _clients, "memory": _memory, "persistence": _persistence,
    "stats": _stats, "replication": _replication, "cpu": _cpu, "cluster": _cluster, "keyspace": _keyspace,
}


# ------------------------------------------------------------------ rates


class RateMeter:
    """Per-second rates of the server's counters, from samples taken on demand.

    Each call records a sample and measures against the newest earlier
    sample at least ``min_age`` seconds old (or, when INFO is called more
    often than that, the oldest one kept). Samples older than ``keep`` are
    dropped, except the one the next call may need.
    """

    def __init__(self, min_age: float = 1.0, keep: float = 10.0):
        self.min_age = min_age
        self.keep = keep
        self.samples: deque[tuple[float, int, int, int]] = deque()

    def measure(self, commands: int, net_in: int, net_out: int, now: float | None = None
                ) -> tuple[int, float, float]:
        now = time.monotonic() if now is None else now
        samples = self.samples
        while len(samples) > 1 and now - samples[1][0] >= self.min_age and now - samples[0][0] > self.keep:
            samples.popleft()
        base = None
        for s in reversed(samples):
            if now - s[0] >= self.min_age:
                base = s
                break
        if base is None and samples and now - samples[0][0] >= 0.05:
            base = samples[0]
        samples.append((now, commands, net_in, net_out))
        if base is None:
            return 0, 0.0, 0.0
        dt = now - base[0]
        return (int((commands - base[1]) / dt), (net_in - base[2]) / dt / 1024, (net_out - base[3]) / dt / 1024)

    def reset(self) -> None:
        self.samples.clear()


_meters: "weakref.WeakKeyDictionary[Server, RateMeter]" = weakref.WeakKeyDictionary()


def rates(srv: "Server") -> tuple[int, float, float]:
    """(ops/sec, input kbps, output kbps) since an earlier INFO."""
    meter = _meters.get(srv)
    if meter is None:
        meter = _meters[srv] = RateMeter()
    st = srv.stats
    return meter.measure(st.commands_processed, st.net_input_bytes, st.net_output_bytes)


def reset_rates(srv: "Server") -> None:
    meter = _meters.get(srv)
    if meter is not None:
        meter.reset()
