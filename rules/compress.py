"""Layer compression whose bytes are a function of the tar bytes alone.

Each compression has one algorithm, one level and one framing, and its input is cut into
blocks of exactly ``BLOCK`` bytes whatever sizes the tar is written in (ISA-L gives other
bytes for the same data cut otherwise), so the same tar gives the same blob wherever the
pinned packages give the same bytes:

- ``gzip``: one gzip member (RFC 1952) whose header is written here, not by a library: no
  name, no comment, MTIME 0, XFL 0, OS 255 ("unknown"). Its DEFLATE stream is made the way
  pigz makes it: each block is compressed on its own, primed with the 32 KiB before it and
  ended with a sync flush, and an empty final block closes the stream. Blocks are
  compressed by ``workers()`` threads at once (the compressors release the GIL); the bytes
  do not depend on how many. The compressor is ``GZIP_ENGINES[GZIP_ENGINE]``.
- ``zstd``: one Zstandard frame from the ``zstandard`` package (which bundles libzstd) at
  ``ZSTD_LEVEL``, with a checksum, without the content size or a dictionary id, in zstd's
  multi-threaded mode, whose bytes are the same for any number of workers from one up
  (single-threaded mode, which gives other bytes, is never used).

Where the bytes can still differ. ISA-L (python-isal, the default gzip engine) picks its code
from the CPU at run time. At levels 0 to 2 its SSE4.2, AVX and AVX2 code give the same bytes
(at levels 1 and 2 its AVX-512 code differs only in writing out the Huffman codes already
chosen), so every x86-64 CPU with SSE4.2 gives one output; x86-64 CPUs without SSE4.2
(ISA-L's portable C code; also QEMU's default ``qemu64`` model) give a second, and aarch64 a
third. Level 3 also differs between AVX2 and older CPUs, so it is not used. The ``zlib``
engine gives the same bytes on every CPU, but depends on the host's zlib library (a distro
with zlib-ng-compat differs) and is about 3-5 times slower. zstd gives the same bytes on
every CPU tried: x86-64 with and without SSE4.2 or AVX2, and aarch64.
"""

from __future__ import annotations

import importlib
import os
import struct
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import MappingProxyType, ModuleType
from typing import Protocol

COMPRESSIONS = ("none", "gzip", "zstd")
BLOCK = 1 << 20  # compressors get exactly this many bytes at a time (the last block fewer)
WINDOW = 1 << 15  # DEFLATE's window: each gzip block is primed with this much history
# engine -> (its module, imported when a layer is compressed: not by a no-op run, nor by
# `doit list`; and its level)
GZIP_ENGINES: Mapping[str, tuple[str, int]] = MappingProxyType(
    {"isal": ("isal.isal_zlib", 2), "zlib": ("zlib", 1)}
)
GZIP_ENGINE = "isal"  # "zlib" for gzip bytes that do not depend on the CPU (see above)
GZIP_MEM_LEVEL = 8  # sizes ISA-L's buffers, which changes its bytes: keep it fixed
ZSTD_LEVEL = 3
# magic, CM=8 (deflate), FLG=0, MTIME=0, XFL=0, OS=255 (unknown)
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
GZIP_END = b"\x03\x00"  # an empty final block with fixed codes: BFINAL=1, BTYPE=01, EOB

Data = bytes | bytearray | memoryview


def workers() -> int:
    """Compression threads for one layer: the bytes never depend on this number."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(usable, 4))


class Out(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


class Stream:
    """Takes tar bytes in any sizes and writes the compressed blob to ``out``.

    The bytes are gathered into blocks of exactly ``BLOCK`` bytes, each in a buffer of its
    own that ``block`` may keep (a thread may still be reading it). ``close`` ends the
    stream; ``abort`` drops it, and stops its threads, after an error.
    """

    def __init__(self, out: Out) -> None:
        self.out = out
        self._buffer = bytearray(BLOCK)
        self._filled = 0

    def write(self, data: Data) -> None:
        view = memoryview(data).cast("B")
        while view:
            count = min(BLOCK - self._filled, len(view))
            self._buffer[self._filled : self._filled + count] = view[:count]
            self._filled += count
            view = view[count:]
            if self._filled == BLOCK:
                self._send()

    def close(self) -> None:
        if self._filled:
            self._send()
        self.end()

    def abort(self) -> None:
        """Release what the stream holds; nothing more is written."""

    def block(self, data: memoryview) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError

    def _send(self) -> None:
        full, self._buffer = self._buffer, bytearray(BLOCK)
        count, self._filled = self._filled, 0
        self.block(memoryview(full)[:count])


def _deflate(engine: tuple[ModuleType, int], data: memoryview, history: bytes) -> bytes:
    """One block as raw DEFLATE primed with ``history``, ended by a sync flush."""
    module, level = engine
    args = (level, module.DEFLATED, -15, GZIP_MEM_LEVEL, module.Z_DEFAULT_STRATEGY)
    deflate = module.compressobj(*args, history) if history else module.compressobj(*args)
    out: bytes = deflate.compress(data) + deflate.flush(module.Z_SYNC_FLUSH)
    return out


class Gzip(Stream):
    """One gzip member of independently compressed, history-primed DEFLATE blocks."""

    def __init__(self, out: Out) -> None:
        super().__init__(out)
        module, level = GZIP_ENGINES[GZIP_ENGINE]
        self._engine = (importlib.import_module(module), level)
        self._crc32 = importlib.import_module("isal.isal_zlib").crc32  # zlib's, only faster
        self._threads = workers()
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._history = b""
        self._crc = 0
        self._size = 0
        out.write(GZIP_HEADER)

    def block(self, data: memoryview) -> None:
        self._crc = self._crc32(data, self._crc)
        self._size += len(data)
        while len(self._pending) >= self._threads:  # at most one block per thread at a time
            self.out.write(self._pending.popleft().result())
        self._pending.append(self._pool.submit(_deflate, self._engine, data, self._history))
        self._history = bytes(data[-WINDOW:])

    def end(self) -> None:
        while self._pending:
            self.out.write(self._pending.popleft().result())
        self._pool.shutdown()
        self.out.write(GZIP_END + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))

    def abort(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        self._pending.clear()


class Zstd(Stream):
    """One zstd frame: checksum, no content size, no dictionary id, multi-threaded mode."""

    def __init__(self, out: Out) -> None:
        super().__init__(out)
        import zstandard

        params = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL,
            write_checksum=True,
            write_content_size=False,
            write_dict_id=False,
            threads=workers(),
        )
        self._zstd = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def block(self, data: memoryview) -> None:
        out = self._zstd.compress(data)
        if out:
            self.out.write(out)

    def end(self) -> None:
        self.out.write(self._zstd.flush())


def check(compression: str) -> None:
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown layer compression {compression!r}: use one of {COMPRESSIONS}")


def compressing(compression: str, out: Out) -> Stream | None:
    """A stream that compresses into ``out``, or None when the layer is stored as it is."""
    check(compression)
    if compression == "gzip":
        return Gzip(out)
    if compression == "zstd":
        return Zstd(out)
    return None
