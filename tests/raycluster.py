"""A real Ray cluster on this machine for the tests: a head node and worker nodes, each `ray start --block`
in a session of its own, all on a loopback address, and all of it killed (by session) when done.

The head uses 127.0.0.2 and the workers 127.0.0.3: Ray rewrites 127.0.0.1 and localhost into the
machine's network address (services.resolve_ip_for_localhost), while any other loopback address is
used as given, so no byte leaves the loopback interface. A driver joins the head's raylet (Ray 2.60
prefers the head among nodes on one host; 2.40-2.50 took a worker's, so killing it lost the driver). Small and quiet: a CPU or two per node, no dashboard, a small object
store, no usage statistics, no token written to ~/.ray, node deaths noticed within seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.2"  # the head (and the driver)
WORKER_HOST = "127.0.0.3"  # worker nodes: another address, as another machine would have
OBJECT_STORE = str(80 * 2**20)
START_TIMEOUT_S = 180.0
ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def session_processes(sid: int) -> list[int]:
    """Every process (Linux /proc) whose session is `sid`: a node started in a session of its own."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after the command: state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


def kill_session(sid: int) -> None:
    for pid in session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class LocalRayCluster:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="fpt-ray-", dir="/tmp"))  # short: Ray's socket paths
        self.port = free_port()
        self.address = f"{HOST}:{self.port}"
        self.env = {**os.environ, **ENV, "RAY_TMPDIR": str(self.root)}
        self.nodes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, host: str, *args: str) -> None:
        (self.root / name).mkdir()
        log = self.root / f"{name}.log"
        command = [str(Path(sys.executable).parent / "ray"), "start", "--block", "--node-ip-address", host]
        command += ["--object-store-memory", OBJECT_STORE, "--temp-dir", str(self.root / name), *args]
        with open(log, "w") as out:
            self.nodes[name] = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text():
            if self.nodes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray node {name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def start_head(self, cpus: int = 0) -> None:
        """The head; with no CPUs no run is placed on it, so a run's node can be killed while the head lives."""
        self._start(
            "head",
            HOST,
            "--head",
            f"--port={self.port}",
            f"--num-cpus={cpus}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        )

    def add_worker(self, name: str, cpus: int = 1) -> None:
        self._start(name, WORKER_HOST, f"--address={self.address}", f"--num-cpus={cpus}")

    def kill(self, name: str) -> None:
        """Kill the node `name` and everything it started (its raylet, workers and their trainings) at once."""
        node = self.nodes.pop(name)
        kill_session(node.pid)
        node.wait(timeout=30)

    def close(self) -> None:
        for name in list(self.nodes):
            self.kill(name)
        shutil.rmtree(self.root, ignore_errors=True)
