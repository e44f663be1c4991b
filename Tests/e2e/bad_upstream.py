"""An upstream that misbehaves on purpose, for the hardening tests (issue #9).

A plain HTTP/1.1 server on a loopback port, one thread per connection, raw
sockets so it can do what no well-behaved server does. The behaviour comes
from `[bad:NAME]` in the request body (the last user message):

  noblank   stream: `data:` lines forever, never a blank line
  longline  stream: one line with no end
  drip      non-stream: Content-Length 1000, one byte every 100 ms
  notjson   non-stream: 200 with an HTML body
  short     non-stream: Content-Length 400, 100 bytes, then close
  big       non-stream: a 20 MiB JSON answer, sent in 64 KiB pieces
  medium    non-stream: a 700 KiB JSON answer, sent over ~1 s
  echokey   error 400 whose type and message echo the Authorization header
  echokey5  error 500, the same echo
  streamkey stream: one chunk, then an error event echoing the header
  hugeusage non-stream: usage.prompt_tokens 2^63-1 (and completion 10^18)
  negusage  non-stream: usage.prompt_tokens -5,000,000
The stats (`GET /stats`) count requests and bytes sent.
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time


def _chunk(text: str) -> bytes:
    return ("data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "moonshot-v1-8k",
                                    "choices": [{"index": 0, "delta": {"content": text}}]}) + "\n\n").encode()


def _completion(content: str) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "moonshot-v1-8k",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


class BadUpstream:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.stopping = True
        self.sock.close()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            head, body = self._read_request(conn)
            if head is None:
                return
            with self.lock:
                self.requests += 1
            if head.startswith("GET /stats"):
                self._send(conn, 200, json.dumps({"requests": self.requests}).encode())
                return
            if head.startswith("GET /v1/models"):
                self._send(conn, 200, json.dumps({"object": "list", "data": [{"id": "moonshot-v1-8k", "object": "model"}]}).encode())
                return
            auth = ""
            m = re.search(r"(?im)^authorization:\s*(.*?)\r?$", head)
            if m:
                auth = m.group(1)
            mode = re.search(rb"\[bad:(\w+)\]", body)
            getattr(self, "_" + (mode.group(1).decode() if mode else "ok"))(conn, auth)
        except OSError:
            pass
        finally:
            conn.close()

    @staticmethod
    def _read_request(conn: socket.socket):
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return None, b""
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        text = head.decode("latin-1")
        m = re.search(r"(?im)^content-length:\s*(\d+)", text)
        need = int(m.group(1)) if m else 0
        while len(body) < need:
            piece = conn.recv(65536)
            if not piece:
                break
            body += piece
        return text, body

    @staticmethod
    def _send(conn, status: int, body: bytes, ctype: str = "application/json", length: int | None = None) -> None:
        conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body) if length is None else length}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)

    @staticmethod
    def _stream_head(conn) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")

    # Behaviours
    def _ok(self, conn, _auth):
        self._send(conn, 200, _completion("fine"))

    def _usage(self, conn, prompt, completion):
        answer = json.loads(_completion("hostile"))
        answer["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": 0}
        self._send(conn, 200, json.dumps(answer).encode())

    def _hugeusage(self, conn, _auth):
        self._usage(conn, 2**63 - 1, 10**18)

    def _negusage(self, conn, _auth):
        self._usage(conn, -5_000_000, 1)

    def _noblank(self, conn, _auth):
        self._stream_head(conn)
        line = b"data: " + b"x" * 8186 + b"\n"
        for _ in range(16384):  # up to 128 MiB, unless the gateway hangs up first
            conn.sendall(line)

    def _longline(self, conn, _auth):
        self._stream_head(conn)
        conn.sendall(_chunk("before"))
        conn.sendall(b"data: ")
        for _ in range(2048):  # up to 128 MiB
            conn.sendall(b"y" * 65536)

    def _drip(self, conn, _auth):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n")
        for _ in range(1000):
            conn.sendall(b" ")
            time.sleep(0.1)

    def _notjson(self, conn, _auth):
        self._send(conn, 200, b"<html><body>502 Bad Gateway</body></html>")

    def _short(self, conn, _auth):
        self._send(conn, 200, _completion("x" * 20)[:100], length=400)

    _big_body = None

    def _big(self, conn, _auth):
        if BadUpstream._big_body is None:
            BadUpstream._big_body = _completion("z" * (20 << 20))  # built once: 48 copies at once starve the GIL
        body = BadUpstream._big_body
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        for i in range(0, len(body), 65536):
            conn.sendall(body[i:i + 65536])

    def _medium(self, conn, _auth):
        body = _completion("m" * (700 << 10))
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        step = len(body) // 10 + 1
        for i in range(0, len(body), step):
            conn.sendall(body[i:i + step])
            time.sleep(0.1)

    def _echo(self, conn, auth, status):
        key = auth.split(" ", 1)[-1]
        msg = f"bad credentials {auth} (key {key[:-1]}, tail {key[3:]})"
        self._send(conn, status, json.dumps({"error": {"type": key, "message": msg}}).encode())

    def _echokey(self, conn, auth):
        self._echo(conn, auth, 400)

    def _echokey5(self, conn, auth):
        self._echo(conn, auth, 500)

    def _streamkey(self, conn, auth):
        key = auth.split(" ", 1)[-1]
        self._stream_head(conn)
        conn.sendall(_chunk("partial "))
        conn.sendall(("data: " + json.dumps({"error": {"type": key, "message": f"upstream said {auth} / {key[:-1]}"}}) + "\n\n").encode())
        conn.sendall(b"data: [DONE]\n\n")
