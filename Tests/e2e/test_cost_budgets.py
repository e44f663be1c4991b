"""Issue #31: budgets in money beside tokens. `budget.costPerDay` and
`costPerMonth`, in the currency of `upstream.prices`, reserved before the call
at the worst cost (no cache hit) and settled with the cost (cache hits at the
cached-input price), exact across four processes; config keys and created keys
alike; a key with one may only use priced models."""
from __future__ import annotations

import json
import math
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import kimistack
import pytest

from conftest import gateway_log, http, ledger_rows, make_stack, wait_for

ADMIN = "cost-admin-" + uuid.uuid4().hex
DAY = "cost-day-" + uuid.uuid4().hex
MONTH = "cost-month-" + uuid.uuid4().hex
TIGHT = "cost-tight-" + uuid.uuid4().hex
PLAIN = "cost-plain-" + uuid.uuid4().hex
# Per million tokens: 4 in, 1 for a cache hit, 16 out (Kimi K2's list prices, CNY).
PRICE = {"input": 4, "cachedInput": 1, "output": 16}
DAY_BUDGET = 0.01  # 10,000 millionths: about 14 requests of 40 tokens


@pytest.fixture(scope="module")
def stack():
    cfg = {
        "rateLimit": {"enabled": True, "windowMs": 60000, "maxRequests": 1000000},
        "upstream": {"prices": {"moonshot-v1-8k": PRICE}},
        "auth": {"required": True, "keys": [
            {"key": ADMIN, "name": "ops", "role": "admin"},
            {"key": DAY, "name": "cost-day", "budget": {"costPerDay": DAY_BUDGET}},
            {"key": MONTH, "name": "cost-month", "budget": {"costPerMonth": 50}},
            {"key": TIGHT, "name": "cost-tight", "budget": {"costPerDay": 0.002}},
            {"key": PLAIN, "name": "plain"},
        ]},
    }
    with make_stack("cost-budgets", workers=4, config=cfg) as s:
        yield s


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def chat(s, key, content, **extra):
    body = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": content}], **extra}
    return http("POST", s.base + "/v1/chat/completions", body=body, headers=auth(key))


def micros(usage) -> int:
    """What the answer's usage costs in millionths, as the gateway must charge it."""
    cached = usage.get("cached_tokens", (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)) or 0
    p, c = usage["prompt_tokens"], usage["completion_tokens"]
    return math.ceil((p - cached) * PRICE["input"] + cached * PRICE["cachedInput"] + c * PRICE["output"])


def test_a_daily_cost_budget_holds_under_60_concurrent_requests_across_four_processes(stack):
    s = stack
    before = s.sim_stats()["chatRequests"]
    with ThreadPoolExecutor(max_workers=60) as pool:
        results = list(pool.map(lambda _: chat(s, DAY, "how much is left? [sim:tokens=40]", max_tokens=40), range(60)))
    ok = [r for r in results if r.status == 200]
    refused = [r for r in results if r.status == 429]
    assert len(ok) + len(refused) == 60, sorted({(r.status, r.text[:120]) for r in results})
    spent = sum(micros(r.json()["usage"]) for r in ok)
    limit = int(DAY_BUDGET * 1_000_000)
    assert 0 < spent <= limit, (spent, len(ok))
    # Used, not refused early: what is left is less than two requests' worst cost.
    assert spent >= limit - 2 * (60 * PRICE["input"] + 40 * PRICE["output"]), spent
    assert s.sim_stats()["chatRequests"] - before == len(ok)
    for r in refused:
        e = r.json()["error"]
        assert e["code"] == "insufficient_quota" and "Daily cost budget" in e["message"], e
        assert "renews at" in e["message"] and int(r.headers["Retry-After"]) >= 1
    # The ledger's rows carry each request's cost, and agree with the clients.
    assert wait_for(lambda: sum(r["cost_micros"] or 0 for r in ledger_rows(s, "key_name = 'cost-day'")) == spent, 10)
    # The key sees its own budget's use (each process's book follows the ledger within a drain).
    me = lambda: http("GET", s.base + "/api/keys/me", headers=auth(DAY)).json()["data"]["budgetUse"]["costDay"]
    assert wait_for(lambda: abs(me()["used"] - spent / 1e6) < 1e-9, 10), me()
    assert me()["limit"] == DAY_BUDGET and abs(me()["left"] - (limit - spent) / 1e6) < 1e-9


def test_cache_hits_are_charged_at_the_cached_price_in_either_spelling(stack):
    s = stack
    costs = []
    for i in range(6):  # the simulator spells the cache hits Kimi's way or OpenAI's, at random
        r = chat(s, MONTH, f"a long shared prefix {i} " + "x" * 400 + " [sim:tokens=5,cached=80]", max_tokens=5)
        assert r.status == 200, r.text
        u = r.json()["usage"]
        cached = u.get("cached_tokens", (u.get("prompt_tokens_details") or {}).get("cached_tokens"))
        assert cached == 80, u
        costs.append(micros(u))
    # Each row: fresh prompt tokens at 4, the 80 cache hits at 1, the answer at 16.
    rows = lambda: sorted(r["cost_micros"] for r in ledger_rows(s, "key_name = 'cost-month'"))
    assert wait_for(lambda: rows() == sorted(costs), 10), (rows(), costs)
    row = ledger_rows(s, "key_name = 'cost-month'")[0]
    assert row["cost_micros"] == (row["prompt_tokens"] - 80) * 4 + 80 * 1 + row["completion_tokens"] * 16
    usage = http("GET", s.base + "/api/usage", headers=auth(MONTH)).json()["data"]
    assert abs(usage["month"]["cost"] - sum(costs) / 1e6) < 1e-9 and usage["budget"]["costPerMonth"] == 50, usage


def test_a_key_with_a_cost_budget_may_only_use_priced_models_and_nothing_unpriced_goes_upstream(stack):
    s = stack
    before = s.sim_stats()["chatRequests"]
    r = http("POST", s.base + "/v1/chat/completions", headers=auth(MONTH),
             body={"model": "moonshot-v1-32k", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 403, r.text
    assert "no price" in r.json()["error"]["message"] and "moonshot-v1-32k" in r.json()["error"]["message"]
    assert s.sim_stats()["chatRequests"] == before
    # A key without one uses it, and its row has no cost.
    r = http("POST", s.base + "/v1/chat/completions", headers=auth(PLAIN),
             body={"model": "moonshot-v1-32k", "messages": [{"role": "user", "content": "hi [sim:tokens=2]"}]})
    assert r.status == 200, r.text
    assert wait_for(lambda: [x["cost_micros"] for x in ledger_rows(s, "key_name = 'plain'")] == [None], 10)


def test_without_max_tokens_the_answer_stops_where_the_cost_budget_does(stack):
    s = stack
    # 2,000 millionths: the default reservation of 1,024 tokens at 16 (16,384) does not fit;
    # the answer is capped at what is left instead of refused.
    r = chat(s, TIGHT, "tell me everything [sim:tokens=500]")
    assert r.status == 200, r.text
    u = r.json()["usage"]
    assert 50 < u["completion_tokens"] < 125 and micros(u) <= 2_000, u
    assert "max_tokens-capped=" in gateway_log(s, "max_tokens-capped=")
    # What is left of it is then less than another request's least cost: refused, named.
    for _ in range(3):
        r = chat(s, TIGHT, "more [sim:tokens=500]")
        if r.status == 429:
            break
    assert r.status == 429 and "cost budget" in r.json()["error"]["message"], r.text


def test_a_created_key_gets_a_cost_budget_through_the_admin_api_and_is_held_to_it(stack):
    s = stack
    r = http("POST", s.base + "/api/admin/keys", headers={"x-api-key": ADMIN},
             body={"name": "cost-created", "budget": {"costPerDay": 0.001}})
    assert r.status == 201, r.text
    created = r.json()["data"]
    assert created["budget"] == {"costPerDay": 0.001}
    statuses = []
    for _ in range(6):
        statuses.append(chat(s, created["key"], "hi [sim:tokens=20]", max_tokens=20).status)
    # Each costs ~400 millionths: two fit in 1,000, then the budget refuses.
    assert statuses[:2] == [200, 200] and statuses[-1] == 429, statuses
    listed = lambda: {k["name"]: k for k in http("GET", s.base + "/api/admin/keys", headers={"x-api-key": ADMIN}).json()["data"]}
    assert wait_for(lambda: listed()["cost-created"]["lastUsedAt"], 10)  # once the ledger has its rows
    use = listed()["cost-created"]["budgetUse"]["costDay"]
    assert use["limit"] == 0.001 and 0 < use["used"] <= 0.001, use
    # A bad money budget is a clear 400 naming the field.
    bad = http("POST", s.base + "/api/admin/keys", headers={"x-api-key": ADMIN}, body={"name": "x", "budget": {"costPerDay": -1}})
    assert bad.status == 400 and "budget.costPerDay" in bad.json()["error"], bad.text


def test_a_config_with_a_cost_budget_and_no_prices_does_not_start(tmp_path):
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps({"usage": {"enabled": True},
                                "auth": {"required": True, "keys": [{"key": "k" * 32, "budget": {"costPerDay": 1}}]}}))
    r = subprocess.run([str(kimistack.binary()), "check-config", "--config", str(path)], capture_output=True, text=True)
    assert r.returncode == 1 and "auth.keys[0].budget" in r.stderr and "upstream.prices" in r.stderr, (r.stdout, r.stderr)
