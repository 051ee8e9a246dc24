"""File names as text every store accepts, and back exactly (pure).

A Linux file name is bytes. Python hands a name that is not valid UTF-8 to us as ``str``
with lone surrogates (``surrogateescape``: byte 0xff is ``"\\udcff"``), and SQLite, JSON
written as UTF-8 and msgspec cannot store such a string. At every storage boundary a name
goes through :func:`encode` and comes back through :func:`decode`:

- text that is valid UTF-8 is stored as itself (``/srv/bau-cu/Biên bản.docx`` stays
  readable in state.db, the manifest and the audit log);
- any other text is stored as ``b64:`` + the base64 of its bytes (``os.fsencode``). Our
  stored paths are absolute and start with ``/``, so no real path is ever taken for an
  encoded one; text that itself starts with ``b64:`` is encoded too, so the codec is
  reversible for any string, not only paths.

:func:`display` is what a person reads (evidence, reports, the console): the invalid bytes
as ``\\xff``, marked as such. It is for reading only; the stores keep :func:`encode`.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

PREFIX = "b64:"
MARK = " (not UTF-8)"


def plain(text: str) -> bool:
    """Stored as itself: valid UTF-8 and not taken for an encoded name."""
    if text.startswith(PREFIX):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode(text: str) -> str:
    """The form a store accepts: ``text`` itself, or ``b64:`` + base64 of its bytes."""
    if plain(text):
        return text
    return PREFIX + base64.b64encode(_bytes(text)).decode("ascii")


def decode(text: str) -> str:
    """The exact name :func:`encode` was given (text that is not an encoded name: itself)."""
    if not text.startswith(PREFIX):
        return text
    try:
        raw = base64.b64decode(text[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return text
    return os.fsdecode(raw)


def encode_tree(value: Any) -> Any:
    """:func:`encode` on every string (and dict key) of a JSON-like value."""
    if isinstance(value, str):
        return encode(value)
    if isinstance(value, dict):
        return {encode(k) if isinstance(k, str) else k: encode_tree(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_tree(v) for v in value]
    return value


def decode_tree(value: Any) -> Any:
    """The inverse of :func:`encode_tree`."""
    if isinstance(value, str):
        return decode(value)
    if isinstance(value, dict):
        return {decode(k) if isinstance(k, str) else k: decode_tree(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [decode_tree(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """JSON text (non-ASCII kept as it is) that is always valid UTF-8; :func:`loads` reads
    it back exactly. A ``default`` (for other objects) has its result encoded too."""
    import json

    default = kwargs.pop("default", None)
    if default is not None:
        kwargs["default"] = lambda o: encode_tree(default(o))
    return json.dumps(encode_tree(value), ensure_ascii=False, **kwargs)


def loads(text: str | bytes) -> Any:
    import json

    return decode_tree(json.loads(text))


def display(text: str) -> str:
    """For a person: a name that is not UTF-8 with its invalid bytes as ``\\xff`` and
    marked; valid text as it is (a stored ``b64:...`` form: ``display(decode(text))``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _bytes(text).decode("utf-8", "backslashreplace") + MARK
    return text


def display_tree(value: Any) -> Any:
    """:func:`display` on every string (and dict key) of a JSON-like value."""
    if isinstance(value, str):
        return display(value)
    if isinstance(value, dict):
        return {display(k) if isinstance(k, str) else k: display_tree(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [display_tree(v) for v in value]
    return value


def _bytes(text: str) -> bytes:
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:  # a surrogate no file name decodes to (not from the OS)
        return text.encode("utf-8", "surrogatepass")
