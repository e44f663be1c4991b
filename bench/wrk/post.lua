-- wrk: POST a small non-stream chat completion.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"moonshot-v1-8k","messages":[{"role":"user","content":"Say hello in one word."}],"temperature":0.3}'
