"""metrics_server.py - the bounded HTTP server /metrics is served from.

    server = MetricsServer(("127.0.0.1", 10477), registry)
    ...
    server.close()

One thread with a selector owns every connection: it accepts, reads each
request head and writes each answer, and never blocks on a client. A
complete request goes to a fixed pool of WORKERS threads, which run
prometheus_client's own MetricsHandler on it in memory (its content
negotiation, gzip and name[] filter: the library's exposition code, not
ours); the selector thread writes the answer back. A client that sends half
a request, or reads its answer slowly, costs one socket until its deadline,
never a thread.

Rules:
1. The threads are fixed: one selector thread and WORKERS workers, started
   with the server. No connection gets a thread of its own.
2. At most MAX_CONNECTIONS connections are open. One more closes, for it,
   the oldest one that no worker holds (still sending its request or being
   slow to read its answer: a stalled client yields to a live one); if
   every open one is with a worker, the new one gets 503 and is closed.
3. A request head must arrive whole within REQUEST_TIMEOUT_S of the accept
   and within MAX_REQUEST_BYTES, or the connection gets 408 (431) and is
   closed; an answer not taken within RESPONSE_TIMEOUT_S is dropped with
   its connection. The deadline is for the whole head, not per read: a
   byte every second keeps no connection alive.
4. One request per connection, as prometheus_client answers (HTTP/1.0):
   answer, then close. A request body is never waited for (GET has none).
5. close() stops accepting, closes every connection and joins the threads;
   a worker in a scrape finishes it first (SnapshotCollector waits at most
   metrics.SNAPSHOT_TIMEOUT_S).
"""
from __future__ import annotations

import io
import logging
import os
import queue
import selectors
import socket
import threading
import time

from prometheus_client import MetricsHandler
from prometheus_client.registry import Collector

log = logging.getLogger("vnetshare.metrics")

WORKERS = 2                # scrapes answered at once; each takes one snapshot in the daemon's loop
MAX_CONNECTIONS = 64       # open connections, whatever their state
REQUEST_TIMEOUT_S = 5.0    # from accept to the end of the request head
RESPONSE_TIMEOUT_S = 10.0  # to hand over an answer (Prometheus' default scrape_timeout)
MAX_REQUEST_BYTES = 16384  # a request head; Prometheus sends about 300 bytes
BACKLOG = 128

_READING, _WORKING, _WRITING = "reading", "working", "writing"
_HEAD_END = (b"\r\n\r\n", b"\n\n")


class _Conn:
    """One client connection and where it is (rule 2's states)."""

    __slots__ = ("sock", "peer", "since", "deadline", "state", "data", "sent")

    def __init__(self, sock: socket.socket, peer, now: float):
        self.sock = sock
        self.peer = peer
        self.since = now
        self.deadline = now + REQUEST_TIMEOUT_S
        self.state = _READING
        self.data = b""          # the request head so far, then the answer
        self.sent = 0


class _InMemory(MetricsHandler):
    """prometheus_client's handler on a request already read: reads from
    and writes to memory, so a worker never touches the client's socket."""

    def setup(self) -> None:
        self.rfile = io.BytesIO(self.request)
        self.wfile = io.BytesIO()

    def finish(self) -> None:
        pass


def _status_only(code: int, reason: str, text: str) -> bytes:
    body = (text + "\n").encode()
    return (f"HTTP/1.0 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


_TOO_MANY = _status_only(503, "Service Unavailable", "too many connections to the metrics server")
_TOO_SLOW = _status_only(408, "Request Timeout", f"the request took over {REQUEST_TIMEOUT_S:g} s")
_TOO_BIG = _status_only(431, "Request Header Fields Too Large", f"the request is over {MAX_REQUEST_BYTES} bytes")
_FAILED = _status_only(500, "Internal Server Error", "the metrics could not be gathered; see the daemon's log")


class MetricsServer:
    """/metrics of @registry on @addr (an IP literal, PORT): bound and
    listening when this returns (a port in use raises OSError)."""

    def __init__(self, addr: tuple[str, int], registry: Collector):
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(addr)
            self._listener.listen(BACKLOG)
            self._listener.setblocking(False)
        except OSError:
            self._listener.close()
            raise
        self.address = self._listener.getsockname()[:2]
        self._handler = type("VnetshareMetricsHandler", (_InMemory,), {"registry": registry})
        self._conns: dict[int, _Conn] = {}
        self._work: queue.SimpleQueue[_Conn | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[_Conn, bytes]] = queue.SimpleQueue()
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, "listener")
        self._sel.register(self._wake, selectors.EVENT_READ, "wake")
        self._stopping = False
        self._threads = [threading.Thread(target=self._serve, name="vnetshare-metrics", daemon=True)]
        self._threads += [threading.Thread(target=self._answer, name=f"vnetshare-metrics-{i}", daemon=True)
                          for i in range(WORKERS)]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        """Rule 5. Again: nothing."""
        if self._stopping:
            return
        self._stopping = True
        os.eventfd_write(self._wake, 1)
        for _ in range(WORKERS):
            self._work.put(None)
        for t in self._threads:
            t.join()
        self._sel.close()
        os.close(self._wake)

    # -- the selector thread -------------------------------------------------
    def _serve(self) -> None:
        try:
            while not self._stopping:
                now = time.monotonic()
                soonest = min((c.deadline for c in self._conns.values() if c.state != _WORKING), default=now + 1)
                for key, mask in self._sel.select(max(0.0, min(soonest - now, 1.0))):
                    if key.data == "listener":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    elif mask & selectors.EVENT_READ:
                        self._read(key.data)
                    else:
                        self._write(key.data)
                self._expire(time.monotonic())
        except Exception:  # noqa: BLE001 - a bug here must not pass silently, nor take the daemon down
            log.exception("metrics: the server stopped")
        finally:
            for conn in list(self._conns.values()):
                self._drop(conn)
            self._sel.unregister(self._listener)
            self._listener.close()

    def _accept(self) -> None:
        for _ in range(BACKLOG):
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: the client waits in the backlog
                log.warning("metrics: accept: %s", e.strerror or e)
                return
            sock.setblocking(False)
            if len(self._conns) >= MAX_CONNECTIONS:
                idle = [c for c in self._conns.values() if c.state != _WORKING]
                if not idle:
                    _say(sock, _TOO_MANY)
                    sock.close()
                    continue
                oldest = min(idle, key=lambda c: c.since)
                _say(oldest.sock, _TOO_MANY if oldest.state == _READING else b"")
                self._drop(oldest)
            conn = _Conn(sock, peer, time.monotonic())
            self._conns[sock.fileno()] = conn
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _read(self, conn: _Conn) -> None:
        try:
            chunk = conn.sock.recv(MAX_REQUEST_BYTES + 1 - len(conn.data))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client gave up
            self._drop(conn)
            return
        conn.data += chunk
        if any(end in conn.data for end in _HEAD_END):
            conn.state = _WORKING
            self._sel.unregister(conn.sock)
            self._work.put(conn)
        elif len(conn.data) > MAX_REQUEST_BYTES:
            _say(conn.sock, _TOO_BIG)
            self._drop(conn)

    def _drain_wake(self) -> None:
        try:
            os.eventfd_read(self._wake)
        except BlockingIOError:
            pass
        while True:
            try:
                conn, answer = self._done.get_nowait()
            except queue.Empty:
                return
            if self._conns.get(conn.sock.fileno()) is not conn:
                continue  # closed meanwhile
            conn.state, conn.data, conn.sent = _WRITING, answer, 0
            conn.deadline = time.monotonic() + RESPONSE_TIMEOUT_S
            self._sel.register(conn.sock, selectors.EVENT_WRITE, conn)
            self._write(conn)

    def _write(self, conn: _Conn) -> None:
        try:
            conn.sent += conn.sock.send(memoryview(conn.data)[conn.sent:], socket.MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if conn.sent >= len(conn.data):
            self._drop(conn, graceful=True)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.state != _WORKING and c.deadline <= now]:
            if conn.state == _READING:
                _say(conn.sock, _TOO_SLOW)
            self._drop(conn)

    def _drop(self, conn: _Conn, graceful: bool = False) -> None:
        if self._conns.get(conn.sock.fileno()) is conn:
            del self._conns[conn.sock.fileno()]
            if conn.state != _WORKING:
                self._sel.unregister(conn.sock)
        if graceful:
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        conn.sock.close()

    # -- the workers ---------------------------------------------------------
    def _answer(self) -> None:
        while True:
            conn = self._work.get()
            if conn is None:
                return
            try:
                answer = self._handler(conn.data, conn.peer, self).wfile.getvalue()
            except Exception:  # noqa: BLE001 - one failed scrape is a 500 and a log line, not a dead worker
                log.exception("metrics: a scrape failed")
                answer = _FAILED
            self._done.put((conn, answer))
            os.eventfd_write(self._wake, 1)  # open until close() has joined this thread


def _say(sock: socket.socket, what: bytes) -> None:
    """Best effort, never blocking: a short status before a close."""
    if what:
        try:
            sock.send(what, socket.MSG_NOSIGNAL)
        except OSError:
            pass
