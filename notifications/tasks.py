"""The worker's tasks (Django's `django.tasks`, run by `manage.py db_worker`).

This module is the app's bottom: delivery.py, events.py and reminders.py enqueue these tasks,
and what each task runs is one of their functions, wired in by NotificationsConfig.ready
(`RUNS`), so no module imports one that imports it back. A queued task is stored under its
path (`notifications.tasks.deliver_webhook`): keep the names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.tasks import task

# Task name -> the function it runs (NotificationsConfig.ready fills it).
RUNS: dict[str, Callable[..., Any]] = {}


@task()
def deliver_webhook(delivery_id: str) -> str:
    """One attempt of one webhook delivery (delivery.attempt_delivery); a failure schedules
    the next attempt itself."""
    return RUNS["deliver_webhook"](delivery_id)


@task()
def send_expiry_reminders() -> dict[str, int]:
    """One reminder pass (reminders.run_pass, what `manage.py send_expiry_reminders` runs)."""
    return RUNS["send_expiry_reminders"]()
