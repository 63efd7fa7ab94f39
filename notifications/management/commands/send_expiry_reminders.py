"""`manage.py send_expiry_reminders [--dry-run]`: one reminder pass, by hand or from cron."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from notifications.reminders import run_pass


class Command(BaseCommand):
    help = (
        "Send the expiry reminders that are due (one digest mail per recipient) and the "
        "token.expiring/token.expired webhook events. Safe to run again or on several "
        "machines at once: each reminder goes out once. Exit status 0, or 1 if a mail failed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Say what would be sent; send, record and enqueue nothing.",
        )

    def handle(self, *args, dry_run: bool = False, **options) -> None:
        result = run_pass(dry_run=dry_run)
        would = "Would send" if dry_run else "Sent"
        for address, reminders in sorted(result.mails.items()):
            keys = ", ".join(f"{r.token.key} ({r.token.workspace.slug})" for r in reminders)
            self.stdout.write(f"{would} to {address}: {keys}")
        counts = result.counts()
        self.stdout.write(
            f"{'Dry run: ' if dry_run else ''}{counts['reminders']} reminder(s) due, "
            f"{counts['mails']} mail(s), {counts['expired']} newly expired token(s)."
        )
        if result.failed_mails:
            self.stderr.write(f"{result.failed_mails} mail(s) could not be sent (see the log).")
            raise SystemExit(1)
