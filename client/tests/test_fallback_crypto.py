"""The fallback file: encrypted under the access key, readable with it alone."""

from __future__ import annotations

import os
import stat

import pytest

from coffer_cli.fallback import Fallback

URL = "https://coffer.example.com"
KEY = "cfr_" + "A" * 49
OTHER = "cfr_" + "B" * 49
VALUES = {"DB_URL": "postgres://u:hunter2-secret@db/app", "API": "tok-0123456789"}


def test_it_round_trips_and_keeps_the_time(cache, monkeypatch):
    monkeypatch.setenv("COFFER_CACHE_DIR", str(cache))
    Fallback(URL, KEY, None).save(VALUES, now=1_700_000_000.0)
    assert Fallback(URL, KEY, None).load() == (1_700_000_000.0, VALUES)


def test_the_file_holds_no_value_or_key_in_clear_and_is_private(cache, monkeypatch):
    monkeypatch.setenv("COFFER_CACHE_DIR", str(cache))
    fallback = Fallback(URL, KEY, None)
    fallback.save(VALUES)
    data = fallback.path.read_bytes()
    for secret in [*VALUES.values(), KEY, "hunter2"]:
        assert secret.encode() not in data
    assert stat.S_IMODE(os.stat(fallback.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(fallback.folder).st_mode) == 0o700


def test_another_key_or_url_neither_finds_nor_reads_it(cache, monkeypatch):
    monkeypatch.setenv("COFFER_CACHE_DIR", str(cache))
    mine = Fallback(URL, KEY, None)
    mine.save(VALUES)
    assert Fallback(URL, OTHER, None).load() is None
    assert Fallback(URL + ":8443", KEY, None).load() is None
    # Even copied over another key's file, it does not decrypt.
    theirs = Fallback(URL, OTHER, None)
    theirs.folder.mkdir(parents=True)
    theirs.path.write_bytes(mine.path.read_bytes())
    assert theirs.load() is None


def test_a_tampered_file_is_no_fallback(cache, monkeypatch):
    monkeypatch.setenv("COFFER_CACHE_DIR", str(cache))
    fallback = Fallback(URL, KEY, None)
    fallback.save(VALUES)
    data = bytearray(fallback.path.read_bytes())
    data[-1] ^= 1
    fallback.path.write_bytes(bytes(data))
    assert fallback.load() is None


def test_only_selections_are_kept_apart_and_forget_removes_all(cache, monkeypatch):
    monkeypatch.setenv("COFFER_CACHE_DIR", str(cache))
    Fallback(URL, KEY, None).save(VALUES)
    Fallback(URL, KEY, ["API"]).save({"API": VALUES["API"]})
    assert Fallback(URL, KEY, ["API"]).load()[1] == {"API": VALUES["API"]}
    assert Fallback(URL, KEY, ["DB_URL"]).load() is None
    assert Fallback(URL, KEY, None).forget() is True
    assert Fallback(URL, KEY, ["API"]).load() is None


def test_without_a_home_folder_nothing_is_written_in_the_current_one(tmp_path, monkeypatch):
    """A container user with no home: `~` stays `~`; the fallback is skipped, not written to a
    `~/.cache` under the working directory."""
    monkeypatch.chdir(tmp_path)
    for name in ("COFFER_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os.path, "expanduser", lambda path: path)
    fallback = Fallback(URL, KEY, None)
    with pytest.raises(OSError, match="set COFFER_CACHE_DIR"):
        fallback.save(VALUES)
    assert list(tmp_path.iterdir()) == []
    assert fallback.load() is None
