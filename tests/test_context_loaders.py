"""Loaders (promptlab.contexts.loaders): text, dicts, .txt/.md/.html/.pdf files and URLs
(through httpx2.MockTransport), with automatic and custom metadata."""

from __future__ import annotations

import httpx2
import pytest

from promptlab.contexts.loaders import html_to_text, load_documents, parse_bytes, pdf_to_text
from promptlab.errors import InvalidInputError

STAMP = "2026-01-02T03:04:05+00:00"



def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal valid PDF (Helvetica text, one list of lines per page), written by hand so
    the test needs no PDF-writing library."""
    objects = []
    def add(body):
        objects.append(body)
        return len(objects)
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    pages_id = len(objects) + 1 + 2 * len(pages)  # placeholder computed below
    kids = []
    page_objs = []
    for lines in pages:
        stream = b"BT /F1 12 Tf 72 720 Td 14 TL " + b" ".join(
            b"(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1") + b") '" for line in lines) + b" ET"
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_objs.append(content)
    pages_id = len(objects) + len(pages) + 1
    for content in page_objs:
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                        b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (pages_id, content, font)))
    assert add(b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) +
               b"] /Count %d >>" % len(kids)) == pages_id
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    info = add(b"<< /Title (" + title.encode("latin-1") + b") >>") if title else None
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info:
        trailer += b" /Info %d 0 R" % info
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


HTML = """<!doctype html><html><head><title>Reset your password</title>
<style>body { color: red }</style><script>var secret = "not text";</script></head>
<body><nav>Home</nav><h1>Password reset</h1><p>Open <b>Settings</b> &amp; choose Security.</p>
<ul><li>Step one</li><li>Step two</li></ul></body></html>"""


def test_plain_strings_and_dicts(tmp_path):
    docs = load_documents(["Refunds take five days.",
                           {"text": "Invoices are monthly.", "id": 7, "title": "Billing",
                            "metadata": {"tenant-id": "aa882"}},
                           {"title": "SSO", "body": "Use SAML 2.0 with Okta."}],
                          metadata={"product": "help"}, added_at=STAMP)
    assert docs[0].text == "Refunds take five days."
    assert docs[0].metadata == {"source": "inline", "type": "text", "added_at": STAMP,
                                "product": "help"}
    assert docs[1].id == "7" and docs[1].fields == {"title": "Billing"}
    assert docs[1].metadata["tenant-id"] == "aa882" and docs[1].metadata["product"] == "help"
    # without "text", "body" is the text and stays a field (for "{title} - {body}")
    assert docs[2].text == "Use SAML 2.0 with Okta."
    assert docs[2].fields == {"title": "SSO", "body": "Use SAML 2.0 with Okta."}


def test_custom_metadata_wins_over_shared_and_automatic():
    [doc] = load_documents([{"text": "x y", "metadata": {"type": "faq", "product": "sso"}}],
                           metadata={"product": "billing"}, added_at=STAMP)
    assert doc.metadata["type"] == "faq" and doc.metadata["product"] == "sso"


def test_text_and_markdown_files(tmp_path):
    (tmp_path / "notes.txt").write_text("Plain notes about refunds.", encoding="utf-8")
    (tmp_path / "guide.md").write_text("# Getting started\n\nInstall the app.\n", encoding="utf-8")
    txt, md = load_documents([tmp_path / "notes.txt", str(tmp_path / "guide.md")], added_at=STAMP)
    assert txt.text == "Plain notes about refunds."
    assert txt.metadata == {"source": str((tmp_path / "notes.txt").resolve()),
                            "filename": "notes.txt", "type": "text", "added_at": STAMP}
    assert md.metadata["type"] == "markdown" and md.metadata["filename"] == "guide.md"
    assert md.fields == {"title": "Getting started"}


def test_html_file_drops_scripts_styles_and_head(tmp_path):
    (tmp_path / "reset.html").write_text(HTML, encoding="utf-8")
    [doc] = load_documents([{"path": tmp_path / "reset.html", "metadata": {"tenant-id": "t1"}}])
    assert doc.metadata["type"] == "html" and doc.metadata["tenant-id"] == "t1"
    assert doc.fields["title"] == "Reset your password"
    assert "Open Settings & choose Security." in doc.text
    assert {"Password reset", "Step one", "Step two"} <= set(doc.text.splitlines())
    assert "secret" not in doc.text and "color" not in doc.text


def test_html_stdlib_fallback_matches_beautifulsoup():
    from promptlab.contexts import loaders

    soup_text, soup_title = html_to_text(HTML)
    std_text, std_title = loaders._html_to_text_stdlib(HTML)
    assert std_title == soup_title == "Reset your password"
    assert std_text.split() == soup_text.split()


def test_pdf_file(tmp_path):
    path = tmp_path / "policy.pdf"
    path.write_bytes(make_pdf([["Refund policy (2024)", "Refunds take five days."],
                               ["Chargebacks are handled by support."]], title="Policies"))
    [doc] = load_documents([path], added_at=STAMP)
    assert doc.text == ("Refund policy (2024)\nRefunds take five days.\n\n"
                        "Chargebacks are handled by support.")
    assert doc.fields == {"title": "Policies"}
    assert doc.metadata == {"source": str(path.resolve()), "filename": "policy.pdf",
                            "type": "pdf", "added_at": STAMP, "pages": 2}


def test_broken_pdf_is_invalid_input():
    with pytest.raises(InvalidInputError, match="not a readable PDF"):
        pdf_to_text(b"%PDF-1.4 this is not a pdf", "bad.pdf")


def test_empty_file_is_invalid(tmp_path):
    (tmp_path / "empty.md").write_text("   \n")
    with pytest.raises(InvalidInputError, match="documents\\[0\\].*contains no text"):
        load_documents([tmp_path / "empty.md"])


class Site:
    """A web site in a function: pages by URL, and a count of requests."""

    def __init__(self, pages: dict[str, tuple[int, str, bytes]]):
        self.pages = pages
        self.requests: list[str] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(str(request.url))
        status, content_type, body = self.pages.get(str(request.url), (404, "text/plain", b"nope"))
        return httpx2.Response(status, content=body, headers={"content-type": content_type})

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handler))


def test_urls_by_content_type():
    site = Site({
        "https://help.example.com/reset": (200, "text/html; charset=utf-8", HTML.encode()),
        "https://help.example.com/files/policy": (200, "application/pdf",
                                                  make_pdf([["Refunds take five days."]])),
        "https://help.example.com/notes.md": (200, "application/octet-stream", b"# Notes\n\nHi there."),
        "https://help.example.com/latin": (200, "text/plain; charset=latin-1", "Café".encode("latin-1")),
    })
    docs = load_documents(["https://help.example.com/reset",
                           {"url": "https://help.example.com/files/policy", "metadata": {"v": 2}},
                           "https://help.example.com/notes.md", "https://help.example.com/latin"],
                          http_client=site.client(), added_at=STAMP)
    html, pdf, md, latin = docs
    assert html.metadata == {"source": "https://help.example.com/reset", "filename": "reset",
                             "type": "html", "added_at": STAMP}
    assert html.fields["title"] == "Reset your password"
    assert pdf.metadata["type"] == "pdf" and pdf.metadata["v"] == 2 and pdf.metadata["pages"] == 1
    assert pdf.fields["url"] == "https://help.example.com/files/policy"
    assert pdf.text == "Refunds take five days."
    assert md.metadata["type"] == "markdown" and md.fields == {"title": "Notes"}
    assert latin.text == "Café"
    assert len(site.requests) == 4


def test_url_errors_name_the_url():
    site = Site({})
    with pytest.raises(InvalidInputError, match=r"documents\[0\]: cannot fetch https://x.test/gone: HTTP 404"):
        load_documents(["https://x.test/gone"], http_client=site.client())

    def refuse(request):
        raise httpx2.ConnectError("connection refused", request=request)

    client = httpx2.Client(transport=httpx2.MockTransport(refuse))
    with pytest.raises(InvalidInputError, match="cannot fetch https://x.test/a: ConnectError"):
        load_documents(["https://x.test/a"], http_client=client)


@pytest.mark.parametrize("items, fragment", [
    ("just a string", "must be a list"),
    ({"text": "a dict"}, "must be a list"),
    ([""], "empty document text"),
    ([{"metadata": {}}], "needs 'text'"),
    ([{"text": "  "}], "must be non-empty text"),
    ([{"text": "x", "metadata": "tenant"}], "metadata must be a dict"),
    ([{"text": "x", "metadata": {1: "a"}}], "metadata keys must be strings"),
    ([{"text": "x", "id": ""}], "document id"),
    ([{"text": "x", "document_id": "a"}], "'document_id' is reserved"),
    ([42], "not int"),
    (["missing-file.pdf"], "no such file"),
    (["/tmp/whatever.docx"], None),  # not a known suffix: it is text
])
def test_invalid_items(items, fragment):
    if fragment is None:
        assert load_documents(items)[0].text == "/tmp/whatever.docx"
        return
    with pytest.raises(InvalidInputError, match=fragment):
        load_documents(items)


def test_unsupported_file_type(tmp_path):
    (tmp_path / "a.docx").write_bytes(b"PK")
    with pytest.raises(InvalidInputError, match="supported file types"):
        load_documents([tmp_path / "a.docx"])


def test_parse_bytes_decodes_utf8_with_bom():
    assert parse_bytes("\ufeffHéllo".encode("utf-8"), "text").text == "Héllo"
