"""How `make run` stops on Ctrl-C: the worker hands its work back, and Redis stops last.

honcho, which runs the Procfile, answers Ctrl-C by sending SIGTERM to the process group of
every process at once, and SIGKILL to whatever is left a few seconds after the first one ended
(5 by default: ``make run`` starts honcho through :func:`run_honcho`, which gives
:data:`HONCHO_KILL_SECONDS`). Two processes cannot take SIGTERM as it is:

* the Celery worker: SIGTERM to its group reaches its pool processes too, which die at once
  with the task they were running;
* Redis: it would stop while the worker still needs it to acknowledge or hand back messages,
  and the worker would log "Couldn't reject" tracebacks.

So both run here, in a session of their own, where honcho's signals reach only this wrapper,
which stops them in order, within honcho's time:

* ``worker`` (each Celery worker of the Procfile): SIGTERM to the worker's main process only, a
  warm shutdown (no new task, running ones go on); a task still running after
  ``XOWEB_WORKER_STOP_SECONDS`` (10) is cancelled by a cold shutdown (SIGQUIT). A backup task is
  acknowledged late, so its message goes back to Redis for the next start or another worker: it
  finishes or is handed back, never lost (docs/architecture.md §Celery delivery);
* ``redis``: started with the password of ``var/redis_password`` (given on standard input, never
  on the command line where ``ps`` would show it), and stopped when no other client is connected
  any more (every other process has stopped) or after ``REDIS_STOP_WAIT_SECONDS``. The worker's
  wrapper holds a connection of its own until the worker has exited, so Redis outlives it.

If this wrapper is killed all the same, the kernel sends its child a signal (PR_SET_PDEATHSIG:
SIGQUIT to the worker, SIGTERM to Redis), so nothing is left running. docs/security.md §Stopping.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: How long honcho lets the processes stop before it kills them.
HONCHO_KILL_SECONDS = 30
#: How long running tasks may go on after a stop request, before they are handed back.
WORKER_STOP_SECONDS = float(os.environ.get("XOWEB_WORKER_STOP_SECONDS", "10"))
#: How long Redis waits for its clients to go: past it, honcho would kill it anyway.
REDIS_STOP_WAIT_SECONDS = HONCHO_KILL_SECONDS - 3
_PR_SET_PDEATHSIG = 1


def _die_with_parent(signum: int) -> Callable[[], None]:
    parent = os.getpid()

    def arrange() -> None:  # runs in the child, between fork and exec
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signum)

    return arrange


def start_alone(argv: list[str], death_signal: int, **popen) -> subprocess.Popen:
    """Start ``argv`` in a session of its own, sent ``death_signal`` if this process dies."""
    return subprocess.Popen(
        argv, start_new_session=True, preexec_fn=_die_with_parent(death_signal), **popen
    )


class StopRequest:
    """Set by SIGTERM, SIGINT or SIGHUP (honcho, a terminal, a closed terminal)."""

    def __init__(self) -> None:
        self.at: float | None = None
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.at is None:
            self.at = time.monotonic()

    def elapsed(self) -> float:
        return 0.0 if self.at is None else time.monotonic() - self.at


def say(name: str, message: str) -> None:
    sys.stdout.write(f"{name}: {message}\n")
    sys.stdout.flush()


def _one_quick_try() -> dict:
    """Client options for a wrapper's look at Redis: never block the stop for long."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {"socket_timeout": 1, "socket_connect_timeout": 1, "retry": Retry(NoBackoff(), 0)}


class BrokerLease:
    """One connection to the worker's broker, held while the worker lives: the Redis of
    `make run` waits for its last client before it stops, so it stops after the worker."""

    def __init__(self) -> None:
        self.client = None
        self.next_try = 0.0

    def hold(self) -> None:
        if self.client is not None or time.monotonic() < self.next_try:
            return
        import redis
        from django.conf import settings

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xoweb.settings")
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, **_one_quick_try())
        try:
            client.ping()  # opens the connection, which stays in the client's pool
        except redis.RedisError:
            self.next_try = time.monotonic() + 1  # Redis is starting: try again soon
            return
        self.client = client

    def release(self) -> None:
        if self.client is not None:
            self.client.close()


def run_worker(argv: list[str]) -> int:
    """Run the Celery worker ``argv``; on a stop request, warm shutdown, then cold."""
    stop = StopRequest()
    worker = start_alone(argv, signal.SIGQUIT)
    lease = BrokerLease()
    warned = cancelled = False
    while True:
        try:
            code = worker.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            lease.hold()
        else:
            lease.release()
            return code
        if stop.at is None:
            continue
        if not warned:
            worker.send_signal(signal.SIGTERM)
            warned = True
        elif not cancelled and stop.elapsed() > WORKER_STOP_SECONDS:
            say(
                "graceful",
                f"the worker still runs {WORKER_STOP_SECONDS:g} s after the stop request: cold "
                "shutdown (a backup task still running goes back to the broker)",
            )
            worker.send_signal(signal.SIGQUIT)
            cancelled = True


def _redis_clients(port: int, password: str) -> int | None:
    import redis

    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=password, **_one_quick_try())
        with client:
            return int(client.info("clients")["connected_clients"]) - 1  # not counting us
    except redis.RedisError:
        return None


def run_redis(var_dir: Path, port: int) -> int:
    """Run the Redis of `make run` with its password; stop it when nobody uses it any more."""
    from xoweb.files import use_private_umask
    from xoweb.secrets import read_or_create_secret

    use_private_umask()  # the append-only file holds every queued task
    stop = StopRequest()
    password = read_or_create_secret(var_dir / "redis_password")
    data = var_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    server = start_alone(
        [
            "redis-server",
            "-",  # the configuration is read from standard input: the password stays off argv
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--protected-mode",
            "yes",
        ],
        signal.SIGTERM,
        stdin=subprocess.PIPE,
    )
    server.stdin.write(f"requirepass {password}\n".encode())
    server.stdin.close()
    waiting_since_said = False
    while True:
        try:
            return server.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if stop.at is None:
            continue
        clients = _redis_clients(port, password)
        if clients and stop.elapsed() < REDIS_STOP_WAIT_SECONDS:
            if not waiting_since_said:
                say("graceful", f"Redis stops after its {clients} client(s) have gone")
                waiting_since_said = True
            continue
        say("graceful", "stopping Redis last")
        server.send_signal(signal.SIGTERM)
        return server.wait()


def run_honcho(argv: list[str]) -> int:
    """honcho's command line, with :data:`HONCHO_KILL_SECONDS` to stop (honcho has no option
    for it: its module constant is the setting)."""
    import honcho.manager
    from honcho.command import main as honcho_main

    honcho.manager.KILL_WAIT = HONCHO_KILL_SECONDS
    honcho_main(argv)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["honcho"]:
        return run_honcho(argv[1:])
    if argv[:1] == ["redis"]:
        var_dir = Path(os.environ.get("XOWEB_VAR_DIR", "var"))
        return run_redis(var_dir, int(os.environ.get("XOWEB_REDIS_PORT", "6380")))
    if argv[:2] == ["worker", "--"] and len(argv) > 2:
        return run_worker(argv[2:])
    sys.stderr.write(
        "usage: python -m xoweb.graceful honcho ARGUMENTS… | redis | worker -- COMMAND…\n"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
