"""Frames, payloads and descriptor passing between the runner and the fork server."""

from __future__ import annotations

import os
import select
import socket
import threading

import pytest

from flyte_decl.runtime.wire import (
    Connection,
    dump_payload,
    load_payload,
    oversize_message,
    recv_message,
    send_message,
)


def test_the_oversize_message_names_task_direction_size_and_limit() -> None:
    size = len(dump_payload("x" * 2048))
    assert oversize_message("env2.square", "outputs", size, 1024) == (
        "env2.square outputs are 2.0Ki, over max_inline_io_bytes 1Ki"
    )


def test_blocking_and_buffered_ends_understand_each_other() -> None:
    ours, theirs = socket.socketpair()
    conn = Connection(ours)
    big = dump_payload(b"z" * (4 * 2**20))  # larger than the socket buffer: sent in parts
    conn.send(("inputs", big))
    assert conn.wants_write
    received: list[tuple[str, bytes]] = []
    reader = threading.Thread(target=lambda: received.append(recv_message(theirs)))
    reader.start()
    while conn.wants_write:
        select.select([], [ours], [])
        conn.flush()
    reader.join()
    assert load_payload(received[0][1]) == b"z" * (4 * 2**20)
    send_message(theirs, ("one",))
    send_message(theirs, ("two",))
    theirs.close()
    messages = []
    while not conn.closed:
        messages += conn.receive()
    assert messages == [("one",), ("two",)]
    conn.close()


def test_descriptors_travel_with_their_message_and_are_closed_once_sent() -> None:
    ours, theirs = socket.socketpair()
    sender, receiver = Connection(ours), Connection(theirs)
    read_end, write_end = os.pipe()
    sender.send(("launch", 1), [write_end])
    with pytest.raises(OSError):
        os.fstat(write_end)  # the sender's copy is gone
    (message,) = receiver.receive()
    passed = receiver.fds.popleft()
    assert message == ("launch", 1)
    os.write(passed, b"hi")
    os.close(passed)
    assert os.read(read_end, 2) == b"hi"
    os.close(read_end)
    sender.close()
    receiver.close()
