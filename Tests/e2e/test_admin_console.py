"""Issue #31: the admin console at /admin/, served by nginx over HTTPS with the
test page's CSP, driven through its UI in headless Chromium: sign in with an
admin key, create a key (its secret shown once), the key chats, its budget and
tokens per day show, edit, rotate, revoke → 401."""
from __future__ import annotations

import ssl
import urllib.request
import uuid

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ARTIFACTS, http, make_stack, wait_for
from test_browser_chromium import browser, severe_logs  # noqa: F401 - the module's Chromium fixture

ADMIN = "console-admin-" + uuid.uuid4().hex
CLIENT = "console-client-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def stack():
    cfg = {"auth": {"required": True, "keys": [
        {"name": "ops", "key": ADMIN, "role": "admin"},
        {"name": "web-app", "key": CLIENT, "budget": {"tokensPerDay": 100000, "costPerMonth": 20}},
    ]},
        "upstream": {"prices": {"*": {"input": 4, "cachedInput": 1, "output": 16}}},
        "rateLimit": {"enabled": True, "windowMs": 60000, "maxRequests": 100000}}
    with make_stack("console", workers=2, config=cfg) as s:
        yield s


def chat(stack, key):
    return http("POST", stack.base + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                body={"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hello [sim:tokens=30]"}]})


def row(browser, name):
    return browser.find_element(By.CSS_SELECTOR, f"#keyRows tr[data-name='{name}']")


def shot(browser, name):
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / name))


def settled(browser):
    """No reload of the table in progress."""
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return !document.body.dataset.busy"))


def refreshed(browser):
    """Refresh clicked and the table rendered again."""
    browser.find_element(By.ID, "refresh").click()
    settled(browser)


def sign_in(browser, stack, key):
    browser.get(stack.https_base + "/admin/")
    browser.execute_script("sessionStorage.clear()")  # signed out: a key kept in the tab signs in by itself
    browser.refresh()
    # The table is re-rendered on every reload: an element found before it may go stale.
    wait = WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,))
    box = wait.until(EC.visibility_of_element_located((By.ID, "adminKey")))
    box.clear()
    box.send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#signInForm button").click()
    return wait


def test_the_console_is_served_with_the_test_pages_headers_and_is_never_cached(stack):
    ctx = ssl.create_default_context(cafile=str(stack.cert))
    for path in ("/admin/", "/admin/admin.js", "/admin/admin.css"):
        with urllib.request.urlopen(stack.https_base + path, context=ctx) as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-cache", path
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "script-src-attr 'none'" in csp, csp
            assert r.headers["X-Frame-Options"] == "SAMEORIGIN"
    page = urllib.request.urlopen(stack.https_base + "/admin/", context=ctx).read().decode()
    # No inline script and nothing from a third party.
    assert "<script>" not in page and "onclick" not in page and "http://" not in page and "https://" not in page


def test_a_client_key_cannot_sign_in(browser, stack):
    wait = sign_in(browser, stack, CLIENT)
    wait.until(EC.visibility_of_element_located((By.ID, "signInError")))
    assert "not an admin key" in browser.find_element(By.ID, "signInError").text
    assert not browser.find_element(By.ID, "console").is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('kimi-gateway.adminKey')") is None


def test_create_chat_edit_rotate_revoke_through_the_console(browser, stack):
    wait = sign_in(browser, stack, ADMIN)
    wait.until(EC.visibility_of_element_located((By.ID, "console")))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#keyRows tr[data-name='web-app']"))
    browser.get_log("browser")  # what the sign-in attempt with a client key logged (its 403)
    # The config keys are listed read-only; the upstream pool is shown.
    assert "config" in row(browser, "web-app").text and not row(browser, "web-app").find_elements(By.CSS_SELECTOR, "[data-action=revoke]")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#poolRows tr"))
    assert "healthy" in browser.find_element(By.ID, "poolRows").text
    assert "healthy" in browser.find_element(By.ID, "health").text

    # Create: the secret is shown once.
    browser.find_element(By.ID, "newKey").click()
    form = browser.find_element(By.ID, "keyForm")
    form.find_element(By.NAME, "name").send_keys("browser-app")
    form.find_element(By.NAME, "tokensPerDay").send_keys("5000")
    form.find_element(By.NAME, "costPerDay").send_keys("0.5")
    form.find_element(By.NAME, "maxConcurrent").send_keys("4")
    form.find_element(By.NAME, "note").send_keys("made in the console")
    browser.find_element(By.ID, "keySave").click()
    wait.until(EC.visibility_of_element_located((By.ID, "secretBox")))
    secret = browser.find_element(By.ID, "secret").text
    assert secret.startswith("kg-") and len(secret) > 30
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#keyRows tr[data-name='browser-app']"))
    shot(browser, "admin-console-secret.png")
    browser.find_element(By.ID, "hideSecret").click()
    assert browser.find_element(By.ID, "secret").text == ""

    # The key chats; its budget bars and last use show after a refresh.
    for _ in range(3):
        assert chat(stack, secret).status == 200
    wait_for(lambda: http("GET", stack.base + "/api/admin/keys", headers={"x-api-key": ADMIN}).json()["data"][0].get("lastUsedAt"), 10)

    def used_meter(d):
        refreshed(d)
        meters = row(d, "browser-app").find_elements(By.CSS_SELECTOR, "meter[data-budget=day]")
        return meters and float(meters[0].get_attribute("value")) > 0
    wait.until(used_meter)
    r = row(browser, "browser-app")
    assert "tokens today" in r.text and "spent today" in r.text and "left" in r.text and "4 at once" in r.text
    assert "active" in r.text and "UTC" in r.text  # last used

    # Its tokens per day over 30 days: today's bar holds them.
    r.find_element(By.CSS_SELECTOR, "[data-action=usage]").click()
    wait.until(EC.visibility_of_element_located((By.ID, "chartBox")))
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart rect.bar")
    assert len(bars) == 30
    assert int(bars[-1].get_attribute("data-tokens")) > 0 and all(int(b.get_attribute("data-tokens")) == 0 for b in bars[:-1])
    shot(browser, "admin-console-keys.png")

    # Edit: a new daily budget shows in the table and holds at once.
    settled(browser)
    row(browser, "browser-app").find_element(By.CSS_SELECTOR, "[data-action=edit]").click()
    field = browser.find_element(By.ID, "keyForm").find_element(By.NAME, "tokensPerDay")
    assert field.get_attribute("value") == "5000"
    field.clear()
    field.send_keys("7000")
    browser.find_element(By.ID, "keySave").click()
    wait.until(lambda d: "/ 7,000 tokens today" in row(d, "browser-app").text)
    settled(browser)
    key_id = row(browser, "browser-app").get_attribute("data-id")
    assert http("GET", stack.base + f"/api/admin/keys/{key_id}", headers={"x-api-key": ADMIN}).json()["data"]["budget"]["tokensPerDay"] == 7000

    # Rotate without grace: a new secret; the old one stops working.
    settled(browser)
    row(browser, "browser-app").find_element(By.CSS_SELECTOR, "[data-action=rotate]").click()
    wait.until(EC.visibility_of_element_located((By.ID, "confirmDialog")))
    browser.find_element(By.ID, "confirmOk").click()
    wait.until(lambda d: d.find_element(By.ID, "secret").text.startswith("kg-") and d.find_element(By.ID, "secret").text != secret)
    rotated = browser.find_element(By.ID, "secret").text
    assert wait_for(lambda: chat(stack, secret).status == 401, 2)
    assert chat(stack, rotated).status == 200
    browser.find_element(By.ID, "hideSecret").click()

    # Revoke: confirmed, then 401 everywhere within a second.
    settled(browser)
    row(browser, "browser-app").find_element(By.CSS_SELECTOR, "[data-action=revoke]").click()
    wait.until(EC.visibility_of_element_located((By.ID, "confirmDialog")))
    assert "cannot be undone" in browser.find_element(By.ID, "confirmText").text
    browser.find_element(By.ID, "confirmOk").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#keyRows tr[data-name='browser-app']"))  # revoked are hidden
    browser.find_element(By.ID, "showRevoked").click()
    settled(browser)
    assert "revoked" in row(browser, "browser-app").text
    assert wait_for(lambda: chat(stack, rotated).status == 401, 2)
    assert all(chat(stack, rotated).status == 401 for _ in range(6))
    shot(browser, "admin-console-revoked.png")

    # Nothing logged an error or a CSP violation; the admin key is in this tab only.
    assert severe_logs(browser) == []
    assert browser.execute_script("return sessionStorage.getItem('kimi-gateway.adminKey')") == ADMIN
    assert browser.execute_script("return localStorage.length") == 0


def test_a_bad_field_is_shown_in_the_form_and_nothing_is_created(browser, stack):
    wait = sign_in(browser, stack, ADMIN)
    wait.until(EC.visibility_of_element_located((By.ID, "console")))
    before = len(http("GET", stack.base + "/api/admin/keys", headers={"x-api-key": ADMIN}).json()["data"])
    browser.find_element(By.ID, "newKey").click()
    form = browser.find_element(By.ID, "keyForm")
    form.find_element(By.NAME, "name").send_keys("half-a-limit")
    form.find_element(By.NAME, "maxRequests").send_keys("10")  # without a window
    browser.find_element(By.ID, "keySave").click()
    wait.until(EC.visibility_of_element_located((By.ID, "keyFormError")))
    assert "400" in browser.find_element(By.ID, "keyFormError").text and "windowMs" in browser.find_element(By.ID, "keyFormError").text
    assert len(http("GET", stack.base + "/api/admin/keys", headers={"x-api-key": ADMIN}).json()["data"]) == before
    browser.find_element(By.ID, "keyCancel").click()
