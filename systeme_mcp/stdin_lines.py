"""The stdio transport's stdin, read by a daemon thread, so that Ctrl-C stops the server at once.

The SDK's `stdio_server` reads stdin in an anyio worker thread that cancellation has to wait for: in a terminal,
Ctrl-C cancelled the server, which then waited for a line that never came (a second Ctrl-C only raised a
traceback, and the interpreter still waited for the thread at exit). Here one daemon thread does the blocking
reads and hands each line to the event loop; the server awaits a memory stream, which cancellation interrupts
at once, and the process can exit while a read is still blocked. The thread uses `os.read` on a private
duplicate of fd 0 (no buffered file object, whose lock an interpreter shutdown would otherwise wait for), and
while serving fd 0 itself points at the null device, as the SDK does, so nothing else can take the wire's bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Iterator

import anyio

READ_CHUNK = 64 * 1024  # bytes per read


def lines(fd: int) -> Iterator[str]:
    """The lines read from `fd` until end of file, each with its newline (the last one may have none); bytes
    that are not UTF-8 become U+FFFD, as the SDK decodes them. A read error (a hung-up terminal) ends it."""
    pending = bytearray()
    while True:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except OSError:
            chunk = b""
        if not chunk:
            break
        scan, start = len(pending), 0
        pending += chunk
        while (end := pending.find(b"\n", scan)) != -1:
            yield pending[start : end + 1].decode("utf-8", "replace")
            start = scan = end + 1
        del pending[:start]
    if pending:
        yield pending.decode("utf-8", "replace")


class StdinLines:
    """An async iterator of stdin lines (what `stdio_server(stdin=...)` iterates). The reading thread starts at
    the first `__anext__`; it waits for each line to be taken before reading on (no buffering beyond one line)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._send, self._receive = anyio.create_memory_object_stream[str](0)
        self._started = False

    def __aiter__(self) -> StdinLines:
        return self

    async def __anext__(self) -> str:
        if not self._started:
            self._started = True
            loop = asyncio.get_running_loop()
            threading.Thread(target=self._pump, args=(loop,), name="systeme-mcp stdin", daemon=True).start()
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        for line in lines(self._fd):
            send = self._send.send(line)
            try:
                asyncio.run_coroutine_threadsafe(send, loop).result()
            except RuntimeError:  # the loop is closed: the server is gone
                send.close()
                return
            except Exception:  # the send was cancelled at shutdown, or the stream closed: nobody wants the rest
                return
        with contextlib.suppress(RuntimeError):  # end of file: the server sees the stream end
            loop.call_soon_threadsafe(self._send.close)


@contextlib.contextmanager
def claimed_stdin() -> Iterator[int]:
    """A private duplicate of fd 0 to read the wire from, with fd 0 pointed at the null device meanwhile (POSIX;
    on Windows fd 0 itself). The duplicate is never closed: the reading thread may still be blocked on it."""
    if sys.platform == "win32":  # pragma: no cover - the handle rebinding is the SDK's business there
        yield 0
        return
    try:
        wire = os.dup(0)
        null = os.open(os.devnull, os.O_RDONLY)
    except OSError:  # no usable stdin: reading fd 0 ends at once
        yield 0
        return
    os.set_inheritable(wire, False)
    os.dup2(null, 0)
    os.close(null)
    try:
        yield wire
    finally:
        os.dup2(wire, 0)
