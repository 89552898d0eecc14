"""Reading Zstandard (.zst) data with the optional ``zstandard`` package (``pip install conflictbrief[zstd]``).

A stream of one or more frames (``cat a.zst b.zst``) is read frame after frame; one that ends inside a frame
(a download cut short) raises EOFError at its end, as a truncated gzip stream does, instead of ending quietly
as ``zstandard``'s own stream reader does; corrupt data raises ValueError. Both are among what the batch job
turns into an error record after the records read up to there.
"""
from __future__ import annotations

import io

INSTALL = "reading Zstandard (.zst) data needs the zstandard package: pip install zstandard"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("zstandard") is not None


def _module():
    try:
        import zstandard
    except ImportError:
        raise ImportError(INSTALL) from None
    return zstandard


class _Frames(io.RawIOBase):
    """The decompressed bytes of a binary stream of Zstandard frames."""

    # 256 bytes of input at a time, so that what one call decompresses to stays small: a zstd block of a few
    # bytes can stand for 128 kB. A 6 kB stream of 200 MB of zeros peaks at 16 MB of memory read so (200 MB in
    # 8 kB pieces); a 37 MB JSON Lines file reads in 0.19 s, as fast as its gzip twin (scratch, 2026-12-06).
    def __init__(self, raw, close_raw: bool, chunk: int = 256):
        self._zstd = _module()
        self._raw, self._close_raw, self._chunk = raw, close_raw, chunk
        self._obj, self._pending, self._at, self._done = None, b"", 0, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._at == len(self._pending) and not self._done:
            self._fill()
        n = min(len(buffer), len(self._pending) - self._at)
        buffer[:n] = memoryview(self._pending)[self._at:self._at + n]
        self._at += n
        return n

    def _fill(self) -> None:
        data = self._raw.read(self._chunk)
        if not data:
            if self._obj is not None and not self._obj.eof:
                raise EOFError("Zstandard data ended inside a frame (the file is cut short)")
            self._done = True
            return
        out = []
        while data:
            if self._obj is None or self._obj.eof:
                self._obj = self._zstd.ZstdDecompressor().decompressobj()
            try:
                out.append(self._obj.decompress(data))
            except self._zstd.ZstdError as e:
                raise ValueError(f"not valid Zstandard data ({e})") from None
            data = self._obj.unused_data if self._obj.eof else b""
        self._pending, self._at = b"".join(out), 0

    def close(self) -> None:
        if not self.closed and self._close_raw:
            self._raw.close()
        super().close()


def open_zstd(source, mode: str = "rb") -> io.BufferedReader:
    """A buffered binary reader of a .zst file (a path) or of a binary file object."""
    if mode != "rb":
        raise ValueError("Zstandard data is only read here")
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        return io.BufferedReader(_Frames(open(source, "rb"), close_raw=True))
    return io.BufferedReader(_Frames(source, close_raw=False))


def decompress(data: bytes) -> bytes:
    """All the frames of ``data`` decompressed (EOFError: cut short; ValueError: corrupt)."""
    with open_zstd(io.BytesIO(data)) as f:
        return f.read()
