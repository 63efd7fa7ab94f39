"""The worker as its own process, as production runs it: `manage.py db_worker` started with
Popen against the test database (a file SQLite database, or PostgreSQL when DATABASE_URL says
so), settings through the environment, mail written as files by Django's file-based backend.

A revoke becomes exactly one signed delivery that the HTTPS receiver on 127.0.0.1 verifies with
the user guide's check; an expiring token gets exactly one reminder mail per threshold (30, 7, 1
days before and on the day) however many passes run. The worker's clock is moved forward (with
time-machine, in the worker's own process) to each reminder day, since a test cannot wait weeks.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from notifications.models import DeliveryStatus, EventType, WebhookDelivery
from notifications.tasks import send_expiry_reminders
from tests.factories import MembershipFactory, TokenFactory, UserFactory, make_webhook
from tests.helpers import SECRET
from tests.webhook_receiver import Receiver, verify
from workspaces.models import Role

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
WORKER = [sys.executable, "manage.py", "db_worker", "--no-startup-delay", "--no-reload", "-v0"]
# The worker, its clock set to a moment (ticking from there) before Django starts.
SHIFTED = (
    "import datetime as dt, sys, time_machine\n"
    "with time_machine.travel(dt.datetime.fromisoformat(sys.argv[1]), tick=True):\n"
    "    from django.core.management import execute_from_command_line\n"
    "    execute_from_command_line(['manage.py', *sys.argv[2:]])\n"
)
TIMEOUT = 60  # seconds any one worker run may take on a loaded machine


def database_url() -> str:
    """The test database, as the worker's DATABASE_URL."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    assert connection.vendor == "postgresql"
    user, host, port = settings["USER"], settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


@pytest.fixture
def receiver(tmp_path) -> Iterator[Receiver]:
    with Receiver(tmp_path) as running:
        yield running


@pytest.fixture
def mail_dir(tmp_path) -> Path:
    return tmp_path / "mail"


@pytest.fixture
def worker_env(receiver, mail_dir) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=database_url(),
        COFFER_EMAIL_FILE_PATH=str(mail_dir),
        COFFER_WEBHOOK_ALLOW_PRIVATE="true",  # the receiver is on 127.0.0.1
        COFFER_WEBHOOK_CA_FILE=str(receiver.certificate),
        COFFER_WEBHOOK_TIMEOUT="5",
        COFFER_LOG_LEVEL="WARNING",
    )
    return env


@pytest.fixture
def running_worker(worker_env) -> Iterator[subprocess.Popen]:
    """`manage.py db_worker`, polling every 0.2 s, until the test ends (then stopped, or killed
    if it does not stop within 10 s)."""
    process = subprocess.Popen(
        [*WORKER, "--interval", "0.2"], cwd=ROOT, env=worker_env, stderr=subprocess.PIPE
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def run_worker_at(env: dict[str, str], moment: dt.datetime) -> None:
    """`db_worker --batch` with its clock at `moment`: runs every due task and exits."""
    done = subprocess.run(
        [sys.executable, "-c", SHIFTED, moment.isoformat(), *WORKER[2:], "--batch"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr


def wait_for(condition, seconds: float = TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the worker did not do it in time"
        time.sleep(0.1)


def mails(folder: Path) -> list[email.message.Message]:
    """Every message the file-based backend wrote (several may share a file)."""
    found = []
    for path in sorted(folder.glob("*.log")) if folder.exists() else []:
        for chunk in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if chunk.strip():
                found.append(email.message_from_bytes(chunk))
    return found


def test_a_revoke_is_one_signed_delivery_by_the_worker_process(workspace, receiver, running_worker):
    webhook, secret = make_webhook(workspace, url=receiver.url(), events=[EventType.TOKEN_REVOKED])
    token = TokenFactory(workspace=workspace, key="STRIPE_SECRET", value=SECRET)
    token.revoke()

    wait_for(lambda: receiver.received)
    wait_for(
        lambda: WebhookDelivery.objects.filter(
            webhook=webhook, status=DeliveryStatus.SUCCEEDED
        ).exists()
    )
    time.sleep(1)  # a few more polls of the worker: nothing is sent twice
    assert running_worker.poll() is None, "the worker keeps running"
    (request,) = receiver.received
    assert verify(secret, request.body, request.headers["X-Coffer-Signature"])
    assert not verify("whsec_" + "x" * 43, request.body, request.headers["X-Coffer-Signature"])
    event = json.loads(request.body)
    assert (event["type"], event["token"]["key"]) == ("token.revoked", "STRIPE_SECRET")
    assert SECRET not in request.body.decode()
    assert secret not in request.body.decode() and secret not in str(request.headers)
    assert WebhookDelivery.objects.filter(webhook=webhook).count() == 1


def test_an_expiring_token_gets_one_reminder_mail_per_threshold(workspace, worker_env, mail_dir):
    owner = UserFactory(username="olga", email="olga@example.com")
    MembershipFactory(workspace=workspace, user=owner, role=Role.OWNER)
    today = timezone.now().astimezone(dt.UTC).date()
    noon = dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC)
    expiry = today + dt.timedelta(days=20)
    TokenFactory(workspace=workspace, key="STRIPE_SECRET", value=SECRET, expiry_date=expiry)

    subjects_by_day = {}
    # 20 days before: the 30-day reminder; 14 days later, 6 left: the 7-day one; the day after,
    # 5 left: nothing new; then 1 day before, and on the day.
    for day in (0, 14, 15, 19, 20):
        before = len(mails(mail_dir))
        send_expiry_reminders.enqueue()
        send_expiry_reminders.enqueue()  # a second pass (cron twice, two workers): no repeat
        run_worker_at(worker_env, noon + dt.timedelta(days=day))
        subjects_by_day[day] = [m["Subject"] for m in mails(mail_dir)[before:]]

    assert subjects_by_day == {
        0: ["[Coffer] 1 token expiring soon"],
        14: ["[Coffer] 1 token expiring soon"],
        15: [],
        19: ["[Coffer] 1 token expiring soon"],
        20: ["[Coffer] 1 token expiring soon"],
    }
    bodies = [m.get_payload(decode=True).decode() for m in mails(mail_dir)]
    assert [m["To"] for m in mails(mail_dir)] == ["olga@example.com"] * 4
    assert "expires in 20 days" in bodies[0] and "expires in 6 days" in bodies[1]
    assert "expires tomorrow" in bodies[2] and "STRIPE_SECRET in Acme" in bodies[3]
    assert all(SECRET not in body and SECRET[-4:] not in body for body in bodies)
