"""The worker's tasks (Django's `django.tasks`, run by `manage.py db_worker`)."""

from __future__ import annotations

from django.tasks import task


@task()
def deliver_webhook(delivery_id: str) -> str:
    """One attempt of one webhook delivery; a failure schedules the next attempt itself."""
    from notifications.delivery import attempt_delivery

    return attempt_delivery(delivery_id)


@task()
def send_expiry_reminders() -> dict[str, int]:
    """One reminder pass (what `manage.py send_expiry_reminders` runs)."""
    from notifications.reminders import run_pass

    return run_pass().counts()
