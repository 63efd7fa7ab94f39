"""Uploaded files are held in memory, at most 64 KiB each, and never written to disk.

Coffer's uploads are a token value from a file, at most 64 KiB (`VALUE_MAX_BYTES`), and a .env
file to import, for which imports/views.py raises the handler's `limit` to 1 MiB on that view
alone. Django caps
ordinary form data (`DATA_UPLOAD_MAX_MEMORY_SIZE`) but not files: its default handlers keep a file
of any size, past 2.5 MB in a temporary file, so a 1 GB upload would fill the disk before the form
refused it, and a secret would sit on disk in plaintext.

`CappedUploadHandler` takes every file instead. It keeps a file's bytes in memory while they fit
the limit; past it, it drops what it kept and only counts the rest, so the file arrives with its
real size and no contents, marked `oversized`: the form then says how large it really was. A
request holds at most `DATA_UPLOAD_MAX_NUMBER_FILES` files (100), so at most 100 x 64 KiB.
"""

from __future__ import annotations

import io
from typing import Any

from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from tokens.models import VALUE_MAX_BYTES


class CappedUpload(InMemoryUploadedFile):
    """A file as CappedUploadHandler hands it over: `oversized` past the limit (no contents)."""

    oversized: bool = False


class CappedUploadHandler(FileUploadHandler):
    """Keeps at most `limit` bytes of each uploaded file, in memory; counts the rest."""

    limit = VALUE_MAX_BYTES

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.buffer = io.BytesIO()
        self.received = 0
        self.oversized = False

    @property
    def kept(self) -> int:
        """How many bytes of the current file are held in memory."""
        if self.buffer.closed:
            return 0
        with self.buffer.getbuffer() as view:
            return view.nbytes

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.oversized:
            return None
        if self.received > self.limit:
            self.oversized = True
            self.buffer = io.BytesIO()  # nothing of an oversized file is kept
        else:
            self.buffer.write(raw_data)
        return None  # no other handler sees the data

    def file_complete(self, file_size: int) -> CappedUpload:
        self.buffer.seek(0)
        upload = CappedUpload(
            file=self.buffer,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=self.received,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
        upload.oversized = self.oversized
        if self.oversized:
            self.buffer.close()  # reading an oversized file raises rather than returning b""
        return upload
