"""Issue #11, section 3: long-document Q&A, the document processed once."""
from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import kimistack
import pytest

from conftest import http, make_stack

ALICE = "alice-" + uuid.uuid4().hex
BOB = "bob-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def docs():
    cfg = {"auth": {"required": True, "keys": [{"name": "alice", "key": ALICE}, {"name": "bob", "key": BOB}]},
           "rateLimit": {"enabled": False}}
    with make_stack("documents", workers=2, config=cfg, lighttpd=True) as s:
        yield s


def base_of(stack, web: str) -> str:
    return stack.base if web == "nginx" else stack.lighttpd_base


def ask(stack, key, document: bytes | None, message: str, filename="doc.txt", base=None, **fields):
    boundary = "doc" + uuid.uuid4().hex
    parts = []
    for name, value in {"message": message, **fields}.items():
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())
    if document is not None:
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
                     "Content-Type: text/plain\r\n\r\n".encode() + document + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return http("POST", (base or stack.base) + "/api/chat/document", body=body, timeout=60,
                headers={"x-api-key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"})


def test_the_same_document_asked_twice_is_uploaded_and_extracted_once(docs):
    document = ("Chapter 1. " + uuid.uuid4().hex + " The ship sailed at dawn. " * 50).encode()
    before = docs.sim_stats()
    first = ask(docs, ALICE, document, "When did the ship sail? [sim:tokens=6]")
    assert first.status == 200, first.text
    d1 = first.json()["data"]
    # The extraction's upload is deleted upstream once its text is cached: no file id to show.
    assert d1["document"]["cached"] is False and d1["document"]["fileId"] is None and d1["document"]["filename"] == "doc.txt"
    assert d1["message"] == docs.sim_answer("When did the ship sail? [sim:tokens=6]")
    second = ask(docs, ALICE, document, "And who was aboard? [sim:tokens=4]")
    d2 = second.json()["data"]
    assert d2["document"]["cached"] is True and d2["document"]["fileId"] is None
    after = docs.sim_stats()
    assert after["uploads"] - before["uploads"] == 1 and after["contentReads"] - before["contentReads"] == 1
    # Another key asking about the same bytes: answered from the cache, but not told
    # that someone asked before (`cached` speaks of its own questions only).
    third = ask(docs, BOB, document, "Summarise. [sim:tokens=3]").json()["data"]
    assert third["document"]["cached"] is False and third["document"]["fileId"] is None
    assert docs.sim_stats()["uploads"] == after["uploads"]
    assert ask(docs, BOB, document, "Again. [sim:tokens=3]").json()["data"]["document"]["cached"] is True
    # The same bytes declared as another type are another extraction, not the .txt one.
    fourth = ask(docs, BOB, document, "Summarise. [sim:tokens=3]", filename="report.pdf").json()["data"]
    assert fourth["document"]["cached"] is False
    assert docs.sim_stats()["uploads"] == after["uploads"] + 1


@pytest.mark.parametrize("web", ["nginx", "lighttpd"])
def test_an_extraction_upload_is_deleted_upstream_once_its_text_is_cached(docs, web):
    before = docs.sim_stats()
    r = ask(docs, ALICE, f"Minutes {uuid.uuid4().hex} of the {web} meeting.".encode(), "Who spoke? [sim:tokens=3]", base=base_of(docs, web))
    assert r.status == 200, r.text
    after = docs.sim_stats()
    assert after["uploads"] - before["uploads"] == 1 and after["deletes"] - before["deletes"] == 1
    assert after["filesKept"] == before["filesKept"]  # the account holds nothing more
    # Nor does the key: its file list is as before.
    listed = http("GET", base_of(docs, web) + "/v1/files", headers={"x-api-key": ALICE}).json()["data"]
    assert all(f["purpose"] != "file-extract" or f["filename"] != "doc.txt" for f in listed)


@pytest.mark.parametrize("web", ["nginx", "lighttpd"])
def test_six_concurrent_questions_about_a_new_document_make_one_upload(docs, web):
    # A slow extraction (the simulator answers the upload after 1.5 s), so all six arrive meanwhile,
    # on both worker processes.
    document = f"Report {uuid.uuid4().hex} [sim:first=1500] on the harvest.".encode()
    before = docs.sim_stats()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: ask(docs, ALICE if i % 2 else BOB, document, f"Question {i} [sim:tokens=2]",
                                              base=base_of(docs, web)), range(6)))
    assert [a.status for a in answers] == [200] * 6, [a.text[:200] for a in answers]
    after = docs.sim_stats()
    assert after["uploads"] - before["uploads"] == 1 and after["contentReads"] - before["contentReads"] == 1


@pytest.mark.parametrize("chars, model", [(10_000, "moonshot-v1-8k"), (80_000, "moonshot-v1-32k"), (400_000, "moonshot-v1-128k")])
def test_auto_picks_the_smallest_model_whose_context_holds_the_document(docs, chars, model):
    document = (uuid.uuid4().hex + " " + "a" * chars).encode()[:chars]
    r = ask(docs, ALICE, document, "What is it about? [sim:tokens=3]")
    assert r.status == 200, r.text
    data = r.json()["data"]
    assert data["model"] == model
    assert data["estimate"] == data["document"]["tokens"] > chars // 4 - 10


def test_a_document_too_long_for_every_model_is_400_naming_the_estimate(docs):
    # kimi-k3's 1,048,576 tokens are the largest context: 4.4 M characters are ~1.1 M tokens.
    r = ask(docs, ALICE, (uuid.uuid4().hex + "b" * 4_400_000).encode(), "Too much?")
    assert r.status == 400
    error = r.json()["error"]
    assert "need about 1100" in error and "largest allowed context is 1048576" in error


def test_a_file_uploaded_earlier_is_asked_about_by_id_and_only_by_its_owner(docs):
    boundary = "f" + uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfile-extract\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n\r\n"
            f"Notes {uuid.uuid4().hex}\r\n--{boundary}--\r\n").encode()
    f = http("POST", docs.base + "/v1/files", body=body,
             headers={"x-api-key": ALICE, "Content-Type": f"multipart/form-data; boundary={boundary}"}).json()
    r = http("POST", docs.base + "/api/chat/document", headers={"x-api-key": ALICE},
             body={"fileId": f["id"], "message": "What do the notes say? [sim:tokens=5]", "model": "moonshot-v1-32k"})
    assert r.status == 200, r.text
    data = r.json()["data"]
    assert data["model"] == "moonshot-v1-32k" and data["document"] == {"fileId": f["id"], "filename": "notes.txt",
                                                                         "tokens": data["estimate"], "cached": False}
    other = http("POST", docs.base + "/api/chat/document", headers={"x-api-key": BOB}, body={"fileId": f["id"], "message": "x"})
    assert other.status == 404 and other.json()["success"] is False


def test_a_streamed_answer_leads_with_the_document_then_the_text(docs):
    document = ("Streamed " + uuid.uuid4().hex).encode()
    r = ask(docs, ALICE, document, "Stream it [sim:tokens=5]", stream="true")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = kimistack.sse_events(r.body)
    assert events[0]["document"]["cached"] is False and events[0]["model"] == "moonshot-v1-8k"
    assert "".join(e["content"] for e in events[1:-1]) == docs.sim_answer("Stream it [sim:tokens=5]")
    assert events[-1] == "[DONE]"


@pytest.mark.parametrize("fields, needle", [
    ({}, "'message' is required"),
    ({"history": "not json"}, "'history'"),
    ({"model": "no-such-model"}, "not allowed"),
])
def test_bad_questions_are_400(docs, fields, needle):
    message = fields.pop("message", "" if not fields else "q")
    r = ask(docs, ALICE, b"some text", message, **fields)
    assert r.status == 400 and needle in r.json()["error"], r.text


def test_no_file_and_no_file_id_is_400(docs):
    r = ask(docs, ALICE, None, "What file?")
    assert r.status == 400 and "'file'" in r.json()["error"]
    r = http("POST", docs.base + "/api/chat/document", headers={"x-api-key": ALICE, "Content-Type": "text/plain"}, body=b"x")
    assert r.status == 400


def test_nothing_goes_upstream_for_a_document_question_that_will_be_refused():
    """A key with a spent budget, a token-limited key and a bad max_tokens,
    each asking 5 questions about a new document: refused before any upload,
    extraction or tokenizer call (before, each made all three)."""
    spent, limited = "spent-" + uuid.uuid4().hex, "limited-" + uuid.uuid4().hex
    cfg = {"auth": {"required": True, "keys": [
        {"name": "spent", "key": spent, "budget": {"tokensPerDay": 40}},
        {"name": "limited", "key": limited, "rateLimit": {"tokensPerMinute": 100}}]},
        "rateLimit": {"enabled": True, "windowMs": 60000, "maxRequests": 100000}}
    with make_stack("documents-refused", workers=2, config=cfg, lighttpd=True) as s:
        # The budget spent first (answers capped to what is left, then refused).
        for _ in range(5):
            r = http("POST", s.base + "/api/chat/completion", headers={"x-api-key": spent}, body={"message": "spend [sim:tokens=30]"})
            if r.status == 429:
                break
        assert r.status == 429, r.text
        before = s.sim_stats()
        for key, fields, status in [(spent, {}, 429), (limited, {"max_tokens": "500"}, 429), (limited, {"max_tokens": "-5"}, 400)]:
            for i in range(6):  # through nginx and lighttpd alike
                document = ("A new document " + uuid.uuid4().hex + ". " + "words " * 400).encode()
                r = ask(s, key, document, "What is it about?", base=base_of(s, "lighttpd" if i % 2 else "nginx"), **fields)
                assert r.status == status, (key[:6], fields, r.status, r.text)
        after = s.sim_stats()
        assert (after["uploads"], after["contentReads"], after["requests"]) == (before["uploads"], before["contentReads"], before["requests"])


def test_a_named_model_gets_the_same_context_check_as_auto(docs):
    before = docs.sim_stats()["chatRequests"]
    for web in ("nginx", "lighttpd"):
        r = ask(docs, ALICE, (uuid.uuid4().hex + " " + "a" * 80_000).encode(), "Too much for 8K?", model="moonshot-v1-8k",
                base=base_of(docs, web))
        assert r.status == 400, r.text
        assert "need about 200" in r.json()["error"] and "context of moonshot-v1-8k is 8192" in r.json()["error"]
    assert docs.sim_stats()["chatRequests"] == before
    assert ask(docs, ALICE, b"short " + uuid.uuid4().hex.encode(), "Fine? [sim:tokens=2]", model="moonshot-v1-8k").status == 200


def test_cached_documents_are_held_within_the_processs_buffer_budget():
    """A cached document's size is reserved in `server.maxBufferedBytes`
    before it is loaded: questions beyond the budget wait (503 +
    Retry-After), and one that can never fit is a clear 400."""
    key = "held-" + uuid.uuid4().hex
    cfg = {"auth": {"required": True, "keys": [{"name": "held", "key": key}]}, "rateLimit": {"enabled": False},
           "server": {"maxBufferedBytes": 3 << 20}}
    with make_stack("documents-held", workers=1, config=cfg) as s:
        big = (uuid.uuid4().hex + " " + "b" * (1536 << 10)).encode()
        assert ask(s, key, big, "First? [sim:tokens=2]", model="kimi-k3").status == 200  # extracted, now cached
        r = ask(s, key, big, "Again? [sim:tokens=2]", model="kimi-k3")
        assert r.status == 400 and "maxBufferedBytes" in r.json()["error"], r.text
        small = (uuid.uuid4().hex + " " + "s" * (700 << 10)).encode()
        assert ask(s, key, small, "First? [sim:tokens=2]", model="kimi-k3").status == 200
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda i: ask(s, key, small, f"Slowly {i} [sim:tokens=20,delay=60]", model="kimi-k3"), range(4)))
        statuses = sorted(r.status for r in results)
        assert 200 in statuses and 503 in statuses, statuses
        for r in results:
            if r.status == 503:
                assert int(r.headers["Retry-After"]) >= 1 and "maxBufferedBytes" in r.json()["error"]
