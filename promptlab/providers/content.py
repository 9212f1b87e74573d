"""Multi-modal message content: images as OpenAI ``image_url`` content parts.

Pure functions, except that a local file path is read.

>>> user_message("What is in this picture?", ["https://example.com/cat.png"])["content"][1]
{'type': 'image_url', 'image_url': {'url': 'https://example.com/cat.png'}}
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import os
import re
from typing import Any, Sequence, Union

from promptlab.errors import ConfigError, InvalidInputError

__all__ = ["image_part", "user_message", "sniff_image_mime", "decode_base64_image", "data_url"]

ImageSource = Union[str, bytes, bytearray, memoryview, "os.PathLike[str]"]

_BASE64 = re.compile(r"[A-Za-z0-9+/_\-\s]+={0,2}\s*")


def sniff_image_mime(data: bytes) -> str | None:
    """The image mime type from magic bytes (png, jpeg, gif, webp), or ``None``.

    >>> sniff_image_mime(b"\\x89PNG\\r\\n\\x1a\\n...")
    'image/png'
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_part(source: ImageSource, detail: str | None = None) -> dict[str, Any]:
    """An ``image_url`` content part from a URL, data URL, raw bytes, base64 text or a local file.

    http(s) and ``data:`` URLs pass through unchanged; everything else becomes a base64 data URL
    whose mime type is sniffed from the bytes (png/jpeg/gif/webp), or for files guessed from the
    extension. ``detail`` (``"low"``, ``"high"``, ``"auto"``) is passed to the model as is.

    >>> image_part("https://example.com/a.png", detail="low")
    {'type': 'image_url', 'image_url': {'url': 'https://example.com/a.png', 'detail': 'low'}}
    """
    if detail is not None and (not isinstance(detail, str) or not detail):
        raise ConfigError(f"image detail must be a non-empty string such as 'low' or 'high', got {detail!r}")
    url = _image_url(source)
    image_url: dict[str, Any] = {"url": url}
    if detail is not None:
        image_url["detail"] = detail
    return {"type": "image_url", "image_url": image_url}


def user_message(text: str, files: Sequence[ImageSource | dict[str, Any]] | None = None) -> dict[str, Any]:
    """A user chat message: plain ``content`` without files, else a text part then one part per file.

    Items of ``files`` that are already content-part dicts are kept as they are.

    >>> user_message("hi")
    {'role': 'user', 'content': 'hi'}
    """
    if not files:
        return {"role": "user", "content": text}
    if isinstance(files, (str, bytes, bytearray, os.PathLike)):
        # A lone source is a common slip for [source]; a str would otherwise iterate by character.
        files = [files]
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for item in files:
        parts.append(dict(item) if isinstance(item, dict) else image_part(item))
    return {"role": "user", "content": parts}


def _image_url(source: ImageSource) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        mime = sniff_image_mime(data)
        if mime is None:
            raise InvalidInputError(
                f"image bytes ({len(data)} bytes starting {data[:8]!r}) are not a PNG, JPEG, GIF or WebP image"
            )
        return data_url(mime, data)
    if isinstance(source, os.PathLike):
        return _file_url(os.fspath(source))
    if not isinstance(source, str):
        raise InvalidInputError(
            f"an image must be a URL, data URL, bytes, base64 string or file path, got {type(source).__name__}"
        )
    stripped = source.strip()
    if not stripped:
        raise InvalidInputError("an image source is an empty string")
    lowered = stripped[:8].lower()
    if lowered.startswith(("http://", "https://", "data:")):
        return stripped
    path = os.path.expanduser(stripped)
    if os.path.isfile(path):
        return _file_url(path)
    decoded = decode_base64_image(stripped)
    if decoded is not None:
        return data_url(*decoded)
    raise InvalidInputError(f"image file not found: {source!r} (and it is not a URL or base64 image data)")


def decode_base64_image(text: str) -> tuple[str, bytes] | None:
    """(mime, bytes) of base64 (standard or url-safe) text if it decodes to a recognisable image."""
    if len(text) < 16 or not _BASE64.fullmatch(text):
        return None
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    decoder = base64.urlsafe_b64decode if ("-" in compact or "_" in compact) else base64.b64decode
    try:
        data = decoder(compact)
    except (binascii.Error, ValueError):
        return None
    # Only image magic makes it base64: "/9j/abc" could otherwise be a path that does not exist.
    mime = sniff_image_mime(data)
    return (mime, data) if mime else None


def _file_url(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise InvalidInputError(f"image file not found: {path!r}") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read image file {path!r}: {exc.strerror or exc}") from None
    mime = sniff_image_mime(data) or mimetypes.guess_type(path)[0]
    if mime is None or not mime.startswith("image/"):
        raise InvalidInputError(f"file {path!r} is not a recognised image (type {mime or 'unknown'})")
    return data_url(mime, data)


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
