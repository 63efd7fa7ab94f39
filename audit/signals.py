"""The audit trail's one signal: sent for every event recorded, by `AuditEvent.record` and
`AuditEvent.record_many` alike (so a resolve is heard like an edit).

Receivers are called with `sender=AuditEvent`, `event` (the saved AuditEvent) and `token` (the
Token the event is about, or None; still given for a deletion, whose row no longer points at
it). They run synchronously inside the transaction that writes the event: an exception in a
receiver rolls the change back, and a rollback undoes what the receivers wrote. Work that must
wait for the commit belongs in `transaction.on_commit`.

This base app imports none of its listeners: an app above connects in its `AppConfig.ready`
(notifications turns token and access key events into webhook deliveries there).
"""

from __future__ import annotations

from django.dispatch import Signal

event_recorded = Signal()
