"""Issue: the browser test page and SDK, served by nginx over HTTPS, driven
in a real headless Chromium (Debian's chromium + chromium-driver, selenium)."""
from __future__ import annotations

import re

import time
import uuid

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import ARTIFACTS, http, make_stack

WRONG_KEY_OK = "sk-browser-" + uuid.uuid4().hex


def chromium() -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900", "--disable-gpu"):
        opts.add_argument(a)
    opts.accept_insecure_certs = True  # the run's self-signed certificate
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


@pytest.fixture(scope="module")
def browser():
    d = chromium()
    yield d
    d.quit()


def open_page(browser, stack):
    browser.get(stack.https_base + "/")
    wait = WebDriverWait(browser, 15)
    wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) > 1)
    return wait


def send(browser, text):
    box = browser.find_element(By.ID, "input")
    box.clear()
    box.send_keys(text)
    browser.find_element(By.ID, "send").click()


def last_reply(browser):
    replies = browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .text")
    return replies[-1].text if replies else ""


def severe_logs(browser):
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]


def test_page_loads_with_no_console_errors_and_no_csp_violations(browser, stack):
    wait = open_page(browser, stack)
    wait.until(EC.text_to_be_present_in_element((By.ID, "health"), "healthy"))
    assert "simulator" in browser.find_element(By.ID, "upstream").text
    assert severe_logs(browser) == []
    assert browser.current_url.startswith("https://")


def test_model_list_is_filled(browser, stack):
    open_page(browser, stack)
    ids = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "model")).options]
    assert "moonshot-v1-8k" in ids and "kimi-k3" in ids
    assert Select(browser.find_element(By.ID, "model")).first_selected_option.get_attribute("value") == "moonshot-v1-8k"


def test_single_turn_message_gets_its_answer(browser, stack):
    wait = open_page(browser, stack)
    browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=single]").click()
    stream_box = browser.find_element(By.ID, "stream")
    if stream_box.is_selected():
        stream_box.click()
    prompt = "single turn [sim:tokens=8]"
    send(browser, prompt)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant .meta"))
    assert last_reply(browser) == stack.sim_answer(prompt)
    assert "tokens:" in browser.find_element(By.CSS_SELECTOR, ".msg.assistant .meta").text
    # The gateway's own time beside the upstream's (its Server-Timing header, issue #14).
    assert re.search(r"gateway [\d.]+ ms, upstream [\d.]+ ms", browser.find_element(By.CSS_SELECTOR, ".msg.assistant .meta").text)
    # The key's usage is shown after the answer (GET /api/usage).
    wait.until(EC.text_to_be_present_in_element((By.ID, "usage"), "today"))
    assert "tokens" in browser.find_element(By.ID, "usage").text
    assert severe_logs(browser) == []


def test_streamed_answer_appears_progressively(browser, stack):
    wait = open_page(browser, stack)
    prompt = "stream it [sim:tokens=30,delay=80]"
    send(browser, prompt)
    lengths = []
    deadline = time.time() + 20
    while time.time() < deadline:
        lengths.append(len(last_reply(browser)))
        if browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .meta"):
            break
        time.sleep(0.1)
    growing = sorted(set(l for l in lengths if l > 0))
    assert len(growing) >= 5, lengths  # the text grew in many steps, not all at once
    assert last_reply(browser) == stack.sim_answer(prompt)
    meta = browser.find_element(By.CSS_SELECTOR, ".msg.assistant .meta").text
    assert "first token" in meta and "total" in meta and "tokens:" in meta
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "browser-streamed-reply.png"))
    assert severe_logs(browser) == []


def test_stop_aborts_and_the_simulator_sees_the_client_leave(browser, stack):
    wait = open_page(browser, stack)
    tag = "stop-" + uuid.uuid4().hex[:8]
    send(browser, f"long answer [sim:tokens=400,delay=50,id={tag}]")
    wait.until(lambda d: len(last_reply(d)) > 20)
    browser.find_element(By.ID, "stop").click()
    wait.until(lambda d: "stopped" in d.find_elements(By.CSS_SELECTOR, ".msg.assistant .meta")[-1].text
               if d.find_elements(By.CSS_SELECTOR, ".msg.assistant .meta") else False)
    deadline = time.time() + 10
    while time.time() < deadline and stack.sim_stats()["byId"].get(tag) != "client-left":
        time.sleep(0.1)
    assert stack.sim_stats()["byId"].get(tag) == "client-left"
    assert not browser.find_element(By.ID, "send").get_attribute("disabled")


def test_model_output_is_rendered_as_text(browser, stack):
    open_page(browser, stack)
    browser.execute_script("window.__pwned = false")
    # The simulator echoes nothing, so inject through the page's own renderer path:
    # a user message with markup must appear literally.
    send(browser, "<img src=x onerror=window.__pwned=true> [sim:tokens=2]")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant .meta"))
    assert browser.find_elements(By.CSS_SELECTOR, ".messages img") == []
    assert browser.execute_script("return window.__pwned") is False


def test_wrong_api_key_shows_the_401_message(browser):
    import hashlib
    cfg = {"auth": {"required": True, "keys": [{"name": "page", "sha256": hashlib.sha256(WRONG_KEY_OK.encode()).hexdigest()}]}}
    with make_stack("browser-auth", workers=1, config=cfg) as s:
        browser.get(s.https_base + "/")
        wait = WebDriverWait(browser, 15)
        wait.until(lambda d: not d.find_element(By.ID, "error").get_attribute("hidden"))
        assert "401" in browser.find_element(By.ID, "error").text
        key = browser.find_element(By.ID, "apiKey")
        key.send_keys("sk-wrong-key")
        browser.execute_script("document.getElementById('apiKey').dispatchEvent(new Event('change'))")
        send(browser, "hello")
        wait.until(lambda d: "API key" in d.find_element(By.ID, "error").text)
        assert "401" in browser.find_element(By.ID, "error").text
        # The right key works, and is kept for the tab only.
        key.clear()
        key.send_keys(WRONG_KEY_OK)
        browser.execute_script("document.getElementById('apiKey').dispatchEvent(new Event('change'))")
        wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) > 1)
        assert browser.execute_script("return sessionStorage.getItem('kimi-gateway.apiKey')") == WRONG_KEY_OK
        assert browser.execute_script("return localStorage.length") == 0


def test_static_files_are_served_with_cache_and_security_headers(stack):
    import ssl
    import urllib.request
    ctx = ssl.create_default_context(cafile=str(stack.cert))
    req = urllib.request.Request(stack.https_base + "/kimi-sdk.js", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, context=ctx) as r:
        assert r.headers["Cache-Control"] == "public, max-age=300"
        assert r.headers["Content-Encoding"] == "gzip"
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    with urllib.request.urlopen(stack.https_base + "/", context=ctx) as r:
        assert r.headers["Cache-Control"] == "no-cache"
    # HTTP redirects to HTTPS.
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", stack.ports["http"])
    c.request("GET", "/index.html")
    r = c.getresponse()
    assert r.status == 301 and r.headers["Location"].startswith("https://localhost:")


def test_document_mode_asks_several_questions_about_one_file(browser, stack, tmp_path):
    doc = tmp_path / "handbook.txt"
    doc.write_text("Employee handbook " + uuid.uuid4().hex + ". Holidays are 25 days a year. " * 40)
    wait = open_page(browser, stack)
    browser.get_log("browser")  # drain what earlier tests left
    browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=document]").click()
    assert browser.find_element(By.ID, "documentBox").is_displayed()
    assert not browser.find_element(By.ID, "model").is_enabled()  # the gateway picks by size
    browser.find_element(By.ID, "document").send_keys(str(doc))

    def ask(question):
        before = len(browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .meta"))
        send(browser, question)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant .meta")) > before)
        return browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .meta")[-1].text

    first = "How many holidays? [sim:tokens=6]"
    meta = ask(first)  # streamed (the box is checked by default)
    assert "model moonshot-v1-8k (auto)" in meta and "extracted" in meta and "tokens" in meta, meta
    assert last_reply(browser) == stack.sim_answer(first)
    stream_box = browser.find_element(By.ID, "stream")
    if stream_box.is_selected():
        stream_box.click()
    second = "And sick days? [sim:tokens=4]"
    meta = ask(second)
    assert "cached" in meta, meta
    assert last_reply(browser) == stack.sim_answer(second)
    assert severe_logs(browser) == []
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "document-mode.png"))
