"""The flows a tenant gets on day one.

What it is for: ``front_desk()`` is the template every new tenant starts with, and what the
main number runs until the business publishes its own flow:

- during business hours (Mon-Fri 08:00-17:00 in the tenant's time zone, public holidays
  closed): the office manager's phone rings (20 s), then the service manager and the service
  coordinator together (20 s), then the service manager's voicemail with the standard greeting;
- outside business hours and on holidays: the after-hours message, then the service manager's
  voicemail.

``after_hours()`` is the same after-hours branch on its own (for closures and emergencies).
Targets are roles (``role:office_manager``), so the template fits any tenant whose people
hold those roles.

What it must never do: read the database or the clock; templates are plain documents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from frontdesk.routing.model import FlowDocument

FRONT_DESK = "front-desk"
AFTER_HOURS = "after-hours"

WEEKDAY_HOURS = ["08:00-17:00"]
AFTER_HOURS_MESSAGE = (
    "Thank you for calling. Our office is closed right now. Please leave a message after "
    "the tone and we will call you back on the next business day."
)


def _voicemail_steps() -> dict[str, Any]:
    return {
        "after-hours-message": {
            "type": "play",
            "label": "The after-hours message",
            "message": "after-hours",
            "next": "voicemail-after-hours",
        },
        "voicemail-after-hours": {
            "type": "voicemail",
            "label": "Voicemail of the service manager",
            "mailbox": "role:service_manager",
            "greeting": "standard",
        },
    }


def front_desk(
    timezone: str = "America/New_York", country: str | None = "US", subdivision: str | None = None
) -> FlowDocument:
    """The front-desk routine (see the module docstring) in ``timezone``, closed on the public
    holidays of ``country`` (None: no public holidays)."""
    schedule: dict[str, Any] = {
        "weekly": {d: WEEKDAY_HOURS for d in ("mon", "tue", "wed", "thu", "fri")}
    }
    if country:
        schedule["holidays"] = {"country": country, "subdivision": subdivision}
    nodes: dict[str, Any] = {
        "start": {"type": "start", "next": "business-hours"},
        "business-hours": {
            "type": "hours",
            "label": "Is the office open?",
            "schedule": "office",
            "open": "ring-office-manager",
            "closed": "after-hours-message",
            "holiday": "after-hours-message",
        },
        "ring-office-manager": {
            "type": "ring",
            "label": "The office manager answers first",
            "targets": ["role:office_manager"],
            "timeout": 20,
            "no_answer": "ring-service-team",
            "busy": "ring-service-team",
        },
        "ring-service-team": {
            "type": "ring",
            "label": "Then the service manager and the service coordinator",
            "targets": ["role:service_manager", "role:service_coordinator"],
            "strategy": "simultaneous",
            "timeout": 20,
            "no_answer": "voicemail-service-manager",
            "busy": "voicemail-service-manager",
        },
        "voicemail-service-manager": {
            "type": "voicemail",
            "label": "Voicemail of the service manager",
            "mailbox": "role:service_manager",
            "greeting": "standard",
        },
        **_voicemail_steps(),
    }
    return FlowDocument.model_validate(
        {
            "name": FRONT_DESK,
            "title": "Front desk",
            "timezone": timezone,
            "schedules": {"office": schedule},
            "messages": {"after-hours": AFTER_HOURS_MESSAGE},
            "nodes": nodes,
        }
    )


def after_hours(timezone: str = "America/New_York") -> FlowDocument:
    """Every call hears the after-hours message and reaches the service manager's voicemail."""
    return FlowDocument.model_validate(
        {
            "name": AFTER_HOURS,
            "title": "After hours",
            "timezone": timezone,
            "messages": {"after-hours": AFTER_HOURS_MESSAGE},
            "nodes": {
                "start": {"type": "start", "next": "after-hours-message"},
                **_voicemail_steps(),
            },
        }
    )


TEMPLATES: dict[str, Callable[[], FlowDocument]] = {
    FRONT_DESK: front_desk,
    AFTER_HOURS: after_hours,
}


def template(name: str) -> FlowDocument:
    """The template called ``name``; KeyError lists the known ones."""
    try:
        return TEMPLATES[name]()
    except KeyError:
        raise KeyError(f"no template {name!r}; templates: {', '.join(TEMPLATES)}") from None
