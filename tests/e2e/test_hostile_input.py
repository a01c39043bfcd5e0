"""Hostile clients on raw sockets: oversized heads, trickled requests, idle connections.

The server here runs with `--request-timeout 1`, so a trickling client is cut off after about
a second instead of the default ten. Every refusal is an AWS-shaped answer, sent before
authentication, and the server keeps serving everyone else meanwhile.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from controlplane.http_limits import MAX_HEAD_BYTES
from tests.conftest import LiveServer, start_server
from tests.waiting import wait_until

REQUEST_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("hostile") / "data",
        "--request-timeout",
        str(REQUEST_TIMEOUT),
    )
    yield live
    live.stop()


def _connect(server: LiveServer) -> socket.socket:
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()


def _assert_aws_error(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> str:
    got_status, headers, body = answer
    assert got_status == status, body
    assert headers["x-amzn-errortype"] == code
    assert headers["connection"] == "close"
    return json.loads(body)["message"]


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _healthy(server: LiveServer) -> bool:
    with urllib.request.urlopen(server.url + "/_airdock/health", timeout=5) as answer:
        return answer.status == 200


def test_a_head_over_the_limit_is_431_before_authentication(server):
    with _connect(server) as sock:
        filler = b"X-Filler: " + b"a" * (MAX_HEAD_BYTES + 1) + b"\r\n"
        sock.sendall(b"GET /environments HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n")
        message = _assert_aws_error(_response(sock), 431, "RequestHeaderFieldsTooLargeException")
        assert str(MAX_HEAD_BYTES) in message
        assert _closed(sock)
    assert _healthy(server)


def test_many_headers_adding_up_over_the_limit_are_431(server):
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(MAX_HEAD_BYTES // 100))
    with _connect(server) as sock:
        sock.sendall(b"GET /environments HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        _assert_aws_error(_response(sock), 431, "RequestHeaderFieldsTooLargeException")


def test_a_head_just_under_the_limit_is_served(server):
    filler = b"X-Filler: " + b"a" * (MAX_HEAD_BYTES - 200) + b"\r\n"
    with _connect(server) as sock:
        sock.sendall(b"GET /_airdock/health HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n")
        status, _, _ = _response(sock)
        assert status == 200


def test_a_100_mb_header_is_cut_off_and_others_are_served(server):
    total = 100 * 1024 * 1024
    sent = 0
    finished = threading.Event()

    def attack() -> None:
        nonlocal sent
        chunk = b"a" * (1024 * 1024)
        with _connect(server) as sock:
            try:
                sock.sendall(b"GET /environments HTTP/1.1\r\nHost: x\r\nX-Big: ")
                while sent < total:
                    sent += sock.send(chunk)
            except OSError:
                pass  # the server closed the connection: what should happen
            finally:
                finished.set()

    attacker = threading.Thread(target=attack, daemon=True)
    attacker.start()
    # While the attacker pushes, another client is served.
    assert _healthy(server)
    wait_until(finished.is_set, timeout=30, message="the server to cut the 100 MB header off")
    attacker.join()
    assert sent < total, "the server read the whole 100 MB header"
    assert _healthy(server)


def test_a_trickled_head_gets_408_and_others_are_served(server):
    stop = threading.Event()
    answers: list[tuple[int, dict[str, str], bytes]] = []

    def trickle() -> None:
        with _connect(server) as sock:
            sock.sendall(b"GET /environments HTTP/1.1\r\nHost: x\r\n")
            with contextlib.suppress(OSError):
                while not stop.wait(0.1):  # one header line every 100 ms, never the end
                    sock.sendall(b"X-Slow: 1\r\n")
            answers.append(_response(sock))

    slow = [threading.Thread(target=trickle, daemon=True) for _ in range(20)]
    for thread in slow:
        thread.start()
    try:
        assert _healthy(server)
        wait_until(lambda: len(answers) == len(slow), timeout=30, message="408s to every trickler")
    finally:
        stop.set()
        for thread in slow:
            thread.join(10)
    for answer in answers:
        _assert_aws_error(answer, 408, "RequestTimeoutException")


def test_a_trickled_body_gets_408_and_changes_nothing(server):
    name = "slow-body"
    with _connect(server) as sock:
        sock.sendall(
            f"PUT /environments/{name} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
        sock.settimeout(30)
        _assert_aws_error(_response(sock), 408, "RequestTimeoutException")
        assert _closed(sock)
    mwaa = server.mwaa()
    with pytest.raises(mwaa.exceptions.ResourceNotFoundException):
        mwaa.get_environment(Name=name)
    assert "Traceback" not in (server.data_dir.parent / "data-server.log").read_text()


def test_a_connection_that_never_sends_is_closed(server):
    with _connect(server) as sock:
        sock.settimeout(30)
        assert _closed(sock)


def test_keep_alive_requests_are_not_cut_off(server):
    # The deadline covers a request's arrival only: a client sending complete requests on one
    # connection, with pauses shorter than the keep-alive timeout, is served throughout.
    with _connect(server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /_airdock/health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _ = _response(sock)
            assert status == 200
            time.sleep(REQUEST_TIMEOUT * 0.6)  # a pause by design, not a wait for anything
