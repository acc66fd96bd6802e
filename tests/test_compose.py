"""compose.yaml: parsed with pyyaml (``docker compose config`` needs the
compose plugin, absent here); every Fjord service must run a real ``fjord``
subcommand with flags that exist, and images, volumes and health checks must
be declared."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def compose() -> dict:
    with open(os.path.join(ROOT, "compose.yaml")) as f:
        return yaml.safe_load(f)


def fjord_help(words: list[str]) -> str:
    out = subprocess.run([sys.executable, "-m", "store", *words, "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"fjord {' '.join(words)} --help failed: {out.stderr}"
    return out.stdout


def subcommand_words(command: list[str]) -> list[str]:
    """The leading words before the first flag: ``serve``, ``triggers run``."""
    words = []
    for w in command:
        if w.startswith("-"):
            break
        words.append(w)
    return words


def test_services_and_their_parts_are_declared(compose):
    services = compose["services"]
    assert {"kafka", "writer", "replica", "triggers"} <= set(services)
    declared_volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        assert svc.get("image"), f"service {name} has no image"
        assert svc.get("healthcheck", {}).get("test"), f"service {name} has no health check"
        assert isinstance(svc.get("command"), list), f"service {name}: command must be a list"
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            assert source in declared_volumes, f"service {name} uses undeclared volume {source}"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"service {name} depends on unknown {dep}"
    assert "dockerfile_inline" in services["writer"]["build"]


def test_every_fjord_command_and_flag_exists(compose):
    checked = 0
    for name, svc in compose["services"].items():
        if svc["image"] != "fjord:local":
            continue
        command = [str(w) for w in svc["command"]]
        words = subcommand_words(command)
        assert words, f"service {name} runs no fjord subcommand"
        help_text = fjord_help(words)
        for flag in (w for w in command if w.startswith("--")):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), \
                f"service {name}: 'fjord {' '.join(words)}' has no {flag}"
        checked += 1
    assert checked == 3


def test_the_nodes_are_wired_together(compose):
    services = compose["services"]
    writer = [str(w) for w in services["writer"]["command"]]
    replica = [str(w) for w in services["replica"]["command"]]
    assert "--replica" in replica and "--replica" not in writer
    for cmd in (writer, replica):
        assert cmd[cmd.index("--kafka-bootstrap") + 1] == "kafka:9092"
        host = cmd[cmd.index("--advertise-addr") + 1].split(":")[0]
        assert host in services  # reachable by its compose service name
    worker = [str(w) for w in services["triggers"]["command"]]
    topics = {cmd[cmd.index("--kafka-topic") + 1] for cmd in (writer, replica, worker)}
    assert len(topics) == 1  # one log, read by all
    assert worker[worker.index("--kafka-bootstrap") + 1] == "kafka:9092"
