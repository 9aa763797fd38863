"""The watcher: one ``event.from`` loop per enabled pool, keeping the object cache current.

``manage.py watch_pools`` runs a :class:`Supervisor`, which every ``POOL_WATCHER_POLL_SECONDS``

1. writes the process heartbeat the pages show;
2. starts a :class:`PoolWatcher` thread for each enabled pool without one, stops the threads
   of pools that were disabled or removed, restarts those whose connection settings changed;
3. purges pools that stayed stale longer than ``POOL_STALE_GRACE_SECONDS``.

The watcher handles its own losses: it greys a lost pool's objects and purges them itself
(pools/cache.py), then sends ``pool_connected`` / ``pool_lost`` / ``pool_purged`` only to tell
other apps (pools/signals.py).

A PoolWatcher follows docs/xapi.md §7.4/7.5: log in (following ``HOST_IS_SLAVE``; after a
transport error probing the known pool members for the new master), take a token with
``event.inject`` *before* fetching every watched class, replace the cache, then loop on
``event.from``. ``SESSION_INVALID``, ``EVENTS_LOST`` or a bad token restart from the inject; a
``valid_ref_counts`` that disagrees with the cache (ghost tasks after a toolstack restart)
re-fetches that class. A lost connection greys the objects (``pool_lost``) and reconnects with a
doubling backoff.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from pools import cache
from pools.choices import PoolStatus
from pools.crypto import CredentialsUnreadable
from pools.models import Pool, WatcherHeartbeat
from pools.services import client_for
from pools.signals import pool_connected, pool_lost, pool_purged
from pools.xapi import (
    SessionRenewed,
    TlsFingerprintMismatch,
    XapiClient,
    XapiConnectionError,
    XapiError,
    XapiFailure,
    find_master,
    url_for_address,
)

logger = logging.getLogger(__name__)

#: The classes watched with event.from; each has a cached model (pools/cache.py), except pool.
WATCHED_CLASSES = ("pool", "host", "SR", "VM", "VDI", "VBD", "task")
CACHED_CLASSES = tuple(name for name in WATCHED_CLASSES if name != "pool")

#: Errors after which the event token is void and the cache must be rebuilt from a full fetch.
RESYNC_CODES = {"SESSION_INVALID", "EVENTS_LOST", "EVENT_FROM_TOKEN_PARSE_FAILURE"}
#: Errors that mean the host we talk to is no longer the master (docs/xapi.md §7.5).
MASTER_GONE = {"HOST_IS_SLAVE", "HOST_STILL_BOOTING", "HOST_HAS_NO_MANAGEMENT_IP"}


def config_key(pool: Pool) -> tuple:
    """What the connection depends on: a change of any of these restarts the pool's loop."""
    return (
        pool.master_url,
        pool.username,
        pool.password_encrypted,
        pool.tls_mode,
        pool.tls_fingerprint,
        tuple(sorted(pool.member_fingerprints.items())),
    )


def report_loss(pool: Pool, *, status: str, reason: str) -> None:
    """A pool was lost (unreachable, refused or disabled): grey its objects, purge them at once
    when the grace period is 0 (like XO 5.56), and tell other apps."""
    cache.mark_lost(pool, status=status, reason=reason)
    logger.warning("pool %s lost: %s", pool.name, reason)
    pool_lost.send(sender=Pool, pool=pool, reason=reason, status=status)
    for purged in cache.purge_expired(pool=pool):
        pool_purged.send(sender=Pool, pool=purged)


class PoolWatcher(threading.Thread):
    """Keeps one pool's cache current until stopped."""

    def __init__(self, pool: Pool) -> None:
        super().__init__(name=f"watch-{pool.name}", daemon=True)
        self.pool = pool
        self.config_key = config_key(pool)
        self.stopping = threading.Event()
        self.client: XapiClient | None = None
        self.token = ""
        self.lost = False
        self.backoff = 1.0
        self.events_applied = 0
        self.resyncs_in_a_row = 0  # full fetches with no event.from answered in between

    # -- control --

    def stop(self) -> None:
        """Ask the loop to end and break a waiting ``event.from`` by closing its socket."""
        self.stopping.set()
        client = self.client
        if client is not None:
            client.abort()

    def run(self) -> None:
        try:
            self._run()
        finally:
            if self.client is not None:
                self.client.logout()
            connection.close()

    def _run(self) -> None:
        retried_at_once = False
        while not self.stopping.is_set():
            try:
                self.connect()
                self.resync()
                self.backoff = 1.0
                retried_at_once = False
                self.follow_events()
            except SessionRenewed as error:
                logger.info("pool %s: %s; full resync", self.pool.name, error)
                self.pause_if_resyncing_in_a_loop()
            except (XapiConnectionError, XapiFailure) as error:
                if isinstance(error, XapiFailure) and error.code in RESYNC_CODES:
                    logger.info("pool %s: %s; full resync", self.pool.name, error.code)
                    self.pause_if_resyncing_in_a_loop()
                    continue
                master_gone = (
                    isinstance(error, XapiConnectionError)
                    and not isinstance(error, TlsFingerprintMismatch)
                ) or error.code in MASTER_GONE
                if master_gone and not self.lost and not retried_at_once:
                    # A failover or a toolstack restart: look for the master again at once,
                    # and grey the objects only if that fails.
                    logger.info("pool %s: %s; looking for the master", self.pool.name, error)
                    self.drop_client()
                    retried_at_once = True
                    continue
                self.lose(str(error), PoolStatus.STALE if master_gone else PoolStatus.ERROR)
            except (CredentialsUnreadable, XapiError) as error:
                self.lose(str(error), PoolStatus.ERROR)
            except DatabaseError:
                logger.exception("pool %s: database error; retrying", self.pool.name)
                self.wait_backoff()
            except Exception:
                if self.stopping.is_set():
                    break
                logger.exception("pool %s: unexpected error; reconnecting", self.pool.name)
                self.lose("unexpected error in the watcher (see its log)", PoolStatus.ERROR)

    def pause_if_resyncing_in_a_loop(self) -> None:
        """A pool that voids every new token at once must not be re-fetched in a tight loop."""
        if self.resyncs_in_a_row >= 3:
            self.wait_backoff()

    def drop_client(self) -> None:
        if self.client is not None:
            self.client.logout()
            self.client = None

    def lose(self, reason: str, status: str) -> None:
        """Record the failure (the first of an outage greys the objects and tells other apps),
        then wait before retrying."""
        self.drop_client()
        if self.stopping.is_set():
            return
        if not self.lost:
            self.lost = True
            report_loss(self.pool, status=status, reason=reason)
        else:
            cache.mark_lost(self.pool, status=status, reason=reason)
        logger.info("pool %s: %s; retrying in %.0f s", self.pool.name, reason, self.backoff)
        self.wait_backoff()

    def wait_backoff(self) -> None:
        self.stopping.wait(self.backoff)
        self.backoff = min(self.backoff * 2, float(settings.POOL_RECONNECT_MAX_SECONDS))

    # -- steps --

    def connect(self) -> None:
        """Log in to the master: the last one known first, then the configured address, then
        every known member (one that knows the master answers ``HOST_IS_SLAVE``)."""
        if self.client is not None and self.client.logged_in:
            return
        pool = Pool.objects.get(pk=self.pool.pk)
        self.pool = pool
        candidates = [pool.connected_url or pool.master_url, pool.master_url, *pool.member_urls]

        def make_client(url: str) -> XapiClient:
            client = client_for(pool, url=url)
            remember = client.policy.on_new_fingerprint

            def on_new_fingerprint(address: str, fingerprint: str) -> None:
                remember(address, fingerprint)
                self.config_key = config_key(pool)

            client.policy.on_new_fingerprint = on_new_fingerprint
            return client

        self.client = find_master(candidates, make_client)

    def resync(self) -> None:
        """Token first, then a full fetch of every class, then replace the cache."""
        client = self.client
        pool_records = client.get_all_records("pool")
        pool_ref, pool_record = next(iter(pool_records.items()))
        self.token = client.event_inject("pool", pool_ref)
        records = {name: client.get_all_records(name) for name in CACHED_CLASSES}
        cache.full_sync(self.pool, records, pool_fields=self._pool_fields(pool_record, records))
        self.lost = False
        self.resyncs_in_a_row += 1
        self.pool.refresh_from_db()
        logger.info("pool %s connected and in sync", self.pool.name)
        pool_connected.send(sender=Pool, pool=self.pool)

    def _pool_fields(self, pool_record: dict, records: dict | None = None) -> dict:
        fields = {
            "connected_url": self.client.url,
            "xapi_uuid": pool_record.get("uuid", ""),
            "xapi_name_label": pool_record.get("name_label", ""),
        }
        if records is not None:
            fields["member_urls"] = self._member_urls(records.get("host", {}).values())
        return fields

    def _member_urls(self, hosts) -> list[str]:
        urls = []
        for host in hosts:
            address = host.get("address", "")
            if address:
                try:
                    urls.append(url_for_address(address, like=self.client.url))
                except ValueError:
                    continue
        return urls

    def follow_events(self) -> None:
        """``event.from`` until an error or a stop; apply each batch in one transaction."""
        while not self.stopping.is_set():
            result = self.client.event_from(
                WATCHED_CLASSES, self.token, float(settings.POOL_EVENT_TIMEOUT)
            )
            if self.stopping.is_set():
                return
            self.resyncs_in_a_row = 0
            self.token = result["token"]
            events = result.get("events", [])
            pool_fields = {}
            for event in events:
                if str(event.get("class", "")).lower() == "pool" and "snapshot" in event:
                    pool_fields.update(self._pool_fields(event["snapshot"]))
            self.events_applied += cache.apply_events(self.pool, events, pool_fields=pool_fields)
            if any(str(event.get("class", "")).lower() == "host" for event in events):
                self._refresh_member_urls()
            self.check_counts(result.get("valid_ref_counts", {}))

    def _refresh_member_urls(self) -> None:
        hosts = self.pool.host_set.values_list("record", flat=True)
        Pool.objects.filter(pk=self.pool.pk).update(member_urls=self._member_urls(hosts))

    def check_counts(self, valid_ref_counts: dict) -> None:
        """Re-fetch a class whose count on the pool differs from the cache (ghost objects).

        ``valid_ref_counts`` comes with the batch just applied, so after it the cache must hold
        exactly that many rows of each class; a difference means rows the pool no longer has
        (tasks gone without a ``del`` event) or events that were missed.
        """
        expected_counts = {str(key).lower(): int(value) for key, value in valid_ref_counts.items()}
        for name in CACHED_CLASSES:
            model = cache.MODEL_BY_CLASS[name.lower()]
            expected = expected_counts.get(name.lower())
            if expected is None:
                continue
            cached = model.objects.filter(pool=self.pool).count()
            if cached == expected:
                continue
            logger.info(
                "pool %s: %d %s on the pool, %d cached; re-fetching them",
                self.pool.name,
                expected,
                name,
                cached,
            )
            cache.replace_class(model, self.pool, self.client.get_all_records(name))


class Supervisor:
    """Runs one PoolWatcher per enabled pool, the heartbeat and the purge of expired pools."""

    def __init__(self, name: str = "watch_pools") -> None:
        self.name = name
        self.watchers: dict[int, PoolWatcher] = {}
        self.stopping = threading.Event()
        self.started_at = timezone.now()

    def other_watcher(self) -> WatcherHeartbeat | None:
        """Another live ``watch_pools`` (two would both write every pool's cache).

        A heartbeat of this host whose process is gone (a crash) does not count.
        """
        heartbeat = WatcherHeartbeat.objects.filter(name=self.name).first()
        if heartbeat is None or not heartbeat.is_alive():
            return None
        if heartbeat.hostname == socket.gethostname():
            if heartbeat.pid == os.getpid():
                return None
            try:
                os.kill(heartbeat.pid, 0)
            except ProcessLookupError:
                return None
            except PermissionError:
                pass
        return heartbeat

    def run(self) -> None:
        logger.info("watcher started (pid %d)", os.getpid())
        try:
            while not self.stopping.is_set():
                try:
                    self.tick()
                except DatabaseError:
                    logger.exception("watcher: database error; retrying")
                    close_old_connections()
                self.stopping.wait(settings.POOL_WATCHER_POLL_SECONDS)
        finally:
            self.shutdown()

    def tick(self) -> None:
        self.beat()
        pools = {pool.pk: pool for pool in Pool.objects.all()}
        for pk, watcher in list(self.watchers.items()):
            pool = pools.get(pk)
            if pool is None:
                logger.info("pool %s removed: stopping its watcher", watcher.pool.name)
                self._stop(pk)
            elif not pool.enabled:
                logger.info("pool %s disabled: stopping its watcher", pool.name)
                self._stop(pk)
            elif config_key(pool) != watcher.config_key:
                logger.info("pool %s changed: reconnecting", pool.name)
                self._stop(pk)
            elif not watcher.is_alive():
                self.watchers.pop(pk)
        for pk, pool in pools.items():
            if not pool.enabled:
                if pool.status != PoolStatus.DISABLED:
                    report_loss(pool, status=PoolStatus.DISABLED, reason="disabled")
            elif pk not in self.watchers:
                if pool.status == PoolStatus.DISABLED:
                    Pool.objects.filter(pk=pk).update(status=PoolStatus.CONNECTING)
                self.watchers[pk] = watcher = PoolWatcher(pool)
                watcher.start()
        for pool in cache.purge_expired():
            pool_purged.send(sender=Pool, pool=pool)

    def beat(self) -> None:
        now = timezone.now()
        WatcherHeartbeat.objects.update_or_create(
            name=self.name,
            defaults={
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": self.started_at,
                "beat_at": now,
            },
        )

    def _stop(self, pk: int) -> None:
        watcher = self.watchers.pop(pk)
        watcher.stop()
        watcher.join(timeout=10)

    def stop(self) -> None:
        self.stopping.set()

    def shutdown(self) -> None:
        """Stop every loop; their pools are no longer watched, so their objects go stale."""
        for pk in list(self.watchers):
            watcher = self.watchers[pk]
            self._stop(pk)
            try:
                pool = Pool.objects.get(pk=pk)
            except Pool.DoesNotExist:
                continue
            if pool.enabled:
                report_loss(pool, status=PoolStatus.STALE, reason="the watcher stopped")
            del watcher
        WatcherHeartbeat.objects.filter(name=self.name, pid=os.getpid()).delete()
        logger.info("watcher stopped")
