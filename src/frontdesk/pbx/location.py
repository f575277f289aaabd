"""The location service: which contacts (phones) are registered for each extension.

Bindings live in memory for the hot path; every change is handed to a persistence callback
(the write-behind journal) so registrations survive a restart, and `load` puts them back at
start. This module never touches the database or the network itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from frontdesk.sip.peer import Peer


@dataclass(slots=True)
class Binding:
    tenant_id: int
    aor: str
    contact_uri: str
    peer: Peer  # where the REGISTER came from: requests go here (NAT)
    expires_at: float
    call_id: str
    cseq: int
    user_agent: str | None = None
    instance_id: str | None = None
    reg_id: int | None = None
    path: str | None = None
    reachable: bool = True

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


BindingListener = Callable[[str, Binding], None]  # ("upsert" | "delete", binding)


class LocationService:
    """Bindings per (tenant, AOR), newest last."""

    def __init__(self, listener: BindingListener | None = None) -> None:
        self._bindings: dict[tuple[int, str], list[Binding]] = {}
        self._listener = listener

    def _notify(self, kind: str, binding: Binding) -> None:
        if self._listener is not None:
            self._listener(kind, binding)

    def lookup(self, tenant_id: int, aor: str, now: float) -> list[Binding]:
        """Unexpired bindings of an AOR."""
        return [b for b in self._bindings.get((tenant_id, aor), ()) if b.expires_at > now]

    def find(self, tenant_id: int, aor: str, contact_uri: str) -> Binding | None:
        for b in self._bindings.get((tenant_id, aor), ()):
            if b.contact_uri == contact_uri:
                return b
        return None

    def save(self, binding: Binding, max_contacts: int) -> None:
        """Add or refresh a binding; drop the oldest beyond ``max_contacts``."""
        key = (binding.tenant_id, binding.aor)
        current = [b for b in self._bindings.get(key, []) if not _same(b, binding)]
        current.append(binding)
        while len(current) > max_contacts:
            self._notify("delete", current.pop(0))
        self._bindings[key] = current
        self._notify("upsert", binding)

    def remove(self, binding: Binding) -> None:
        key = (binding.tenant_id, binding.aor)
        current = self._bindings.get(key, [])
        kept = [b for b in current if not _same(b, binding)]
        if len(kept) != len(current):
            self._notify("delete", binding)
        if kept:
            self._bindings[key] = kept
        else:
            self._bindings.pop(key, None)

    def apply(self, kind: str, binding: Binding) -> None:
        """Mirror a change another process made (and persisted) to an address-of-record it
        owns (serve --sip-workers): ``upsert`` replaces or adds the binding, ``delete``
        removes it. The owner already applied the contact limit (it sends a delete for each
        dropped binding). The persistence callback does not run."""
        key = (binding.tenant_id, binding.aor)
        current = [b for b in self._bindings.get(key, ()) if not _same(b, binding)]
        if kind != "delete":
            current.append(binding)
        if current:
            self._bindings[key] = current
        else:
            self._bindings.pop(key, None)

    def remove_all(self, tenant_id: int, aor: str) -> None:
        for b in self._bindings.pop((tenant_id, aor), []):
            self._notify("delete", b)

    def expire(self, now: float) -> list[Binding]:
        """Drop expired bindings and return them."""
        gone: list[Binding] = []
        for key in list(self._bindings):
            current = self._bindings[key]
            kept = [b for b in current if b.expires_at > now]
            if len(kept) != len(current):
                gone.extend(b for b in current if b.expires_at <= now)
                if kept:
                    self._bindings[key] = kept
                else:
                    del self._bindings[key]
        for b in gone:
            self._notify("delete", b)
        return gone

    def load(self, bindings: Iterable[Binding]) -> None:
        """Restore bindings at start (no persistence callback)."""
        for b in bindings:
            self._bindings.setdefault((b.tenant_id, b.aor), []).append(b)

    def all(self) -> list[Binding]:
        return [b for bs in self._bindings.values() for b in bs]

    def __len__(self) -> int:
        return sum(len(v) for v in self._bindings.values())


def _same(a: Binding, b: Binding) -> bool:
    """RFC 5626: a binding with the same +sip.instance and reg-id replaces the old one."""
    if a.instance_id and a.instance_id == b.instance_id and a.reg_id == b.reg_id:
        return True
    return a.contact_uri == b.contact_uri
