"""Gateway request models: plain-JSON checks, file references, field rules (pure, no I/O)."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from promptlab.gateway.models import (
    FeedbackRequest,
    RunActionRequest,
    SessionRequest,
    check_plain_json,
    file_part,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24


@pytest.mark.parametrize("value, message", [
    ({"a": ["ok", "b\udc00"]}, "body.a[1]: contains a lone surrogate"),
    ({"k\ud800": 1}, "contains a lone surrogate"),
    ({"a": "\ud800"}, "body.a: contains a lone surrogate"),
    ({"a": float("nan")}, "body.a: nan is not a finite number"),
    ({"a": [float("inf")]}, "not a finite number"),
])
def test_check_plain_json_names_the_place(value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_plain_json(value)


def test_check_plain_json_limits_depth_without_recursing():
    deep: list = []
    node = deep
    for _ in range(10_000):  # far deeper than Python's recursion limit
        node.append([])
        node = node[0]
    with pytest.raises(ValueError, match="nested more than 32 levels"):
        check_plain_json(deep)
    check_plain_json({"a": [[[1.5, "text", None, True]]]})


def test_file_part_accepts_urls_data_urls_and_base64_images():
    assert file_part(" https://x.test/a.jpg ") == {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}
    assert file_part("data:image/png;base64,AAAA")["image_url"]["url"] == "data:image/png;base64,AAAA"
    encoded = base64.b64encode(PNG).decode()
    assert file_part(encoded)["image_url"]["url"] == f"data:image/png;base64,{encoded}"
    url_safe = base64.urlsafe_b64encode(PNG).decode()
    assert file_part(url_safe)["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize("source", ["/etc/passwd", "~/photo.png", "file:///etc/hosts", "photo.png",
                                    "data:text/html,<b>x</b>", base64.b64encode(b"not an image at all").decode(),
                                    "ftp://x.test/a.png"])
def test_file_part_refuses_paths_and_non_images(source):
    with pytest.raises(ValueError, match="is not an http\\(s\\) URL"):
        file_part(source)


def test_run_request_merges_user_ids_and_drops_the_empty_input_of_the_multimodal_example():
    body = RunActionRequest(action="a", input="", extUserId="u",
                            messages=[{"role": "user", "content": "hi", "files": ["https://x.test/i.png"]}])
    assert body.user == "u" and body.lab_input() is None
    assert body.lab_messages() == [{"role": "user", "content": "hi",
                                    "files": [{"type": "image_url", "image_url": {"url": "https://x.test/i.png"}}]}]
    assert RunActionRequest(action="a", input="").lab_input() == ""
    assert RunActionRequest(experiment="e").action is None


@pytest.mark.parametrize("fields, message", [
    ({}, "'action' is required"),
    ({"action": "a", "experiment": "e", "environment": "Preview"}, "cannot be combined with experiment"),
    ({"action": "a", "input": ["x"]}, "must be a string or an object of variables, not list"),
    ({"action": "a", "messages": [{"role": "user", "content": [1]}]}, "content.list"),
    ({"action": "a", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/etc/x.png"}}]}]},
     "not an http"),
    ({"action": "a", "messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]}, "does not match any of the expected tags"),
    ({"action": "a", "messages": [{"role": "user", "content": "x", "files": ["/etc/passwd"]}]}, "not an http"),
    ({"action": "a", "version": 0}, "greater than or equal to 1"),
    ({"action": "a", "cache": "maybe"}, "valid boolean"),
])
def test_run_request_rules(fields, message):
    with pytest.raises(ValidationError, match=message):
        RunActionRequest(**fields)


def test_feedback_request_forms():
    assert FeedbackRequest(guid="g", rating=2).fields()["rating"] == 2
    typed = FeedbackRequest(data_guid="g", type="issue", value="Vague", extUserId="u")
    assert typed.target == "g" and typed.fields()["issue"] == "Vague" and typed.fields()["ext_user_id"] == "u"
    with pytest.raises(ValidationError, match="disagree"):
        FeedbackRequest(guid="a", data_guid="b", rating=1)
    with pytest.raises(ValidationError, match="non-empty string"):
        FeedbackRequest(guid="g", type="correction", value=2)
    with pytest.raises(ValidationError):
        FeedbackRequest(guid="g", rating=True)  # true == 1 == Negative would be a trap
    with pytest.raises(ValidationError, match="not a boolean"):
        FeedbackRequest(guid="g", type="rating", value=False)


def test_session_request_bounds():
    assert SessionRequest(extUserId="u", memory_window=0).user == "u"
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        SessionRequest(memory_window=-1)
    with pytest.raises(ValidationError, match="at most 300 characters"):
        SessionRequest(ext_user_id="x" * 301)


def test_content_parts_pass_through_as_openai_parts():
    body = RunActionRequest(action="a", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.test/i.png", "detail": "low"}}]}])
    assert body.lab_messages()[0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.test/i.png", "detail": "low"}}]
