"""Turn what a user passes to ``contexts.add`` into documents: text, extra fields, metadata.

Accepted items:

- a string of text (``"Refunds take 5 days."``);
- a dict: ``{"text": ..., "metadata": {...}, "id": ...}`` plus any other fields (``title``,
  ``body``, ``url`` ...), kept on the record so templates such as ``"{title} - {body}"`` work.
  Without ``text``, ``body`` or ``content`` is the text. ``{"path": ...}`` or ``{"url": ...}``
  loads a file or a web page and adds the dict's other fields and metadata;
- a path (``str`` naming an existing file, or ``pathlib.Path``) to a .txt, .md, .html or .pdf;
- an ``http(s)://`` URL, fetched with httpx2 (pass ``http_client=`` to control the client).

Every document gets automatic metadata, as the seed describes for files and URLs:
``source`` (``"inline"``, the absolute path or the URL), ``filename``, ``type`` (``text``,
``markdown``, ``html``, ``pdf``) and ``added_at`` (UTC ISO 8601 string, so it sorts and filters
with ``$gte``). Custom metadata is merged over it. Parsing (HTML, PDF) is pure and takes bytes;
reading files and fetching URLs are the only side effects.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError, InvalidInputError

SUFFIX_TYPES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
                ".html": "html", ".htm": "html", ".pdf": "pdf"}
_CONTENT_TYPES = {"text/html": "html", "application/xhtml+xml": "html", "application/pdf": "pdf",
                  "text/markdown": "markdown", "text/x-markdown": "markdown", "text/plain": "text"}
TEXT_KEYS = ("text", "body", "content")
# Fields of the record that a document's own fields may not overwrite.
RESERVED_FIELDS = ("id", "document_id", "metadata", "chunk", "context")


@dataclass
class Document:
    """A document ready to store: its text, extra fields and metadata."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_documents(items: Iterable[Any], *, metadata: Mapping[str, Any] | None = None,
                   http_client: Any = None, added_at: str | None = None) -> list[Document]:
    """Load every item (see the module docstring). ``metadata`` is added to each document;
    a document's own metadata wins over it."""
    if isinstance(items, (str, bytes, os.PathLike, Mapping)):
        raise InvalidInputError("documents must be a list (wrap a single document in [ ])")
    stamp = added_at or now_iso()
    shared = dict(metadata or {})
    client, owned = http_client, False
    documents = []
    try:
        for i, item in enumerate(items):
            if _needs_http(item) and client is None:
                client, owned = _default_client(), True
            try:
                doc = load_document(item, http_client=client, added_at=stamp)
            except InvalidInputError as exc:
                raise InvalidInputError(f"documents[{i}]: {exc}") from exc
            doc.metadata = {**doc.metadata, **shared, **_custom_metadata(item)}
            documents.append(doc)
    finally:
        if owned:
            client.close()
    return documents


def load_document(item: Any, *, http_client: Any = None, added_at: str | None = None) -> Document:
    """One document from a string, dict, path or URL (custom metadata not yet merged)."""
    stamp = added_at or now_iso()
    if isinstance(item, Mapping):
        return _from_mapping(item, http_client, stamp)
    if isinstance(item, os.PathLike):
        return load_file(item, added_at=stamp)
    if isinstance(item, str):
        if is_url(item):
            return load_url(item, http_client=http_client, added_at=stamp)
        if _looks_like_path(item):
            return load_file(item, added_at=stamp)
        if not item.strip():
            raise InvalidInputError("empty document text")
        return Document(text=item, metadata={"source": "inline", "type": "text", "added_at": stamp})
    raise InvalidInputError(f"a document must be text, a dict, a file path or a URL, not "
                            f"{type(item).__name__}")


def _custom_metadata(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping) and item.get("metadata") is not None:
        return dict(item["metadata"])
    return {}


def _from_mapping(item: Mapping[str, Any], http_client: Any, stamp: str) -> Document:
    meta = item.get("metadata")
    if meta is not None and not isinstance(meta, Mapping):
        raise InvalidInputError(f"metadata must be a dict, not {type(meta).__name__}")
    bad_keys = [k for k in (meta or {}) if not isinstance(k, str)]
    if bad_keys:
        raise InvalidInputError(f"metadata keys must be strings: {bad_keys}")
    doc_id = item.get("id")
    if doc_id is not None and (not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool)
                               or not str(doc_id).strip()):
        raise InvalidInputError(f"a document id must be a non-empty string or an integer, got {doc_id!r}")
    extras = {k: v for k, v in item.items() if k not in ("metadata", "id", "path", "url")}
    for key in extras:
        if not isinstance(key, str) or key in RESERVED_FIELDS:
            raise InvalidInputError(f"document field {key!r} is reserved; put it in metadata")
    if "path" in item:
        doc = load_file(item["path"], added_at=stamp)
    elif "url" in item:
        doc = load_url(item["url"], http_client=http_client, added_at=stamp)
        extras.setdefault("url", item["url"])
    else:
        text_key = next((k for k in TEXT_KEYS if k in item), None)
        if text_key is None:
            raise InvalidInputError(f"a document dict needs 'text' (or 'body', 'content', 'path', "
                                    f"'url'); got keys {sorted(map(str, item))}")
        text = item[text_key]
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"document {text_key!r} must be non-empty text, got {text!r}")
        doc = Document(text=text, metadata={"source": "inline", "type": "text", "added_at": stamp})
        extras.pop("text", None)  # the record's text is the chunk; other text keys stay fields
    doc.fields = {**doc.fields, **extras}
    doc.id = str(doc_id) if doc_id is not None else None
    return doc


# -- files ------------------------------------------------------------------------------------


def is_url(value: str) -> bool:
    return bool(re.match(r"^https?://\S+$", value.strip(), re.IGNORECASE))


def _needs_http(item: Any) -> bool:
    if isinstance(item, str):
        return is_url(item)
    return isinstance(item, Mapping) and "url" in item


def _looks_like_path(value: str) -> bool:
    if "\n" in value or len(value) > 4096:
        return False
    if os.path.isfile(value):
        return True
    return Path(value).suffix.lower() in SUFFIX_TYPES and " " not in value.strip()


def load_file(path: str | os.PathLike, *, added_at: str | None = None) -> Document:
    """A .txt/.md/.html/.pdf file as a document with file metadata."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InvalidInputError(f"no such file: {os.fspath(path)!r}")
    kind = SUFFIX_TYPES.get(p.suffix.lower())
    if kind is None:
        raise InvalidInputError(f"cannot load {p.name!r}: supported file types are "
                                f"{', '.join(sorted(SUFFIX_TYPES))}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {os.fspath(path)!r}: {exc}") from exc
    doc = parse_bytes(data, kind, name=p.name)
    doc.metadata = {"source": str(p.resolve()), "filename": p.name, "type": kind,
                    "added_at": added_at or now_iso(), **doc.metadata}
    return doc


def _default_client():
    import httpx2

    return httpx2.Client(follow_redirects=True, timeout=30.0,
                         headers={"User-Agent": "promptlab-contexts"})


def load_url(url: str, *, http_client: Any = None, added_at: str | None = None) -> Document:
    """Fetch a web page or file with httpx2 and parse it by its content type."""
    import httpx2

    if not isinstance(url, str) or not is_url(url):
        raise InvalidInputError(f"not an http(s) URL: {url!r}")
    client = http_client or _default_client()
    try:
        response = client.get(url)
        response.raise_for_status()
    except httpx2.HTTPStatusError as exc:
        raise InvalidInputError(f"cannot fetch {url}: HTTP {exc.response.status_code}") from exc
    except httpx2.HTTPError as exc:
        raise InvalidInputError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc
    finally:
        if http_client is None:
            client.close()
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    parts = urlsplit(str(response.url))
    filename = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) or parts.hostname or url
    kind = (_CONTENT_TYPES.get(content_type)
            or SUFFIX_TYPES.get(Path(parts.path).suffix.lower())
            or ("html" if content_type.endswith("html") else "text"))
    doc = parse_bytes(response.content, kind, name=url, encoding=response.charset_encoding)
    doc.metadata = {"source": url, "filename": filename, "type": kind,
                    "added_at": added_at or now_iso(), **doc.metadata}
    return doc


# -- parsing (pure) ---------------------------------------------------------------------------


def parse_bytes(data: bytes, kind: str, *, name: str = "document",
                encoding: str | None = None) -> Document:
    """Parse file contents of ``kind`` (text, markdown, html, pdf) into a Document."""
    if kind == "pdf":
        text, title, meta = pdf_to_text(data, name)
    else:
        raw = _decode(data, encoding)
        if kind == "html":
            text, title = html_to_text(raw)
        else:
            text, title = raw, _markdown_title(raw) if kind == "markdown" else None
        meta = {}
    if not text.strip():
        raise InvalidInputError(f"{name!r} contains no text")
    fields = {"title": title} if title else {}
    return Document(text=text, metadata=meta, fields=fields)


def _decode(data: bytes, encoding: str | None) -> str:
    for candidate in (encoding, "utf-8-sig"):
        if candidate:
            try:
                return data.decode(candidate)
            except (UnicodeDecodeError, LookupError):
                continue
    return data.decode("cp1252", errors="replace")


def _markdown_title(text: str) -> str | None:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


_BLOCK_TAGS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr",
               "table", "section", "article", "header", "footer", "blockquote", "pre", "hr",
               "dt", "dd", "title"}
_SKIP_TAGS = ("script", "style", "noscript", "template", "svg", "head")


def html_to_text(html: str) -> tuple[str, str | None]:
    """Visible text of an HTML page (scripts, styles and head dropped) and its <title>.

    Uses BeautifulSoup when installed, else the standard library's parser.
    """
    try:
        from bs4 import BeautifulSoup
    except ImportError:  # pragma: no cover - depends on the environment
        return _html_to_text_stdlib(html)
    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(list(_SKIP_TAGS)):
        tag.decompose()
    # Line breaks around block elements only: inline markup (<b>, <a>) stays in its sentence.
    for tag in soup.find_all(list(_BLOCK_TAGS)):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return _tidy(soup.get_text()), title or None


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip:
            self.parts.append(data)


def _html_to_text_stdlib(html: str) -> tuple[str, str | None]:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    title = " ".join("".join(parser.title_parts).split())
    return _tidy("".join(parser.parts)), title or None


def _tidy(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def pdf_to_text(data: bytes, name: str = "document.pdf") -> tuple[str, str | None, dict[str, Any]]:
    """Text of every page of a PDF (pages separated by blank lines), its title and page count."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:
        raise ConfigError("loading PDF files needs pypdf: pip install pypdf") from exc
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InvalidInputError(f"{name!r} is an encrypted PDF; decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = None
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title)
    except (PdfReadError, ValueError, KeyError) as exc:
        raise InvalidInputError(f"{name!r} is not a readable PDF: {exc}") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    return text, title, {"pages": len(pages)}


__all__ = ["Document", "load_documents", "load_document", "load_file", "load_url", "parse_bytes",
           "html_to_text", "pdf_to_text", "is_url", "SUFFIX_TYPES"]
