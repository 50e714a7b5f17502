"""Output checks for the local backend: local paths here, s3:// URIs through an S3 checker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from urllib.parse import unquote, urlparse

from batchd.backends.base import OutputStore

__all__ = ["LocalOutputStore"]


class LocalOutputStore(OutputStore):
    """Local paths (absolute, or file:// URIs) are checked here; s3:// URIs go to the injected
    S3 checker, or are answered None ("cannot tell") without one. Relative paths and other
    schemes are answered None too: batchd cannot know what they are relative to."""

    def __init__(self, s3: OutputStore | None = None) -> None:
        self.s3 = s3

    async def exists_many(self, uris: list[str],
                          groups: Sequence[Sequence[str]] | None = None
                          ) -> dict[str, bool | None]:
        result: dict[str, bool | None] = {}
        local: dict[str, str] = {}
        s3_uris: list[str] = []
        for uri in uris:
            if uri.startswith("s3://"):
                s3_uris.append(uri)
            elif uri.startswith("file://"):
                parsed = urlparse(uri)
                if parsed.netloc not in ("", "localhost"):
                    result[uri] = None
                else:
                    local[uri] = unquote(parsed.path)
            elif uri.startswith("/"):
                local[uri] = uri
            else:
                result[uri] = None
        if local:
            result.update(await asyncio.to_thread(self._check_paths, local))
        if s3_uris:
            if self.s3 is None:
                result.update({u: None for u in s3_uris})
            else:
                answers = await self.s3.exists_many(s3_uris, groups)
                result.update({u: answers.get(u) for u in s3_uris})
        return {u: result.get(u) for u in uris}

    @staticmethod
    def _check_paths(paths: dict[str, str]) -> dict[str, bool | None]:
        out: dict[str, bool | None] = {}
        for uri, path in paths.items():
            try:
                os.stat(path)
                out[uri] = True
            except (FileNotFoundError, NotADirectoryError):
                out[uri] = False
            except OSError:          # PermissionError, EIO, stale NFS handle, ...
                out[uri] = None
        return out

    async def close(self) -> None:
        if self.s3 is not None:
            await self.s3.close()
