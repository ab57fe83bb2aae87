"""Wire format between the runner, the fork servers and the actions.

Every message is a pickled Python value in a frame: an 8-byte big-endian length, then the pickle.
User values (inputs and outputs) are pickled separately into ``bytes`` *payloads* that travel inside
messages untouched, so the runner can check their size against ``max_inline_io_bytes`` and forward
a child's outputs to its parent without ever unpickling user objects.

Blocking helpers serve the action side (one socket, one caller); `Connection` serves the event
loops of the runner and the fork server: non-blocking, buffered both ways, and able to pass file
descriptors alongside a message.

Example::

    a, b = socket.socketpair()
    send_message(a, ("call", 1, "env2.square", dump_payload(((3,), {}))))
    recv_message(b)     # ("call", 1, "env2.square", b"...")
"""

from __future__ import annotations

import array
import contextlib
import io
import os
import pickle
import socket
import struct
import sys
from collections import deque
from typing import Any

from flyte_decl.quantity import format_bytes
from flyte_decl.runtime import datetimes

_HEADER = struct.Struct(">Q")
_READ_SIZE = 256 * 1024
# One sendmsg carries at most one launch's descriptors; room for a few more costs nothing.
_MAX_FDS = 8


def dump_payload(value: object) -> bytes:
    """Serialize a user value (inputs or outputs) for the trip across a process boundary.

    Datetimes in it arrive UTC-aware, as Flyte carries them (`flyte_decl.runtime.datetimes`).
    """
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    if datetimes.MARK in payload:  # rare: only then walk the value
        payload = pickle.dumps(datetimes.as_flyte_carries(value), protocol=pickle.HIGHEST_PROTOCOL)
    return payload


# Set for every action of a run started from a script run as __main__ (`python prog.py`): the module
# name the script has in the fork servers, which import it by its file name.
ENV_MAIN_MODULE = "FLYTE_DECL_MAIN_MODULE"


def load_payload(payload: bytes) -> Any:
    """Inverse of `dump_payload`.

    Classes defined in a script run as `__main__` cross the boundary both ways: in an action they are
    found in the module the fork server imported the script as (`FLYTE_DECL_MAIN_MODULE`), and back in
    the script's own process in `__main__`.
    """
    renames = _main_renames()
    if not renames:
        return pickle.loads(payload)
    return _Renaming(io.BytesIO(payload), renames).load()


def _main_renames() -> dict[str, str]:
    in_action = os.environ.get(ENV_MAIN_MODULE)
    if in_action:
        return {"__main__": in_action}
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file:
        stem = os.path.splitext(os.path.basename(main_file))[0]
        if stem not in sys.modules:
            return {stem: "__main__"}
    return {}


class _Renaming(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, renames: dict[str, str]) -> None:
        super().__init__(file)
        self._renames = renames

    def find_class(self, module: str, name: str) -> Any:
        renamed = self._renames.get(module)
        if (
            renamed is not None
            and renamed in sys.modules
            and hasattr(sys.modules[renamed], name.split(".")[0])
        ):
            module = renamed
        return super().find_class(module, name)


def frame(message: object) -> bytes:
    """One message as bytes on the wire: length prefix and pickle."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def oversize_message(task: str, direction: str, size: int, limit: int) -> str:
    """The failure message for an input or output over the task's inline I/O limit.

    >>> oversize_message("env2.square", "outputs", 2069, 1024)
    'env2.square outputs are 2.0Ki, over max_inline_io_bytes 1Ki'
    """
    return f"{task} {direction} are {format_bytes(size)}, over max_inline_io_bytes {format_bytes(limit)}"


def send_message(sock: socket.socket, message: object) -> None:
    """Send one message on a blocking socket."""
    sock.sendall(frame(message))


def recv_message(sock: socket.socket) -> Any:
    """Receive one message from a blocking socket; EOFError when the peer has closed it."""
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    return pickle.loads(_recv_exactly(sock, size))


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    view = memoryview(bytearray(size))
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if not count:
            raise EOFError("connection closed")
        got += count
    return view.tobytes()


class Connection:
    """A non-blocking message stream over a Unix socket, for use from a selector loop.

    `send` never blocks: what the socket does not take now is kept and written by `flush`
    when the loop sees the socket writable (`wants_write`). `receive` returns every complete
    message read so far; descriptors that arrived with them queue up in `fds` in order.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fds: deque[int] = deque()
        self.closed = False  # the peer closed its end (EOF seen)
        self._inbox = bytearray()
        self._outbox: deque[tuple[memoryview, list[int]]] = deque()

    def fileno(self) -> int:
        """The socket's descriptor, so a Connection can be registered with a selector."""
        return self.sock.fileno()

    @property
    def wants_write(self) -> bool:
        """Whether queued bytes are waiting for the socket to become writable."""
        return bool(self._outbox)

    def send(self, message: object, fds: list[int] | None = None, *, flush: bool = True) -> None:
        """Queue a message and write as much as the socket takes (with `flush=False`, wait for `flush`).

        `fds` travel with the message; this connection owns them from now on and closes its copies
        once they are sent (or when it is closed).
        """
        self._outbox.append((memoryview(frame(message)), fds or []))
        if flush:
            self.flush()

    def flush(self) -> None:
        """Write queued bytes until the socket would block; a vanished peer drops them."""
        if len(self._outbox) > 1 and not any(fds for _data, fds in self._outbox):
            # One write for a batch of small messages rather than one each.
            self._outbox = deque([(memoryview(b"".join(data for data, _fds in self._outbox)), [])])
        while self._outbox:
            data, fds = self._outbox[0]
            try:
                if fds:
                    sent = self.sock.sendmsg(
                        [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                    )
                else:
                    sent = self.sock.send(data)
            except BlockingIOError:
                return
            except (BrokenPipeError, ConnectionResetError):
                self._drop_outbox()
                return
            for fd in fds:
                _close_quietly(fd)
            if sent == len(data):
                self._outbox.popleft()
            else:
                # The descriptors went with the first byte; the rest of the frame goes without them.
                self._outbox[0] = (data[sent:], [])

    def receive(self) -> list[Any]:
        """Read what is available and return the complete messages; sets `closed` on EOF."""
        while not self.closed:
            try:
                # CLOEXEC: descriptors meant for one action must not leak into a task's exec'd programs.
                data, ancillary, _flags, _addr = self.sock.recvmsg(
                    _READ_SIZE, socket.CMSG_SPACE(_MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
                )
            except BlockingIOError:
                break
            except ConnectionResetError:
                data, ancillary = b"", []
            for level, kind, raw in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(raw[: len(raw) - len(raw) % fds.itemsize])
                    self.fds.extend(fds)
            if not data:
                self.closed = True
            self._inbox += data
        return self._parse()

    def _parse(self) -> list[Any]:
        messages = []
        start = 0
        inbox = self._inbox
        with memoryview(inbox) as view:
            while len(inbox) - start >= _HEADER.size:
                (size,) = _HEADER.unpack_from(inbox, start)
                end = start + _HEADER.size + size
                if end > len(inbox):
                    break
                messages.append(pickle.loads(view[start + _HEADER.size : end]))
                start = end
        if start:
            del inbox[:start]
        return messages

    def close(self) -> None:
        """Close the socket, unsent descriptors and received descriptors nobody claimed."""
        self._drop_outbox()
        while self.fds:
            _close_quietly(self.fds.popleft())
        self.sock.close()

    def _drop_outbox(self) -> None:
        for _data, fds in self._outbox:
            for fd in fds:
                _close_quietly(fd)
        self._outbox.clear()


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
