"""Events of the ownership layer and the small in-process bus that delivers them.

Events are frozen dataclasses in the past tense. Each carries its own ``routing_key`` and
``required_permission`` (STYLE #12), so a WebSocket or webhook consumer can filter by key
and show an event only to people holding the permission, without a second table.
Notifications to "informed" stakeholders (RACI) are ``StakeholderInformed`` events, one
per person.

``service.py`` returns events in its outcome; the caller publishes them after its
transaction commits (an event for a change that rolled back must never go out). The bus
calls subscribers synchronously on the caller's thread; a failing subscriber is logged
and never stops the others or the change. This module must never touch the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger("frontdesk.org.events")


@dataclass(frozen=True, slots=True)
class OrgEvent:
    """Base of every ownership event: which tenant it concerns."""

    tenant_id: int

    @property
    def routing_key(self) -> str:
        raise NotImplementedError

    @property
    def required_permission(self) -> str | None:
        """The permission a person needs to see this event (None: only its addressee)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ChangeApplied(OrgEvent):
    """A configuration change was applied (directly, by approval, or as a rollback)."""

    resource_type: str
    resource_key: str
    action: str
    version: int
    actor: str
    channel: str
    audit_seq: int
    change_request_id: int | None = None

    @property
    def routing_key(self) -> str:
        return f"org.{self.resource_type}.{self.action}d"

    @property
    def required_permission(self) -> str | None:
        return f"{self.resource_type}.read"


@dataclass(frozen=True, slots=True)
class ChangeRequested(OrgEvent):
    """A cross-domain change is waiting for the owners of ``domains`` to decide."""

    change_request_id: int
    resource_type: str
    resource_key: str | None
    action: str
    requested_by: str
    domains: tuple[str, ...]
    approver_user_ids: tuple[int, ...]
    summary: str

    @property
    def routing_key(self) -> str:
        return "org.change_request.created"

    @property
    def required_permission(self) -> str | None:
        return "change_request.read"


@dataclass(frozen=True, slots=True)
class ChangeRequestDecided(OrgEvent):
    """An owner approved or rejected a change request (``decision``: approved/rejected)."""

    change_request_id: int
    decision: str
    decided_by: str
    comment: str
    applied: bool

    @property
    def routing_key(self) -> str:
        return f"org.change_request.{self.decision}"

    @property
    def required_permission(self) -> str | None:
        return "change_request.read"


@dataclass(frozen=True, slots=True)
class StakeholderInformed(OrgEvent):
    """One person listed as "informed" for a resource type is told about a change."""

    user_id: int
    role: str
    resource_type: str
    resource_key: str
    summary: str
    change_request_id: int | None = None

    @property
    def routing_key(self) -> str:
        return f"org.informed.user.{self.user_id}"

    @property
    def required_permission(self) -> str | None:
        return None


Subscriber = Callable[[OrgEvent], None]


@dataclass
class EventBus:
    """In-process publish/subscribe by routing-key prefix (``""`` receives everything)."""

    _subscribers: list[tuple[str, Subscriber]] = field(default_factory=list)

    def subscribe(self, subscriber: Subscriber, prefix: str = "") -> Callable[[], None]:
        """Call ``subscriber`` for every event whose routing key starts with ``prefix``;
        returns a function that unsubscribes it."""
        entry = (prefix, subscriber)
        self._subscribers.append(entry)
        return lambda: self._subscribers.remove(entry)

    def publish(self, events: Iterable[OrgEvent]) -> None:
        """Deliver ``events`` in order to every matching subscriber."""
        for event in events:
            key = event.routing_key
            for prefix, subscriber in list(self._subscribers):
                if not key.startswith(prefix):
                    continue
                try:
                    subscriber(event)
                except Exception:
                    log.exception("event subscriber %r failed on %s", subscriber, key)


@dataclass
class Recorder:
    """A subscriber that keeps what it received (for tests and the CLI's report)."""

    events: list[OrgEvent] = field(default_factory=list)

    def __call__(self, event: OrgEvent) -> None:
        self.events.append(event)
