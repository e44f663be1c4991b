"""A minimal FastCGI client (FastCGI 1.0 spec §3, §5) for driving the
gateway's socket directly with inputs a web server would never forward:
short bodies, malformed CONTENT_LENGTH."""
from __future__ import annotations

import socket
import struct

VERSION, BEGIN, END, PARAMS, STDIN, STDOUT, STDERR = 1, 1, 3, 4, 5, 6, 7


def _record(rtype: int, content: bytes, request_id: int = 1) -> bytes:
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBB", VERSION, rtype, request_id, len(content), pad, 0) + content + b"\0" * pad


def _pair(name: bytes, value: bytes) -> bytes:
    def length(n: int) -> bytes:
        return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
    return length(len(name)) + length(len(value)) + name + value


def request(sock_path: str, params: dict[str, str], body: bytes = b"", timeout: float = 10) -> tuple[int, dict, bytes]:
    """Sends one request; returns (status, headers, body) parsed from the CGI response."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    try:
        return exchange(s, params, body)
    finally:
        s.close()


def exchange(s: socket.socket, params: dict[str, str], body: bytes = b"", keep_conn: bool = False) -> tuple[int, dict, bytes]:
    """One request on the connected socket `s` (FastCGI 1.0 §5.1: with
    `keep_conn` the responder leaves the connection open for the next one);
    returns (status, headers, body) parsed from the CGI response."""
    out = _record(BEGIN, struct.pack(">HB5x", 1, 1 if keep_conn else 0))  # role RESPONDER
    blob = b"".join(_pair(k.encode(), v.encode()) for k, v in params.items())
    out += _record(PARAMS, blob) + _record(PARAMS, b"")
    for i in range(0, len(body), 65535):
        out += _record(STDIN, body[i:i + 65535])
    out += _record(STDIN, b"")
    s.sendall(out)
    return read_response(s)


def read_response(s: socket.socket) -> tuple[int, dict, bytes]:
    """The response to the request sent on `s`: its STDOUT records up to
    END_REQUEST, parsed (a connection closed first gives what came)."""
    stdout = b""
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 8:
            _, rtype, _, clen, pad, _ = struct.unpack(">BBHHBB", buf[:8])
            if len(buf) < 8 + clen + pad:
                break
            content = buf[8:8 + clen]
            buf = buf[8 + clen + pad:]
            if rtype == STDOUT:
                stdout += content
            elif rtype == END:
                return _parse(stdout)
    return _parse(stdout)


def _parse(raw: bytes) -> tuple[int, dict, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    status = int(headers.get("status", "200").split()[0])
    return status, headers, body
