"""`python manage.py rotate_master_key`: re-wrap every workspace data key under the active key.

The procedure: put a new key FIRST in COFFER_MASTER_KEYS (keep the old ones after it), restart
Coffer, run this command, then remove the old keys it reports as no longer used. Values are not
re-encrypted: only each workspace's data key is unwrapped with its old master key and wrapped
again with the active one, one transaction per workspace. Workspaces already on the active key
are skipped, so an interrupted run is finished by running the command again.

Exit codes: 0 every data key is on the active master key; 1 (CommandError) some could not be
re-wrapped (each error names the workspace and the master key id), the run was interrupted, or
the key ring is unusable.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from accounts.adapters import reseal_two_factor_secrets, two_factor_key_use
from tokens import crypto
from tokens.models import WorkspaceKey

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Re-wrap every workspace's data key under the active (first) master key of "
        "COFFER_MASTER_KEYS, then say which old master keys can be removed."
    )

    def handle(self, *args, **options) -> None:
        try:
            ring = crypto.key_ring()
        except crypto.MasterKeyError as error:
            raise CommandError(str(error)) from None
        pending = list(
            WorkspaceKey.objects.exclude(kek_id=ring.active_id)
            .order_by("workspace_id")
            .values_list("workspace_id", flat=True)
        )
        self.stdout.write(
            f"Active master key: {ring.active_id}. {len(pending)} workspace data key(s) to re-wrap."
        )
        rewrapped, failures = self._rotate(pending)
        self.stdout.write(
            f"Re-wrapped {rewrapped} workspace data key(s) under master key {ring.active_id!r}"
            + (f"; {len(failures)} failed." if failures else ".")
        )
        # People's two-factor secrets are sealed under a master key too (not a data key).
        resealed, two_factor_failures = reseal_two_factor_secrets()
        self.stdout.write(
            f"Re-sealed {resealed} two-factor secret(s) under master key {ring.active_id!r}"
            + (f"; {len(two_factor_failures)} failed." if two_factor_failures else ".")
        )
        for failure in two_factor_failures:
            self.stderr.write(f"  {failure}")
        for failure in failures:
            self.stderr.write(f"  {failure}")
        self._report_master_key_use(ring)
        if failures or two_factor_failures:
            still = [
                *([f"{len(failures)} workspace data key(s)"] if failures else []),
                *(
                    [f"{len(two_factor_failures)} two-factor secret(s)"]
                    if two_factor_failures
                    else []
                ),
            ]
            raise CommandError(
                f"{' and '.join(still)} are still on an old master key. Fix the key ring (each "
                "error names the workspace or user and the master key) and run again."
            )

    def _rotate(self, pending: list[int]) -> tuple[int, list[str]]:
        rewrapped, failures = 0, []
        for done, workspace_id in enumerate(pending, start=1):
            try:
                if WorkspaceKey.rotate(workspace_id) is not None:
                    rewrapped += 1
            except WorkspaceKey.DoesNotExist:
                pass  # the workspace was deleted meanwhile: nothing left to re-wrap
            except crypto.CryptoError as error:
                failures.append(str(error))
            except KeyboardInterrupt:
                self.stderr.write("")
                raise CommandError(
                    f"Interrupted after {rewrapped} re-wrapped data key(s). Each workspace is "
                    "re-wrapped in its own transaction, so nothing is lost: run the command "
                    "again to finish."
                ) from None
            self._progress(done, len(pending))
        return rewrapped, failures

    def _progress(self, done: int, total: int) -> None:
        """A text progress bar on stderr: redrawn in place on a terminal, else every 10%."""
        filled = BAR_WIDTH * done // total
        line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} workspaces"
        if self.stderr.isatty():
            self.stderr.write("\r" + line, ending="\n" if done == total else "")
        elif done == total or (10 * done // total) != (10 * (done - 1) // total):
            self.stderr.write(line)

    def _report_master_key_use(self, ring: crypto.KeyRing) -> None:
        in_use = dict(WorkspaceKey.objects.values_list("kek_id").annotate(n=Count("pk")).order_by())
        two_factor = two_factor_key_use()
        for kek_id in ring.ids[1:]:
            if in_use.get(kek_id) or two_factor.get(kek_id):
                self.stdout.write(
                    f"Master key {kek_id!r} is still used by {in_use.get(kek_id, 0)} "
                    f"workspace(s) and {two_factor.get(kek_id, 0)} two-factor secret(s): keep it."
                )
            else:
                self.stdout.write(
                    f"Master key {kek_id!r} is no longer used: it can be removed from the key "
                    "ring (keep a copy while backups made before this rotation may be restored)."
                )
        for kek_id in sorted(set(in_use) - set(ring.ids)):
            self.stderr.write(
                f"Master key {kek_id!r} is used by {in_use[kek_id]} workspace(s) but is not in "
                "the key ring: add it back (after the active key) and run again."
            )
