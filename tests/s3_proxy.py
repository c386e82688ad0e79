"""A loopback HTTP proxy in front of an S3 server that injects real faults on chosen requests: an
S3 503 answer, a connection cut in the middle of the request body, a connection closed before any
answer, a request held past the client's timeout. Everything else passes through unchanged.

    proxy.fail(PUT_PART(3), "503", times=1)   # part 3 answered 503 once, then accepted
    proxy.fail(PUT_PART(5), "cut", times=1)   # part 5: half its body read, connection closed
    proxy.fail(ANY, "refuse")                 # S3 down: every connection closed at once
"""

from __future__ import annotations

import http.client
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

Matcher = Callable[[str, str, dict], bool]  # (method, path, query) -> bool

SERVICE_UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
    b"<Message>Injected by the test proxy</Message></Error>"
)


def ANY(method: str, path: str, query: dict) -> bool:  # noqa: N802 - reads like a constant in rules
    return True


def PUT_PART(number: int | None = None) -> Matcher:  # noqa: N802
    def match(method: str, path: str, query: dict) -> bool:
        return method == "PUT" and "uploadId" in query and (number is None or query.get("partNumber") == [str(number)])

    return match


def CREATE_UPLOAD(method: str, path: str, query: dict) -> bool:  # noqa: N802
    return method == "POST" and "uploads" in query


def COMPLETE_UPLOAD(method: str, path: str, query: dict) -> bool:  # noqa: N802
    return method == "POST" and "uploadId" in query


def ABORT_UPLOAD(method: str, path: str, query: dict) -> bool:  # noqa: N802
    return method == "DELETE" and "uploadId" in query


def GET_OBJECT(method: str, path: str, query: dict) -> bool:  # noqa: N802
    return method == "GET" and not query


@dataclass
class Rule:
    match: Matcher
    action: str  # 503 | cut | refuse | hang | cut-response
    times: int | None  # None: for ever
    seconds: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    query: dict
    outcome: str  # the upstream status, or the fault injected


@dataclass
class FaultProxy:
    upstream: tuple[str, int]
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def fail(self, match: Matcher, action: str, *, times: int | None = None, seconds: float = 0.0) -> None:
        self.rules.append(Rule(match, action, times, seconds))

    def heal(self) -> None:
        self.rules.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _rule_for(self, method: str, path: str, query: dict) -> Rule | None:
        for rule in self.rules:
            if rule.match(method, path, query) and (rule.times is None or rule.times > 0):
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return None

    def count(self, match: Matcher) -> int:
        return sum(1 for s in self.seen if match(s.method, s.path, s.query))


def _read_head(reader) -> tuple[str, list[tuple[str, str]]] | None:
    line = reader.readline()
    if not line:
        return None
    headers = []
    while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return line.decode("latin-1").rstrip("\r\n"), headers


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        proxy: FaultProxy = self.server.proxy
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=120)
        try:
            while self._one_request(proxy, upstream):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            upstream.close()

    def _one_request(self, proxy: FaultProxy, upstream) -> bool:
        head = _read_head(self.rfile)
        if head is None:
            return False
        request_line, headers = head
        method, target, _ = request_line.split(" ", 2)
        split = urlsplit(target)
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
        rule = proxy._rule_for(method, split.path, query)
        expects = any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in headers)
        if expects and (rule is None or rule.action != "refuse"):
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # botocore waits 1 s for it otherwise
        if rule is not None and rule.action in ("refuse", "cut", "hang"):
            proxy.seen.append(Seen(method, split.path, query, rule.action))
            if rule.action == "cut":
                self.rfile.read(length // 2)
            if rule.action == "hang":
                time.sleep(rule.seconds)
            self.connection.shutdown(socket.SHUT_RDWR)
            return False
        body = self.rfile.read(length) if length else b""
        if rule is not None and rule.action == "503":
            proxy.seen.append(Seen(method, split.path, query, "503"))
            self.wfile.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                + f"Content-Length: {len(SERVICE_UNAVAILABLE)}\r\n\r\n".encode()
                + SERVICE_UNAVAILABLE
            )
            return True
        forwarded = {k: v for k, v in headers if k.lower() not in ("connection", "content-length", "expect")}
        upstream.request(method, target, body=body, headers=forwarded)
        response = upstream.getresponse()
        payload = response.read()
        proxy.seen.append(Seen(method, split.path, query, str(response.status)))
        lines = [f"HTTP/1.1 {response.status} {response.reason}"]
        lines += [f"{k}: {v}" for k, v in response.getheaders() if k.lower() not in ("connection", "content-length")]
        lines.append(f"Content-Length: {len(payload)}")
        if rule is not None and rule.action == "cut-response":  # the answer is lost half-way
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload[: len(payload) // 2])
            proxy.seen[-1].outcome = "cut-response"
            self.connection.shutdown(socket.SHUT_RDWR)
            return False
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        return True


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def proxy_start(upstream: tuple[str, int]) -> tuple[FaultProxy, Callable[[], None]]:
    """Starts a proxy on a free loopback port; returns it and its stop function."""
    proxy = FaultProxy(upstream=upstream)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.proxy = proxy
    proxy.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return proxy, stop
