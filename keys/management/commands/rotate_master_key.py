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
from django.db import DEFAULT_DB_ALIAS

from keys import crypto
from keys.models import WorkspaceKey
from keys.sealed import inventory, master_key_sources

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
        for failure in failures:
            self.stderr.write(f"  {failure}")
        still = [f"{len(failures)} workspace data key(s)"] if failures else []
        # What is sealed straight under a master key (people's two-factor secrets), not under
        # a data key, is sealed again (keys/sealed.py lists it).
        for source in master_key_sources():
            assert source.reseal is not None
            resealed, source_failures = source.reseal()
            self.stdout.write(
                f"Re-sealed {resealed} {source.name} under master key {ring.active_id!r}"
                + (f"; {len(source_failures)} failed." if source_failures else ".")
            )
            for failure in source_failures:
                self.stderr.write(f"  {failure}")
            if source_failures:
                still.append(f"{len(source_failures)} {source.name}")
        self._report_master_key_use(ring)
        if still:
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
        in_use = inventory(DEFAULT_DB_ALIAS).master_keys
        kinds = ["data keys", *(source.name for source in master_key_sources())]

        def uses(kek_id: str) -> str:
            words = {"data keys": "workspace data key(s)"}
            return " and ".join(f"{in_use[kek_id][k]} {words.get(k, k)}" for k in kinds)

        for kek_id in ring.ids[1:]:
            if kek_id in in_use:
                self.stdout.write(
                    f"Master key {kek_id!r} is still used by {uses(kek_id)}: keep it."
                )
            else:
                self.stdout.write(
                    f"Master key {kek_id!r} is no longer used: it can be removed from the key "
                    "ring (keep a copy while backups made before this rotation may be restored)."
                )
        for kek_id in sorted(set(in_use) - set(ring.ids)):
            self.stderr.write(
                f"Master key {kek_id!r} is used by {uses(kek_id)} but is not in the key ring: "
                "add it back (after the active key) and run again."
            )
