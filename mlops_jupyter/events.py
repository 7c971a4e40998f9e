"""The event bus: the domain says what happened, integrations listen.

In the spirit of IPython's ``core/events.py``: a closed, declared set of events, ``subscribe`` /
``unsubscribe`` / ``publish``, and a subscriber's error contained (logged as a warning) so that an
integration never breaks the work that published the event.

Events published inside a write transaction carry its connection (``conn``): a subscriber that must
write in the same transaction (the W&B mirror's outbox) does so there, inside a SAVEPOINT, so its
failure rolls back its own writes and nothing else. After such a transaction commits, the store
publishes ``committed`` with the list of events it carried; work that must wait for the commit
(starting the mirror process) subscribes to that.

Integrations are found through the entry-point group ``mlops_jupyter.integrations``: each entry
point names a callable taking the bus, which subscribes what it needs. They are loaded once, at the
first event published in the process, so ``import mlops_jupyter`` does not pay for them.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any, Callable

from .exceptions import MlopsError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mlops_jupyter.integrations"

#: Every event, with the payload names its subscribers are called with (as keyword arguments).
EVENTS: dict[str, tuple[str, ...]] = {
    "run.started": ("store", "run_id"),
    "run.ended": ("store", "run_id", "status"),
    "data.version_added": ("store", "version_id", "run_id"),
    "model.registered": ("store", "version_id", "conn"),
    "alias.moved": ("store", "event_id", "conn"),
    # after a write transaction that carried events commits: [(event, payload without conn), ...]
    "committed": ("published",),
}

#: Key of a connection's ``info`` under which the store collects the events published in its
#: current transaction (set when the transaction begins, removed when it ends).
PUBLISHED_KEY = "mlops.published"

Subscriber = Callable[..., Any]


class EventBus:
    """A closed set of events and their subscribers."""

    def __init__(self, events: dict[str, tuple[str, ...]] = EVENTS, entry_point_group: str | None = None):
        self.events = dict(events)
        self._subscribers: dict[str, list[Subscriber]] = {name: [] for name in self.events}
        self._group = entry_point_group
        self._loaded = entry_point_group is None
        self._load_lock = threading.Lock()

    def _check(self, event: str) -> None:
        if event not in self.events:
            raise MlopsError(f"unknown event {event!r}; the events are: {', '.join(self.events)}")

    def subscribe(self, event: str, fn: Subscriber) -> None:
        """Call *fn* (with the event's payload as keyword arguments) each time *event* is published."""
        self._check(event)
        if fn not in self._subscribers[event]:
            self._subscribers[event].append(fn)

    def unsubscribe(self, event: str, fn: Subscriber) -> None:
        self._check(event)
        try:
            self._subscribers[event].remove(fn)
        except ValueError:
            raise MlopsError(f"{fn!r} is not subscribed to {event!r}") from None

    def subscribers(self, event: str) -> list[Subscriber]:
        self._check(event)
        self.load_integrations()
        return list(self._subscribers[event])

    def publish(self, event: str, **payload: Any) -> None:
        """Tell every subscriber of *event*; a subscriber's exception is logged and dropped."""
        self._check(event)
        expected = self.events[event]
        if set(payload) != set(expected):
            raise MlopsError(f"event {event!r} carries {', '.join(expected)}; got {', '.join(sorted(payload))}")
        self.load_integrations()
        conn = payload.get("conn")
        if conn is not None:
            published = conn.info.get(PUBLISHED_KEY)
            if published is not None:
                published.append((event, {k: v for k, v in payload.items() if k != "conn"}))
        for fn in list(self._subscribers[event]):
            if conn is not None:
                self._call_in_savepoint(event, fn, conn, payload)
            else:
                self._call(event, fn, payload)

    def _call(self, event: str, fn: Subscriber, payload: dict) -> None:
        try:
            fn(**payload)
        except Exception as e:  # contained: an integration must not break the published work
            self._dropped(event, fn, e)

    def _call_in_savepoint(self, event: str, fn: Subscriber, conn, payload: dict) -> None:
        # A failed statement would poison the caller's transaction (PostgreSQL aborts it): the
        # subscriber's writes go in a savepoint that is rolled back alone when it fails.
        savepoint = conn.begin_nested()
        try:
            fn(**payload)
        except Exception as e:
            savepoint.rollback()
            self._dropped(event, fn, e)
        else:
            savepoint.commit()

    @staticmethod
    def _dropped(event: str, fn: Subscriber, e: Exception) -> None:
        name = getattr(fn, "__qualname__", repr(fn))
        log.warning("subscriber %s of %s failed", name, event, exc_info=e)
        warnings.warn(f"mlops: {name} failed on {event} ({type(e).__name__}: {e}); the work itself is saved",
                      RuntimeWarning, stacklevel=3)

    def load_integrations(self) -> None:
        """Let every integration installed under the entry-point group subscribe (once)."""
        if self._loaded:
            return
        with self._load_lock:
            if self._loaded:
                return
            self._loaded = True
            from .registry import entry_points_of, load_reference

            for name, value in sorted(entry_points_of(self._group)):
                try:
                    install = load_reference(value)
                    install(self)
                except Exception as e:  # a broken plugin is reported, the others still load
                    log.warning("integration %s failed to load", name, exc_info=e)
                    warnings.warn(f"mlops: integration {name!r} ({value}) failed to load "
                                  f"({type(e).__name__}: {e})", RuntimeWarning, stacklevel=2)


#: The process-wide bus.
bus = EventBus(entry_point_group=ENTRY_POINT_GROUP)


def publish(event: str, **payload: Any) -> None:
    """Publish *event* on the process-wide bus."""
    bus.publish(event, **payload)


def subscribe(event: str, fn: Subscriber) -> None:
    """Subscribe *fn* to *event* on the process-wide bus."""
    bus.subscribe(event, fn)


def unsubscribe(event: str, fn: Subscriber) -> None:
    bus.unsubscribe(event, fn)
