"""The RFC 3161 time-stamping client (adapter): the request, DER over HTTP POST
(``application/timestamp-query``), with a timeout; no third-party HTTP library.

A service that does not answer, or answers with anything but a granted token, is a
``SigningError`` (exit 3): a report the office asked to be timestamped is never quietly
signed without one. ``signing.tsa_timeout_seconds`` bounds the whole exchange, not each
read: a service that sends its answer a byte at a time, each just inside a read's timeout,
would otherwise hold the report for as long as it liked. The exchange runs in a daemon
thread; past the deadline it is abandoned (its socket times out or its server ends it).
"""

from __future__ import annotations

import asyncio
import http.client
import queue
import threading
import urllib.error
import urllib.request
from typing import Any

from pyhanko.sign.timestamps.api import TimeStamper

from secops.errors import SigningError

MAX_RESPONSE = 1 << 20


class HttpTimeStamper(TimeStamper):
    def __init__(self, url: str, timeout: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.url = url
        self.timeout = timeout

    async def async_request_tsa_response(self, req: Any) -> Any:
        from asn1crypto import tsp

        body = await asyncio.to_thread(self._within_deadline, req.dump())
        try:
            resp = tsp.TimeStampResp.load(body)
            _ = resp.native   # parsed now: asn1crypto parses lazily, later errors would escape
            return resp
        except (ValueError, TypeError, KeyError):
            raise SigningError(f"the time-stamping service {self.url} did not answer with an "
                               "RFC 3161 response") from None

    def _within_deadline(self, data: bytes) -> bytes:
        answer: queue.SimpleQueue[tuple[bytes | None, BaseException | None]] = \
            queue.SimpleQueue()

        def exchange() -> None:
            try:
                answer.put((self._post(data), None))
            except BaseException as e:  # handed to the caller as it is
                answer.put((None, e))

        threading.Thread(target=exchange, name="secops-tsa", daemon=True).start()
        try:
            body, error = answer.get(timeout=self.timeout)
        except queue.Empty:
            raise SigningError(f"the time-stamping service {self.url} did not answer within "
                               f"{self.timeout:g} s; the report was not signed",
                               hint="check signing.tsa_url and the network, or raise "
                                    "signing.tsa_timeout_seconds") from None
        if error is not None:
            raise error
        return body or b""

    def _post(self, data: bytes) -> bytes:
        request = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked: http(s)
            self.url, data=data, method="POST",
            headers={"Content-Type": "application/timestamp-query",
                     "Accept": "application/timestamp-reply"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                return bytes(resp.read(MAX_RESPONSE))
        except urllib.error.HTTPError as e:
            raise SigningError(f"the time-stamping service {self.url} refused the request "
                               f"(HTTP {e.code})") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            # the server's own words (a bad status line) may hold control characters
            reason = "".join(c if c.isprintable() else " "
                             for c in str(getattr(e, "reason", e))).strip()[:200]
            raise SigningError(f"the time-stamping service {self.url} cannot be reached "
                               f"({reason}); the report was not signed",
                               hint="check signing.tsa_url and the network, or remove "
                                    "tsa_url to sign without a timestamp (PAdES B-B)") from None
