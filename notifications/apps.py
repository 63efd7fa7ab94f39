from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from audit.signals import event_recorded
        from notifications.events import audit_event_recorded

        event_recorded.connect(audit_event_recorded, dispatch_uid="notifications.webhooks")
        from keys.sealed import Source, register
        from notifications.models import sealed_webhook_secrets

        register(Source("webhook signing secrets", sealed_webhook_secrets))

        # What the worker's tasks run: tasks.py, which delivery, events and reminders import to
        # enqueue, imports none of them back.
        from notifications import delivery, reminders, tasks

        tasks.RUNS["deliver_webhook"] = delivery.attempt_delivery
        tasks.RUNS["send_expiry_reminders"] = lambda: reminders.run_pass().counts()
