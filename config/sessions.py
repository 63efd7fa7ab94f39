"""Session store: Django's database sessions, with only a hash of each session key stored.

The cookie carries the real key; the django_session table holds SHA-256 of it (the first 240
bits, base64url: 40 characters, the width of Django's own session_key column). A session key
read out of a stolen database file or backup therefore signs nobody in.

Lifetimes: a session ends after SESSION_COOKIE_AGE without a request (COFFER_SESSION_IDLE_MINUTES;
each request slides the expiry forward, written at most once a minute) and, whatever its activity,
COFFER_SESSION_MAX_SECONDS after sign-in (COFFER_SESSION_MAX_DAYS; the start is kept in the
session and reset when sign-in rotates the key).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import overload

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends import db
from django.utils import timezone

STARTED_KEY = "_coffer_session_started"
REFRESH_AFTER_SECONDS = 60


@overload
def stored_key(session_key: str) -> str: ...
@overload
def stored_key(session_key: None) -> None: ...
def stored_key(session_key: str | None) -> str | None:
    """What the table holds for a session key: never the key itself."""
    if session_key is None:
        return None
    digest = hashlib.sha256(session_key.encode()).digest()[:30]
    return base64.urlsafe_b64encode(digest).decode("ascii")


class SessionStore(db.SessionStore):
    """Django's db.SessionStore, with every table access going through stored_key()."""

    def _get_session_from_db(self):
        try:
            return self.model.objects.get(
                session_key=stored_key(self.session_key), expire_date__gt=timezone.now()
            )
        except self.model.DoesNotExist:
            self._session_key = None
            return None

    async def _aget_session_from_db(self):
        try:
            return await self.model.objects.aget(
                session_key=stored_key(self.session_key), expire_date__gt=timezone.now()
            )
        except self.model.DoesNotExist:
            self._session_key = None
            return None

    def _data_of(self, record) -> dict:
        if record is None:
            return {}
        data = self.decode(record.session_data)
        now = timezone.now()
        started = data.get(STARTED_KEY)
        if started is not None and now.timestamp() - started > settings.COFFER_SESSION_MAX_SECONDS:
            record.delete()
            self._session_key = None
            return {}
        # Sliding idle expiry: save again (moving expire_date forward) once a minute at most.
        if record.expire_date - now < timedelta(
            seconds=self.get_session_cookie_age() - REFRESH_AFTER_SECONDS
        ):
            self.modified = True
        return data

    def load(self) -> dict:
        return self._data_of(self._get_session_from_db())

    async def aload(self) -> dict:
        record = await self._aget_session_from_db()
        if record is None:
            return {}
        return await sync_to_async(self._data_of)(record)

    def exists(self, session_key: str) -> bool:
        return self.model.objects.filter(session_key=stored_key(session_key)).exists()

    async def aexists(self, session_key: str) -> bool:
        return await self.model.objects.filter(session_key=stored_key(session_key)).aexists()

    def _stamp(self, data: dict) -> None:
        data.setdefault(STARTED_KEY, int(timezone.now().timestamp()))

    def create_model_instance(self, data: dict):
        self._stamp(data)
        record = super().create_model_instance(data)
        record.session_key = stored_key(record.session_key)
        return record

    async def acreate_model_instance(self, data: dict):
        self._stamp(data)
        record = await super().acreate_model_instance(data)
        record.session_key = stored_key(record.session_key)
        return record

    def delete(self, session_key: str | None = None) -> None:
        session_key = self.session_key if session_key is None else session_key
        if session_key is not None:
            self.model.objects.filter(session_key=stored_key(session_key)).delete()

    async def adelete(self, session_key: str | None = None) -> None:
        session_key = self.session_key if session_key is None else session_key
        if session_key is not None:
            await self.model.objects.filter(session_key=stored_key(session_key)).adelete()

    def cycle_key(self) -> None:
        """Sign-in rotates the key: the absolute lifetime counts from here."""
        super().cycle_key()
        self[STARTED_KEY] = int(timezone.now().timestamp())

    async def acycle_key(self) -> None:
        await super().acycle_key()
        await self.aset(STARTED_KEY, int(timezone.now().timestamp()))
