"""HTTP/1.1 hygiene of a real ``mltrail server`` (issue 12, item 7): no request smuggling, a 413
that stops reading, connections that cannot be held open by sending headers slowly."""

from __future__ import annotations

import contextlib
import socket
import time

from mltrail.server.http_protocol import HEADER_TIMEOUT_SECONDS, MAX_HEAD_BYTES
from support.servers import ServerProcess


def _connect(server: ServerProcess, timeout: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(timeout)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def test_a_request_with_both_length_and_chunked_framing_is_refused_alone(
    shared_server: ServerProcess,
) -> None:
    hidden = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    smuggling = (
        b"POST /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s" % (5 + len(hidden), hidden)
    )
    with _connect(shared_server, 5) as sock:
        sock.sendall(smuggling)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.count(b"HTTP/1.1 ") == 1  # the request hidden in the body got no answer
    assert b"connection: close" in answer.lower() and b"Transfer-Encoding" in answer


def test_a_413_closes_the_connection_instead_of_reading_the_body(
    shared_server: ServerProcess,
) -> None:
    declared = 500_000_000
    with _connect(shared_server, 5) as sock:
        sock.sendall(
            b"POST /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: %d\r\n\r\n" % declared
        )
        assert sock.recv(200).startswith(b"HTTP/1.1 413 ")
        sent, deadline = 0, time.monotonic() + 10
        try:
            while time.monotonic() < deadline and sent < declared:
                sent += sock.send(b"x" * 65536)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
    print(f"bytes the client could push after the 413: {sent:,} of {declared:,}")
    assert sent < declared // 10  # the server stopped reading long before the end


def test_a_client_sending_headers_slowly_is_disconnected(shared_server: ServerProcess) -> None:
    with _connect(shared_server, HEADER_TIMEOUT_SECONDS + 20) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            while time.monotonic() - started < HEADER_TIMEOUT_SECONDS + 15:
                sock.sendall(b"X-Slow: 1\r\n")  # one header line at a time, never finishing
                time.sleep(1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _read_all(sock) == b""
        waited = time.monotonic() - started
    assert waited < HEADER_TIMEOUT_SECONDS + 15, waited


def test_a_keep_alive_connection_still_serves_many_requests(shared_server: ServerProcess) -> None:
    with _connect(shared_server, 5) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while not answer.endswith(b"}"):
                answer += sock.recv(1000)
            assert answer.startswith(b"HTTP/1.1 200 ") and b'"ok"' in answer


def test_a_request_head_over_the_limit_is_refused_and_closed(shared_server: ServerProcess) -> None:
    padding = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + padding * (MAX_HEAD_BYTES // 1000)
    with _connect(shared_server, 5) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)  # never finished: the limit, not the deadline, must answer
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close" in answer.lower() and b'"field":"headers"' in answer


def test_chunked_trailers_over_the_head_limit_are_refused_and_closed(
    shared_server: ServerProcess,
) -> None:
    """Trailers after a chunked body are headers too: past the head limit they are a 431 that
    closes the connection (llhttp collects them without bound: 200 MB took 230 MB of server
    memory, from a client that needs no token)."""
    padding = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    request = b"POST /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    with _connect(shared_server, 5) as sock:
        sock.sendall(request)  # the head and the last chunk's size line, read on their own
        time.sleep(0.2)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(padding * (MAX_HEAD_BYTES // 1000 + 1))  # never ends
        answer = _read_all(sock)
    assert b"HTTP/1.1 431 " in answer, answer[:300]
    assert b'"field":"headers"' in answer


def test_a_head_just_under_the_limit_is_served(shared_server: ServerProcess) -> None:
    padding = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + padding * (MAX_HEAD_BYTES // 1100)
    with _connect(shared_server, 5) as sock:
        sock.sendall(head + b"\r\n")
        answer = b""
        while not answer.endswith(b"}"):
            answer += sock.recv(1000)
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_chunked_body_is_decoded_for_the_app(shared_server: ServerProcess) -> None:
    token = shared_server.admin_token
    assert token is not None
    body = b'{"display_name": "sent in two chunks", "description": "chunked body"}'
    request = (
        b"POST /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (token.encode(), 10, body[:10], len(body) - 10, body[10:])
    )
    with _connect(shared_server, 5) as sock:
        sock.sendall(request)
        answer = _read_all(sock)
    assert answer.split(b" ", 2)[1] in (b"200", b"201") and b"sent in two chunks" in answer


def test_connections_accepted_from_a_plain_listening_socket_have_nagle_off() -> None:
    # `mltrail server --workers N` hands uvicorn a socket from socket.create_server (protocol
    # number 0), on whose connections asyncio leaves Nagle on: every small answer then waited
    # for the client's delayed ACK (~40 ms). The protocol turns it off itself.
    import asyncio

    import uvicorn
    from uvicorn.server import ServerState

    from mltrail.server.http_protocol import GuardedHttpToolsProtocol

    async def app(scope, receive, send) -> None:  # never reached: no request is sent
        raise AssertionError(scope)

    async def accepted_nodelay() -> int:
        config = uvicorn.Config(app, lifespan="off")
        config.load()
        state = ServerState()
        made: list[GuardedHttpToolsProtocol] = []

        def factory() -> GuardedHttpToolsProtocol:
            made.append(GuardedHttpToolsProtocol(config, state, {}))
            return made[-1]

        listening = socket.create_server(("127.0.0.1", 0))
        assert listening.proto == 0  # as --workers makes it
        server = await asyncio.get_running_loop().create_server(factory, sock=listening)
        _, writer = await asyncio.open_connection(*listening.getsockname())
        for _ in range(200):
            if made:
                break
            await asyncio.sleep(0.01)
        accepted = made[0].transport.get_extra_info("socket")
        nodelay = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        made[0].transport.close()
        server.close()
        await server.wait_closed()
        return nodelay

    assert asyncio.run(accepted_nodelay()) != 0
