"""The batch job over article dumps: `conflictbrief brief INPUT... -o OUT.jsonl`.

* Inputs: .jsonl/.json/.csv/.tsv/.xlsx/.xls/.parquet/.txt/.html files, directories of them (recursively, sorted), .gz,
  .bz2, .xz or .zst of any (.zst with the zstandard package), and .zip or tar archives of them (read as a
  folder is; a tar in one pass, in its own order). A saved web page (.html, .htm) is one article: its menus,
  footers and boxes are left out (page.py).
  ``-`` is JSON Lines on standard input; ``-o -`` writes JSON Lines to standard output.
* Exactly one output line per input record, in input order. A bad record becomes ``{"id", "source",
  "error"}`` and the job goes on. With ``--group-by FIELD``, one line per event: the records that name the same
  event are analysed together as its reports (``Events``), and each is named in its line's ``members``.
* Resume: records are appended one whole line at a time and flushed; after a crash (kill -9 included) the
  rerun drops a torn last line, checks that the inputs are the same, and skips the records already written.
"""
from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import functools
import gzip
import hashlib
import io
import itertools
import json
import lzma
import os
import sqlite3
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from struct import error as struct_error
from typing import Iterator

from . import zstd
from .clean import REPORT_JOIN, REPORTS_FIELD, clean, compression_of, compression_suffix, text_chars
from .labelstudio import entity_regions, labelstudio_config, least_score, model_version, textarea_region
from .page import page_charset

TEXT_FIELDS = ("text", "article", "content", "body", "article_content", "doc", "story", "reports")
ID_FIELDS = ("id", "doc_id", "article_id", "uuid", "url")
SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".xlsx", ".xls", ".parquet", ".txt", ".html", ".htm")
XLSX_INSTALL = "reading Excel (.xlsx) files needs the openpyxl package: pip install openpyxl"
XLS_INSTALL = "reading Excel 97-2003 (.xls) files needs the xlrd package: pip install xlrd"
WORKBOOKS = {".xlsx": ("openpyxl", XLSX_INSTALL), ".xls": ("xlrd", XLS_INSTALL)}
_SAME_AS = {".ndjson": ".jsonl"}  # another name for a kind
PAGES = (".html", ".htm")  # saved web pages; a .txt file or a page is one article
STDIN = Path("-")  # the input "-": JSON Lines from standard input (told apart by identity: "./-" is a file)
STDOUT = "-"  # the output "-o -": JSON Lines to standard output
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
              (codecs.BOM_UTF16_BE, "utf-16"))
# C0 control bytes that plain text does not hold (tab, line feed, form feed and carriage return are text)
# and the end-of-file mark (0x1A) that old DOS text files carry
_BINARY = bytes(b for b in range(0x20) if b not in (0x09, 0x0A, 0x0C, 0x0D, 0x1A))


def _cp1252_fallback(error: UnicodeDecodeError):
    """Decoding error handler: the bytes that are not UTF-8 are read as Windows-1252 (Latin-1 for the five
    bytes that Windows-1252 leaves undefined). Valid UTF-8 around them stays as it is, so a UTF-8 file with one
    pasted Windows-1252 quote keeps its other characters."""
    bad = error.object[error.start:error.end]
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in bad), error.end


codecs.register_error("conflictbrief.cp1252", _cp1252_fallback)


def check_encoding(encoding: str) -> str:
    """``encoding`` as given ('auto', 'utf-8' or a Python codec name); BatchError for a name Python lacks."""
    if encoding == "auto":
        return encoding
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise BatchError(f"--encoding {encoding!r}: no such codec; use auto, utf-8 or a Python codec name such as "
                         "latin-1 or cp1252") from None
    return encoding


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _byte_lines(encoding: str) -> bool:
    """Whether lines of this encoding end at the byte b'\n' (not so in UTF-16/32)."""
    return "\n".encode(encoding) == b"\n"


def _wide_bom(head: bytes) -> str | None:
    return next((name for bom, name in _WIDE_BOMS if head.startswith(bom)), None)


def decode_text(data: bytes, encoding: str = "auto") -> tuple[str, str | None]:
    """(text, note) for the bytes of one record (a whole .txt or .json file, or one line of a .jsonl).

    ``note`` is None, or says that bytes which are not UTF-8 were read as Windows-1252 (``auto``). Raises
    ValueError with the reason when the bytes cannot be text: not in ``encoding``, or (``auto``) not UTF-8 and
    holding control bytes, which Windows-1252 text does not (a binary file)."""
    if encoding == "auto":
        wide = _wide_bom(data[:4])
        if wide:
            try:
                return data.decode(wide), None
            except UnicodeDecodeError as e:
                raise ValueError(f"not {wide} after its byte-order mark (byte {e.start})") from None
        data = data.removeprefix(codecs.BOM_UTF8)
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError as e:
            first = f"byte {e.start}: {data[e.start:e.start + 1]!r}"
            if len(data.translate(None, _BINARY)) != len(data):  # (a C loop, not one per byte in Python)
                raise ValueError(f"not UTF-8 ({first}) and holds control bytes: binary data, not text") from None
            return (data.decode("utf-8", errors="conflictbrief.cp1252"),
                    f"not UTF-8: bytes read as Windows-1252 (first at {first})")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        name = "UTF-8" if _is_utf8(encoding) else encoding
        raise ValueError(f"not {name} (byte {e.start}: {data[e.start:e.start + 1]!r})") from None
    return text.removeprefix("\ufeff"), None


class BatchError(RuntimeError):
    """A problem with the job as a whole (not one record): bad arguments, unusable output file."""


@dataclass
class Record:
    id: str
    source: str  # file:line / file:row / file
    text: object = None
    error: str | None = None
    notes: tuple[str, ...] = ()  # what the reader did to the text (a fallback decoding); go to the result's warnings
    group: str | None = None  # --group-by: the record's event key
    extra: dict | None = None  # fields written into its output line besides the result's (an event's members)


def _decode_page(data: bytes) -> tuple[str, str | None]:
    """decode_text for a saved web page under auto: a UTF-16/32 byte-order mark decides; else bytes that are
    not UTF-8 are read in the charset the page declares (``page.page_charset``), and failing that with the
    Windows-1252 guess of any text."""
    declared = None if _wide_bom(data[:4]) else page_charset(data)
    if declared:
        try:
            return data.decode(declared), None
        except UnicodeDecodeError:
            pass
    return decode_text(data)


# compressed inputs, by name (files) or by their first bytes (standard input)
COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zst": zstd.open_zstd}
_STREAMS = {"gzip": lambda f: gzip.GzipFile(fileobj=f, mode="rb"), "bzip2": bz2.BZ2File, "xz": lzma.LZMAFile,
            "zstd": zstd.open_zstd}
_OF_THEM = "or .gz, .bz2, .xz, .zst of them, or a .zip or .tar(.gz) archive of them"
ZIP = ".zip"
TAR = ".tar"  # a tar archive, compressed or not
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst")
# what a file that breaks off or is corrupt raises while it is read (truncated .gz, corrupt .xz or parquet; a
# zip archive that is none, or a member whose CRC is wrong; a tar archive that is none or is cut short);
# ImportError: Zstandard data (in an archive, or on standard input) without the zstandard package (.zst files
# are checked before the job starts)
# (zlib.error: deflate data damaged inside a .gz, a .zip member or an .xlsx, not only cut short)
_BROKEN = (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error, zipfile.BadZipFile, tarfile.TarError,
           ImportError)
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclass(frozen=True)
class Member:
    """A file inside a .zip or tar input, named "ARCHIVE/MEMBER" in its records' ids and sources. ``opener``
    gives its bytes: a zip member is opened from the archive; a tar member is the stream the archive is read
    through (read once, in the archive's order) or, for the kinds read twice or with seeks (.json, .parquet),
    its bytes read into memory."""
    archive: Path
    member: str
    problem: str | None = None  # why it cannot be read (encrypted; a compression method zipfile lacks)
    opener: object = None

    @property
    def name(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{self.archive}/{self.member}"

    def open(self):
        return self.opener()


def _zip_member(archive: Path, info: zipfile.ZipInfo) -> Member:
    problem = ("encrypted (a password-protected archive): extract it first" if info.flag_bits & 0x1 else
               None if info.compress_type in _ZIP_METHODS else
               f"compressed with a method Python's zipfile cannot read (number {info.compress_type}): extract it "
               "first")
    # by its entry, not its name (an archive may hold two files of one name); the member keeps the archive's
    # file open while it is read
    return Member(archive, info.filename, problem, lambda: zipfile.ZipFile(archive).open(info))


def _compression(path: Path | Member) -> str | None:
    return compression_suffix(path.name) or None


def _kind(path: Path | Member) -> str | None:
    name = path.name.lower()
    if not isinstance(path, Member):  # an archive inside an archive is not opened
        if name.endswith(ZIP):
            return ZIP
        if name.endswith(TAR_SUFFIXES):
            return TAR
    name = name.removesuffix(_compression(path) or "")
    kind = next((s for s in SUFFIXES if name.endswith(s)), None)
    return _SAME_AS.get(kind, kind)


def _skipped(name: str) -> bool:
    """Files a folder or an archive holds that are no one's data: .DS_Store, .git/, macOS's __MACOSX/. A "./"
    before a member's name (``tar cf dump.tar .`` writes one before every name) is no hidden folder."""
    return any(part.startswith(".") and part not in (".", "..") or part == "__MACOSX"
               for part in name.replace("\\", "/").split("/"))


def check_stdin(inputs: list[str]) -> None:
    """An input "-" is standard input, read once, as JSON Lines: a BatchError when it is named twice, is a
    terminal (the command would wait for typing), or is Zstandard data without the zstandard package (its first
    bytes are looked at, not read; the command line checks all this before the models load)."""
    if inputs.count("-") > 1:
        raise BatchError("-: standard input is named twice; it can be read once")
    if "-" in inputs and (sys.stdin is None or sys.stdin.isatty()):
        raise BatchError(f"-: standard input is {'closed' if sys.stdin is None else 'a terminal'}; pipe JSON Lines "
                         "into it (zcat dump.jsonl.gz | conflictbrief brief - -o out.jsonl)")
    stream = getattr(sys.stdin, "buffer", None) if "-" in inputs else None
    if hasattr(stream, "peek") and not zstd.available() and compression_of(stream.peek(64)[:64]) == "zstd":
        raise BatchError(f"-: standard input is Zstandard data; {zstd.INSTALL} (or decompress it in the pipe: "
                         "zstd -dc FILE | conflictbrief brief - -o out.jsonl)")


def expand_inputs(inputs: list[str], exclude: tuple[Path, ...] = (), log=None) -> list[Path]:
    """Input files in a stable order; ``exclude`` (the job's own output files) is never read as input. Files
    of a folder that are not of a type read here (.xml, .pdf, .docx ...) are named through ``log``: their
    articles are not in the output, and the user should know."""
    skip = {p.resolve() for p in exclude}
    files = []
    for item in inputs:
        if item == "-":
            check_stdin(inputs)
            files.append(STDIN)
            continue
        path = Path(item)
        if path.is_dir():
            found, other = [], []
            for p in sorted(p for p in path.rglob("*") if p.is_file() and p.resolve() not in skip):
                if _kind(p):
                    found.append(p)
                elif not _skipped(p.relative_to(path).as_posix()):
                    other.append(p)
            if not found:
                raise BatchError(f"{path}: directory holds no {'/'.join(SUFFIXES)} files ({_OF_THEM})"
                                 + (f"; it has {len(other)} other file(s), e.g. {other[0].name}" if other else ""))
            if other and log:
                names = ", ".join(str(p.relative_to(path)) for p in other[:3]) + (", ..." if len(other) > 3 else "")
                log(f"warning: {path}: {len(other)} file(s) not read, not of a type read here "
                    f"({'/'.join(SUFFIXES)}, {_OF_THEM}): {names}")
            _check_packages(found)
            files.extend(found)
        elif path.is_file():
            if path.resolve() in skip:  # with --overwrite it would be emptied before it was read
                raise BatchError(f"{path} is both an input and the job's output: give another -o")
            if not _kind(path):
                raise BatchError(f"{path}: unsupported input type; use {', '.join(SUFFIXES)} {_OF_THEM}")
            _check_packages([path])
            files.append(path)
        else:
            raise BatchError(f"{path}: no such file or directory")
    return files


def _check_packages(files: list[Path]) -> None:
    """.zst, .xlsx and .xls inputs without the package that reads them, also as members of a .zip (whose names are
    at its end, read at once; a tar's are spread through it): a BatchError before the job starts, not an
    error per file."""
    members = []
    for p in files:
        if _kind(p) == ZIP:
            try:
                with zipfile.ZipFile(p) as z:
                    members += [Member(p, n) for n in z.namelist() if not n.endswith("/") and not _skipped(n)]
            except (OSError, zipfile.BadZipFile):  # the job says so, as an error record
                continue
    files = list(files) + members
    zst = next((p for p in files if _compression(p) == ".zst"), None)
    if zst and not zstd.available():
        raise BatchError(f"{zst}: {zstd.INSTALL} " + (
            f"(or unpack {zst.archive.name} and decompress its .zst files: zstd -d)" if isinstance(zst, Member)
            else f"(or pipe it in: zstd -dc {zst} | conflictbrief brief - -o out.jsonl)"))
    import importlib.util

    for kind, (package, install) in WORKBOOKS.items():
        book = next((p for p in files if _kind(p) == kind), None)
        if book and importlib.util.find_spec(package) is None:
            raise BatchError(f"{book}: {install} (or save the sheet as CSV)")


def _open_binary(path: Path | Member):
    compression = _compression(path)
    source = path.open() if isinstance(path, Member) else path
    if compression:
        return COMPRESSED[compression](source, "rb")  # (gzip, bz2 and lzma open a file object as a name)
    return source if isinstance(path, Member) else path.open("rb")


def _has_undecodable(text: str) -> int:
    """Index of the first byte that was not UTF-8 (decoded with surrogateescape), or -1."""
    return next((i for i, c in enumerate(text) if "\udc80" <= c <= "\udcff"), -1)


_MISSING = object()


def _noted(record: Record, note: str | None) -> Record:
    """``record`` with ``note`` among its notes (records that could be read only)."""
    if note is None or record.error is not None:
        return record
    return replace(record, notes=record.notes + (note,))


def _field(data: dict, name: str, default=None):
    """``data[name]``; a dotted name ("content.body") that is not itself a key walks nested objects."""
    if name in data:
        return data[name]
    value = data
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value if "." in name else default


class RecordReader:
    """Yields one Record per input record, with a stable id and the problem if it cannot be read."""

    def __init__(self, text_field: str | None = None, id_field: str | None = None, log=None, encoding: str = "auto",
                 group_field: str | None = None):
        self.text_field, self.id_field, self.group_field = text_field, id_field, group_field
        self.first_fields: list[str] | None = None  # --group-by: those of the first record without the field
        self.log = log or (lambda m: None)
        self.encoding = check_encoding(encoding)

    def _stream_encoding(self, f) -> str:
        """The encoding to read a line-based file (.jsonl, .csv) in: a UTF-16/32 byte-order mark decides under
        auto; else the one asked for (utf-8 under auto, whose bad bytes are then dealt with line by line)."""
        if self.encoding != "auto":
            return self.encoding
        return _wide_bom(f.peek(4)[:4]) or "utf-8"

    def read(self, files: list[Path]) -> Iterator[Record]:
        for path in files:
            kind = _kind(path)
            try:
                if path is STDIN:
                    yield from self._stdin()
                elif isinstance(path, Member) and path.problem:
                    yield Record(str(path), str(path), error=f"{path}: {path.problem}")
                elif kind == ".txt" or kind in PAGES:
                    yield self._txt(path, page=kind in PAGES)
                elif kind == ".jsonl":
                    yield from self._jsonl(path)
                elif kind == ".json":
                    yield from self._json(path)
                elif kind in (".csv", ".tsv"):
                    yield from self._csv(path, "\t" if kind == ".tsv" else ",")
                elif kind in WORKBOOKS:
                    yield from self._xlsx(path)
                elif kind == ZIP:
                    yield from self.read(self._members(path))
                elif kind == TAR:
                    yield from self._tar(path)
                else:
                    yield from self._parquet(path)
            except _BROKEN as e:
                # The file broke off (truncated .gz, corrupt parquet): one error record names it.
                name = _display(path)
                yield Record(f"{name}:unreadable", name, error=f"{name}: cannot read further: {e}")

    def count(self, files: list[Path]) -> int | None:
        """Number of records, for the progress bar (None when counting would be as slow as reading)."""
        total = 0
        for path in files:
            if path is STDIN:  # read once, as it comes
                return None
            kind = _kind(path)
            try:
                if kind == ".txt" or kind in PAGES or isinstance(path, Member) and path.problem:
                    total += 1
                elif kind == ZIP:
                    members = self.count(self._members(path, quiet=True))
                    if members is None:
                        return None
                    total += members
                elif kind == ".jsonl" or kind == ".json" and self._json_lines(path):
                    with _open_binary(path) as f:
                        if not _byte_lines(self._stream_encoding(f)):
                            return None
                        total += sum(1 for line in f if line.strip())
                elif kind == ".parquet":
                    import pyarrow.parquet as pq

                    total += pq.ParquetFile(_parquet_source(path)).metadata.num_rows
                else:  # CSV, and tar archives: counting them is reading them
                    return None
            except _BROKEN:  # a truncated .gz, a corrupt parquet: read() reports it
                return None
        return total

    def _members(self, path: Path, quiet: bool = False) -> list[Member]:
        """The files of a .zip archive that are read here, in name order, as a folder's are; the others are
        named through the log (unless ``quiet``). An archive that cannot be opened raises zipfile.BadZipFile,
        which ``read`` turns into one error record."""
        with zipfile.ZipFile(path) as archive:
            infos = sorted((i for i in archive.infolist() if not i.is_dir() and not _skipped(i.filename)),
                           key=lambda i: i.filename)
        found = [_zip_member(path, i) for i in infos]
        other = [m.member for m in found if _kind(m) is None]
        found = [m for m in found if _kind(m) is not None]
        if not quiet:
            self._not_read(path, other, bool(found))
        return found

    def _not_read(self, path: Path, other: list[str], found: bool) -> None:
        """Warnings for the files of an archive that are not read, and for an archive with none that is."""
        if other:
            shown = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
            self.log(f"warning: {path}: {len(other)} file(s) in the archive not read, not of a type read here "
                     f"({'/'.join(SUFFIXES)}, or .gz, .bz2, .xz, .zst of them): {shown}")
        if not found:
            self.log(f"warning: {path}: the archive holds no {'/'.join(SUFFIXES)} file")

    def _tar(self, path: Path) -> Iterator[Record]:
        """The records of a tar archive's files, read in one pass in the order the archive holds them (a
        compressed tar cannot be read out of order without decompressing it again for each file)."""
        other, found = [], []
        name = path.name.lower()
        opener = next((o for suffixes, o in _TAR_OPENERS if name.endswith(suffixes)), open)
        with opener(path, "rb") as raw:
            stream = _Tail(raw)
            yield from self._tar_members(path, tarfile.open(fileobj=stream, mode="r|"), other, found)
            if stream.tail.strip(b"\0"):  # tarfile ends quietly at a header cut short: records would be lost
                raise EOFError("the archive ends without the end-of-archive blocks of a tar file: it is cut short")
        self._not_read(path, other, bool(found))

    def _tar_members(self, path: Path, archive: tarfile.TarFile, other: list[str],
                     found: list[str]) -> Iterator[Record]:
        """The records of ``archive``'s files; the names of those read go into ``found``, the others'
        into ``other``."""
        with archive:
            for info in archive:
                if not info.isfile() or _skipped(info.name):
                    continue
                kind = _kind(Member(path, info.name))
                if kind is None:
                    other.append(info.name)
                    continue
                found.append(info.name)
                stream = archive.extractfile(info)
                if kind in (".json", ".parquet"):
                    data = stream.read()
                    member = Member(path, info.name, opener=lambda data=data: io.BufferedReader(io.BytesIO(data)))
                else:
                    member = Member(path, info.name, opener=lambda stream=stream: stream)
                yield from self.read([member])

    def _record(self, data, rid: str, source: str) -> Record:
        record = self._fields(data, rid, source)
        if not self.group_field or not isinstance(data, dict):
            return record
        value = _field(data, self.group_field)  # --group-by: the event the record belongs to, as text
        if isinstance(value, (dict, list)):
            return record if record.error else replace(
                record, text=None, error=f"{source}: field {self.group_field!r} is {type(value).__name__}, not an "
                                         f"event key (--group-by)")
        value = "" if value is None else str(value).strip()
        if not value and self.first_fields is None:  # (named when no record has the field: a misspelt name?)
            self.first_fields = sorted(data)[:10]
        return replace(record, group=value) if value else record

    def _fields(self, data, rid: str, source: str) -> Record:
        if not isinstance(data, dict):
            return Record(rid, source, error=f"{source}: expected an object with a text field, "
                                             f"got {type(data).__name__}")
        id_fields = [self.id_field] if self.id_field else [f for f in ID_FIELDS if f in data]
        if id_fields and _field(data, id_fields[0]) not in (None, ""):
            rid = str(_field(data, id_fields[0]))
        key = self._text_key(data)
        if key is None:
            return Record(rid, source, error=f"{source}: no text field ({self._wanted()}); fields are "
                                             f"{sorted(data)[:10]} - name it with --text-field (a.b for a nested "
                                             f"field)")
        value = _field(data, key)
        if value is None:
            return Record(rid, source, error=f"{source}: field {key!r} is null")
        # The reports of one event, briefed together (Batch job, "Reports of one event"): a list, in a field of
        # their own. A list in another field is more likely a scraper's paragraphs, which they are not.
        reports = isinstance(value, list) and key.rsplit(".", 1)[-1] == REPORTS_FIELD
        if isinstance(value, list) and not reports:
            return Record(rid, source, error=f"{source}: field {key!r} is a list, not text (join a list of "
                                             f"paragraphs first; the reports of one event go in a field named "
                                             f"{REPORTS_FIELD!r})")
        for n, piece in enumerate(value if reports else [value], 1):
            where = f"report {n} of field {key!r}" if reports else f"field {key!r}"
            if not isinstance(piece, str):
                return Record(rid, source, error=f"{source}: {where} is {type(piece).__name__}, not text")
            bad = _has_undecodable(piece)
            if bad >= 0:
                name = "UTF-8" if self.encoding == "auto" or _is_utf8(self.encoding) else self.encoding
                return Record(rid, source, error=f"{source}: {where} has bytes that are not {name} "
                                                 f"(character {bad})")
        if not any(piece.strip() for piece in (value if reports else [value])):
            return Record(rid, source, error=f"{source}: field {key!r} is empty")
        return Record(rid, source, value)

    def _txt(self, path: Path, page: bool = False) -> Record:
        """A .txt file, or (``page``) a saved web page, read in the charset its <meta> declares under auto."""
        with _open_binary(path) as f:
            data = f.read()
        try:
            text, note = _decode_page(data) if page and self.encoding == "auto" else decode_text(data, self.encoding)
        except ValueError as e:
            return Record(str(path), str(path), error=f"{path}: {e}")
        if not text.strip():
            return Record(str(path), str(path), error=f"{path}: file is empty")
        return Record(str(path), str(path), text, notes=(note,) if note else ())

    def _jsonl(self, path: Path) -> Iterator[Record]:
        with _open_binary(path) as f:
            yield from self._jsonl_lines(f, str(path))

    def _stdin(self) -> Iterator[Record]:
        """JSON Lines from standard input, compressed (gzip, bzip2, xz, zstd: told by its first bytes) or not."""
        f = sys.stdin.buffer
        if not hasattr(f, "peek"):
            f = io.BufferedReader(f)
        kind = compression_of(f.peek(64)[:64])
        if kind:
            f = io.BufferedReader(_STREAMS[kind](f))
        yield from self._jsonl_lines(f, _display(STDIN))

    def _jsonl_lines(self, f, name: str) -> Iterator[Record]:
        """The records of a binary JSON Lines stream ``f``; ``name`` is the file's in their ``source``."""
        encoding = self._stream_encoding(f)
        if _byte_lines(encoding):
            lines = ((raw.removeprefix(codecs.BOM_UTF8) if n == 1 else raw) for n, raw in enumerate(f, 1))
        else:  # UTF-16/32: decoded as a stream (a decoding error there ends the file with an error record)
            lines = io.TextIOWrapper(f, encoding=encoding, newline="")
        first = None
        for lineno, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            first = first or lineno
            source = f"{name}:{lineno}"
            note = None
            if isinstance(raw, bytes):  # a byte-oriented encoding (a byte-order mark is not data)
                try:
                    line, note = decode_text(raw, self.encoding)
                except ValueError as e:
                    yield Record(source, source, error=f"{source}: line is {e}")
                    continue
            else:
                line = raw.removeprefix("\ufeff")
            line = line.rstrip("\r\n")
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                hint = ("; standard input is read as JSON Lines, one {\"text\": ...} object a line: give a text "
                        "file by its name" if name == _display(STDIN) and lineno == first else "")
                yield Record(source, source, error=f"{source}: invalid JSON ({e.msg.removesuffix(' at')} at "
                                                  f"column {e.colno}){hint}")
                continue
            yield _noted(self._record(data, source, source), note)

    def _json(self, path: Path) -> Iterator[Record]:
        """A JSON document: one article object, a list of them, an object of them keyed by id (MUC-4 style:
        the key is the id), or an object with one list of them ({"articles": [...]}). A .json file that holds
        JSON Lines (one object per line, as many scrapers write) is read as .jsonl, a line at a time."""
        if self._json_lines(path):
            yield from self._jsonl(path)
            return
        with _open_binary(path) as f:
            raw = f.read()
        try:
            text, note = decode_text(raw, self.encoding)
        except ValueError as e:
            yield Record(str(path), str(path), error=f"{path}: {e}")
            return
        try:
            data = json.loads(text.removeprefix("\ufeff"))  # a byte-order mark is not data
        except json.JSONDecodeError as e:
            if e.msg == "Extra data" and text.lstrip("\ufeff \t\r\n")[:1] in ("{", "["):
                yield from self._jsonl(path)
                return
            yield Record(str(path), str(path), error=f"{path}: not a valid JSON document ({e})")
            return
        for record in self._json_records(path, data):
            yield _noted(record, note)

    def _json_lines(self, path: Path, most: int = 1 << 24) -> bool:
        """Whether a .json file holds JSON Lines: its first line is a whole JSON value and more follows. Told
        from that line, so that such a file (a scraper's dump of gigabytes) is never read into memory whole:
        until 2026-12-06 it was, and then read again line by line when it failed to parse as one document."""
        with _open_binary(path) as f:
            if not _byte_lines(self._stream_encoding(f)):
                return False  # UTF-16/32: read whole, as before
            first = f.readline(most)
            while first and not first.strip():
                first = f.readline(most)
            if not first.endswith(b"\n"):  # one line (a minified document) or a line longer than ``most``
                return False
            more = f.read(4096)
            while more and not more.strip():
                more = f.read(4096)
        if not more:
            return False
        try:
            json.loads(decode_text(first.removeprefix(codecs.BOM_UTF8), self.encoding)[0])
        except ValueError:  # (json.JSONDecodeError too): a pretty-printed document's "[" or "{", or no text
            return False
        return True

    def _json_records(self, path: Path, data) -> Iterator[Record]:
        if isinstance(data, dict) and self._text_key(data) is None:
            lists = [k for k, v in data.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
            if data and all(isinstance(v, dict) for v in data.values()):
                for key, item in data.items():
                    source = f"{path}[{key!r}]"
                    yield self._record(item, str(key), source)
                return
            if len(lists) == 1:
                for n, item in enumerate(data[lists[0]]):
                    source = f"{path}[{lists[0]!r}][{n}]"
                    yield self._record(item, source, source)
                return
        items = data if isinstance(data, list) else [data]
        for n, item in enumerate(items):
            source = f"{path}[{n}]"
            yield self._record(item, source, source)

    def _text_key(self, data: dict) -> str | None:
        """The field of ``data`` that holds the article (``--text-field`` or the first of ``TEXT_FIELDS``, at
        the top or, for a Label Studio task, under ``data``: ``data.text``)."""
        if self.text_field:
            return self.text_field if _field(data, self.text_field, _MISSING) is not _MISSING else None
        key = next((f for f in TEXT_FIELDS if f in data), None)
        if key is None and isinstance(data.get("data"), dict):
            key = next((f"data.{f}" for f in TEXT_FIELDS if f in data["data"]), None)
        return key

    def _wanted(self) -> str:
        return f"'{self.text_field}'" if self.text_field else f"any of {TEXT_FIELDS}"

    def _header_problem(self, header: list[str]) -> str | None:
        """What is wrong with a table's header row (CSV, TSV, a sheet): no text column; None when it has one."""
        if self._text_key(dict.fromkeys(header)) is not None:
            return None
        return f"the header row {[h[:40] for h in header[:10]]} has no text column ({self._wanted()})"

    def _xlsx(self, path: Path | Member) -> Iterator[Record]:
        """An Excel workbook (.xlsx, or .xls of Excel 97-2003): every sheet as a CSV file is read (a header row
        with a text column, a record per row after it; empty rows passed over), its records named
        ``FILE[SHEET]:ROW``. A sheet without a text column in its header (a notes or codebook sheet) is one
        error record that names it."""
        if isinstance(path, Member) or _compression(path):  # (openpyxl reads the zip inside with seeks)
            with _open_binary(path) as f:
                source = io.BytesIO(f.read())
        else:
            source = path
        book = open_workbook(source, _kind(path))
        try:
            yield from self._sheets(path, book)
        except SyntaxError as e:  # (xml's ParseError) a sheet cut short or damaged: its records so far stand
            raise ValueError(f"a sheet of the workbook is damaged ({e})") from None
        finally:
            book.close()

    def _sheets(self, path: Path | Member, book) -> Iterator[Record]:
        """The records of a workbook's sheets (``_xlsx``)."""
        for title, header, rows in sheet_tables(book):
            name = f"{path}[{title}]"
            problem = self._header_problem(header)
            if problem:
                yield Record(name, name, error=f"{name}: {problem}; add one, or name it with --text-field")
                continue
            for n, data in rows:
                source = f"{name}:{n}"
                yield self._record(data, source, source)

    def _csv(self, path: Path, delimiter: str = ",") -> Iterator[Record]:
        """CSV or TSV with a header row. Without a text column in the header (a headerless file, say) the
        file is one error record, not one per row."""
        csv.field_size_limit(sys.maxsize)
        with _open_binary(path) as f:
            encoding = self._stream_encoding(f)
            # utf-8-sig: Excel writes a byte-order mark before the header, which would hide its first column.
            # UTF-16 (Excel's "Unicode text") is decoded strictly: a bad byte there ends the file with an error.
            wide = not _byte_lines(encoding)
            stream = io.TextIOWrapper(f, encoding="utf-8-sig" if _is_utf8(encoding) else encoding,
                                      errors="strict" if wide else "surrogateescape", newline="")
            reader = csv.DictReader(stream, delimiter=delimiter)
            header = reader.fieldnames or []
            problem = header and self._header_problem(header)
            if problem:
                yield Record(str(path), str(path), error=f"{path}: {problem}; add a header row, or name the text "
                                                         f"column with --text-field")
                return
            for n, row in enumerate(reader, 2):
                source = f"{path}:{n}"
                notes = set()
                if self.encoding == "auto":  # bytes that are not UTF-8, field by field
                    for key, value in row.items():
                        if isinstance(value, str) and _has_undecodable(value) >= 0:
                            try:
                                row[key], note = decode_text(value.encode("utf-8", "surrogateescape"))
                            except ValueError:
                                continue  # binary: _record names it
                            notes.add(f"field {key!r}: {note}")
                yield _noted(self._record(row, source, source), "; ".join(sorted(notes)) or None)

    def _parquet(self, path: Path) -> Iterator[Record]:
        import pyarrow.parquet as pq

        row = 0
        for batch in pq.ParquetFile(_parquet_source(path)).iter_batches(batch_size=256):
            for data in batch.to_pylist():
                source = f"{path}#{row}"
                row += 1
                yield self._record(data, source, source)


_TAR_OPENERS = (((".tar.gz", ".tgz"), gzip.open), ((".tar.bz2", ".tbz2"), bz2.open), ((".tar.xz", ".txz"), lzma.open),
                ((".tar.zst",), zstd.open_zstd))


class _Tail(io.RawIOBase):
    """A binary stream that keeps the last 512 bytes read from it: a whole tar archive ends with blocks of zeros."""

    def __init__(self, raw):
        self.raw, self.tail = raw, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        buffer[:len(data)] = data
        self.tail = (self.tail + data)[-512:]
        return len(data)


def open_workbook(source, kind: str = ".xlsx"):
    """An Excel workbook (a path or a binary file) for ``sheet_tables``: openpyxl's for .xlsx, ``_XlsBook`` for
    .xls. ImportError (the install line) without the package; ValueError when it is not a workbook."""
    package, install = WORKBOOKS[kind]
    try:
        module = __import__(package)
    except ImportError:
        raise ImportError(install) from None
    if kind == ".xls":
        data = source.read() if hasattr(source, "read") else Path(source).read_bytes()
        with _xls_errors(module):
            # (xlrd writes its warnings to stdout unless told otherwise: -o - would get them in its JSON Lines)
            return _XlsBook(module.open_workbook(file_contents=data, on_demand=True, logfile=io.StringIO()),
                            module)
    try:
        return module.load_workbook(source, read_only=True, data_only=True)
    except (KeyError, zipfile.BadZipFile, zlib.error, OSError) as e:  # not a workbook (KeyError: no workbook part)
        raise ValueError(f"not a readable .xlsx workbook ({type(e).__name__}: {e})") from None


@contextmanager
def _xls_errors(xlrd):
    """What xlrd raises on a file that is not a workbook or is damaged, as ValueError (the job's error record)."""
    try:
        yield
    except xlrd.XLRDError as e:  # (an .xlsx named .xls says so: "Excel xlsx file; not supported")
        raise ValueError(f"not a readable .xls workbook ({e})") from None
    except (xlrd.compdoc.CompDocError, AssertionError, IndexError, KeyError, struct_error) as e:  # damaged
        raise ValueError(f"not a readable .xls workbook ({type(e).__name__}: {e})") from None


class _XlsBook:
    """An xlrd workbook as ``sheet_tables`` reads openpyxl's: ``worksheets``, each with ``title`` and
    ``iter_rows(values_only=True)``; dates as datetimes, booleans as booleans, error cells as their text
    ("#N/A"), as openpyxl gives them. A sheet is read when its turn comes."""

    def __init__(self, book, xlrd):
        self.book, self.xlrd = book, xlrd

    @property
    def worksheets(self):
        for n in range(self.book.nsheets):
            with _xls_errors(self.xlrd):
                sheet = self.book.sheet_by_index(n)
            yield _XlsSheet(self, sheet)

    def close(self):
        self.book.release_resources()


class _XlsSheet:
    def __init__(self, owner: _XlsBook, sheet):
        self.owner, self.sheet, self.title = owner, sheet, sheet.name

    def iter_rows(self, values_only: bool = True):
        xlrd = self.owner.xlrd
        for r in range(self.sheet.nrows):
            row = []
            for cell in self.sheet.row(r):
                value = cell.value
                if cell.ctype == xlrd.XL_CELL_DATE:
                    try:
                        value = xlrd.xldate.xldate_as_datetime(value, self.owner.book.datemode)
                    except (ValueError, OverflowError, xlrd.xldate.XLDateError):
                        pass  # a number out of the date range stays a number
                elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
                    value = bool(value)
                elif cell.ctype == xlrd.XL_CELL_ERROR:
                    value = xlrd.error_text_from_code.get(value, "#ERROR")
                elif cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    value = None
                row.append(value)
            yield tuple(row)


def sheet_tables(book) -> Iterator[tuple[str, list[str], Iterator[tuple[int, dict]]]]:
    """(title, header, rows) of each sheet of a workbook (``open_workbook``) that is not empty: the header is its first
    row that is not empty, each row after it ``(number as the sheet shows it, {column: cell value})``; empty
    rows are passed over."""
    for sheet in book.worksheets:
        rows = ((n, row) for n, row in enumerate(sheet.iter_rows(values_only=True), 1)
                if not all(v is None or v == "" for v in row))
        _, header = next(rows, (0, None))
        if header is None:
            continue
        header = [str(h).strip() if h is not None else "" for h in header]
        yield sheet.title, header, _sheet_rows(header, rows)


def _sheet_rows(header: list[str], rows) -> Iterator[tuple[int, dict]]:
    for n, row in rows:
        yield n, {h: _cell_value(v) for h, v in zip(header, row) if h}


def _cell_value(value):
    """An Excel cell's value for a record: text as it is, an id given as a number as its digits ("12", not
    "12.0"), a date as ISO text; None for an empty cell."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _parquet_source(path: Path | Member):
    """What pyarrow opens: a file's name, or an archive's member as a file object (pyarrow seeks in it)."""
    return path.open() if isinstance(path, Member) else path


# ------------------------------------------------------------------------------------------- output

def _display(path: Path) -> str:
    """How records name their file: standard input is "<stdin>"."""
    return "<stdin>" if path is STDIN else str(path)


def _inputs_fingerprint(files: list[Path], options: dict) -> str:
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for p in files:
        if p is STDIN:  # nothing to stat: --resume trusts that the same stream comes again (and checks its place)
            h.update(b"<stdin>")
            continue
        st = p.stat()
        # (surrogateescape: a file name that is not UTF-8, bytes a Linux file system allows, stopped the job)
        h.update(f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


@contextmanager
def _exclusive(out: Path):
    """Hold ``OUT.lock`` for the whole job, so that a second job on the same output (a cron run that overlaps
    the last one) stops at once instead of interleaving its records with this one's or emptying the file.
    The operating system releases the lock when the job ends in any way, kill -9 included: ``flock`` on
    POSIX systems, a lock on the file's first byte (``msvcrt.locking``) on Windows (not run there by us)."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
        try:
            import msvcrt
        except ImportError:  # pragma: no cover - neither POSIX nor Windows
            yield
            return
    out.parent.mkdir(parents=True, exist_ok=True)
    busy = BatchError(f"{out} is being written by another job; wait for it to end or give another -o")
    try:
        handle = open(out.with_name(out.name + ".lock"), "a")  # "a": never truncate a file another job locks
    except PermissionError:  # Windows: a file whose byte another process locks may refuse to open
        raise busy from None
    with handle:
        try:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # OSError (EACCES) when another holds it
        except BlockingIOError:
            raise busy from None
        except OSError:
            if fcntl is not None:
                raise
            raise busy from None
        yield


def _name(source: str) -> str:
    """A record's source without its folder (a job resumed from another working directory names its
    inputs by other relative paths)."""
    return source.replace("\\", "/").rsplit("/", 1)[-1]


# Names of files the job does not write: an output so named was JSON Lines under a TSV (or .gz) name.
_NOT_WRITTEN = {".tsv": "TSV", ".txt": "plain text", ".xlsx": "Excel", ".xls": "Excel",
                ".html": "HTML", ".htm": "HTML", ".gz": "compressed", ".bz2": "compressed", ".xz": "compressed",
                ".zst": "compressed", ".zip": "compressed"}


OUTPUT_FORMATS = {"jsonl": ".jsonl", "parquet": ".parquet", "csv": ".csv", "labelstudio": ".json"}
_FORMAT_NAMES = {"jsonl": "JSON Lines", "parquet": "Parquet", "csv": "CSV", "labelstudio": "Label Studio tasks"}


def output_format(output: str, out_format: str | None = None) -> str:
    """``jsonl``, ``parquet``, ``csv`` or ``labelstudio`` (named only by ``out_format``, a ``.json`` file) for
    ``-o output``: ``out_format`` when given, else by the name
    (``.parquet``, ``.csv``; any other name: JSON Lines). A name that says another kind of file (``.tsv``,
    ``.gz``; ``.parquet`` with ``--format jsonl``, ``.jsonl`` with ``--format parquet``) is a BatchError before
    anything is read. Until 2026-12-06 ``-o out.parquet`` or ``-o out.csv`` without ``--format`` wrote JSON Lines
    under that name; ``-o out.csv`` was then refused, and writes CSV since."""
    if out_format not in (None, *OUTPUT_FORMATS):
        raise BatchError(f"unknown output format {out_format!r}: {', '.join(OUTPUT_FORMATS)}")
    if output == STDOUT:
        if out_format in ("parquet", "csv", "labelstudio"):
            raise BatchError(f"-o - writes JSON Lines to standard output; {_FORMAT_NAMES[out_format]} needs a file "
                             f"name (-o out{OUTPUT_FORMATS[out_format]})")
        return "jsonl"
    suffix = Path(output).suffix.lower()
    if suffix in _NOT_WRITTEN:
        raise BatchError(f"-o {output}: the job writes JSON Lines (name the output .jsonl), Parquet (.parquet), "
                         f"CSV (.csv) or Label Studio tasks (.json with --format labelstudio), not "
                         f"{_NOT_WRITTEN[suffix]} files")
    named = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix)
    if out_format == "labelstudio" and suffix != ".json":
        raise BatchError(f"-o {output} with --format labelstudio: Label Studio imports a JSON file; name it "
                         f"{Path(output).with_suffix('.json').name}")
    if out_format and named and out_format != named:
        raise BatchError(f"-o {output} with --format {out_format}: the name says {named}; name it "
                         f"{Path(output).with_suffix(OUTPUT_FORMATS[out_format]).name} or leave --format out")
    return out_format or named or "jsonl"


def output_path(output: str, out_format: str = "jsonl") -> Path:
    """The JSON Lines file the job writes (and resumes from) for ``-o output``: for parquet and csv, the .jsonl
    beside it."""
    out = Path(output)
    if out_format != "jsonl":
        suffix = OUTPUT_FORMATS[out_format]
        out = out.with_suffix(".jsonl") if out.suffix.lower() == suffix else out.with_name(out.name + ".jsonl")
    return out


def check_output(out: Path, resume: bool, overwrite: bool, output: str | None = None) -> None:
    """An existing output needs --resume or --overwrite (the command line checks it before the models load);
    standard output (``output`` "-") takes neither."""
    if output == STDOUT:
        if resume or overwrite:
            raise BatchError(f"--{'resume' if resume else 'overwrite'} needs an output file: -o - writes to "
                             "standard output, which cannot be read back (give -o out.jsonl to resume a job)")
        return
    if out.exists() and not (resume or overwrite):
        raise BatchError(f"{out} exists: pass --resume to continue that job or --overwrite to start again")


def _prepare_output(out: Path, resume: bool, overwrite: bool, fingerprint: str) -> tuple[int, str | None]:
    """How many records the output already holds (after dropping a torn last line), and the last one's
    ``source``."""
    state = out.with_name(out.name + ".state.json")
    check_output(out, resume, overwrite)
    if overwrite or not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"")
        state.write_text(json.dumps({"inputs": fingerprint}))
        return 0, None
    if state.is_file() and json.loads(state.read_text()).get("inputs") != fingerprint:
        raise BatchError(f"{out} was written for other inputs or options; use --overwrite or another -o")
    with out.open("rb+") as f:
        done, cut, last_line = _complete_lines(f)
        if cut < f.seek(0, os.SEEK_END):
            f.truncate(cut)  # a record cut short by the crash: it is written again
    state.write_text(json.dumps({"inputs": fingerprint}))
    try:
        last = json.loads(last_line).get("source") if done else None
    except (ValueError, AttributeError):
        last = None
    return done, last


def _complete_lines(f, block: int = 1 << 20) -> tuple[int, int, bytes]:
    """(complete lines, the offset just after the last one, the last one) of a binary file, read a block at
    a time: an output of millions of results is never held in memory whole."""
    f.seek(0)
    count, cut, at = 0, 0, 0
    while chunk := f.read(block):
        count += chunk.count(b"\n")
        end = chunk.rfind(b"\n")
        if end >= 0:
            cut = at + end + 1
        at += len(chunk)
    start = cut - 1  # back from the last newline to the one before it
    while start > 0:
        low = max(0, start - block)
        f.seek(low)
        found = f.read(start - low).rfind(b"\n")
        if found >= 0:
            start = low + found + 1
            break
        start = low
    start = max(start, 0)
    f.seek(start)
    return count, cut, f.read(cut - start)


def run_batch(pipeline, inputs: list[str], output: str, text_field: str | None = None, id_field: str | None = None,
              resume: bool = False, overwrite: bool = False, batch_size: int | None = None,
              max_chars: int | None = None, dedup: bool = False, quiet: bool = False, out_format: str | None = None,
              log=None, encoding: str = "auto", time_limit: float | None = 10.0,
              progress_every: float | None = 60.0, limit: int | None = None, brief: bool = True,
              group_by: str | None = None) -> dict:
    """Run the batch job; returns the summary (records, ok, failed, seconds, articles_per_s). ``time_limit``:
    seconds per started 10,000 characters that an article may take before it becomes an error record (None or
    0: none; it needs the main thread on POSIX, see conflictbrief.inference.deadline). ``out_format``: jsonl
    or parquet; by default by the output's name (``output_format``). ``progress_every``: where stderr is no
    terminal (nohup, a scheduler's log file) and so shows no bar, a progress line every that many seconds
    (None or 0: none). ``limit``: only the first N records of the inputs (a trial run on a sample); it changes
    no result, so ``resume`` with a larger limit, or none, goes on from where a trial stopped. An input "-" is
    JSON Lines from standard input; ``output`` "-" writes JSON Lines to standard output (no resume).
    ``brief=False`` (the ``tag`` command): entities only, and an output of one kind does not resume as the
    other. ``group_by``: a field whose value names the event a record reports on; the records of one event are
    analysed together as its reports, one output record per event (``Events``; ``limit`` then counts events)."""
    out_format = output_format(output, out_format)
    if group_by is not None and not str(group_by).strip():
        raise BatchError("--group-by needs the name of a field (a.b for a nested one)")
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    batch_size = batch_size or pipeline.batch_size  # the pipeline holds the default (by dtype)
    if max_chars:
        pipeline.max_chars = max_chars
    pipeline.time_limit = time_limit or None
    check_encoding(encoding)  # before anything is read or written
    if output == STDOUT:
        check_output(Path(output), resume, overwrite, output)
        files = expand_inputs(inputs, (), log)
        with tempfile.TemporaryDirectory(prefix="conflictbrief-") as spool, contextlib.ExitStack() as stack:
            sink, copy = sys.stdout.buffer, None
            if dedup:  # a duplicate's result is read back from a copy of what went to standard output
                copy = Path(spool) / "out.jsonl"
                sink = _Tee(sink, stack.enter_context(copy.open("ab")))
            summary = _run(pipeline, files, sink, copy, 0, text_field, id_field, batch_size, dedup, quiet, log,
                           encoding, progress_every, limit, brief=brief, group_by=group_by)
        summary["output"] = "<stdout>"
        summary["failed_total"] = summary["failed_this_run"]
    else:
        out = output_path(output, out_format)
        own = (out, out.with_name(out.name + ".state.json"), out.with_name(out.name + ".lock"), events_spool(out),
               Path(output))
        files = expand_inputs(inputs, own, log)
        with _exclusive(out):  # before _prepare_output, which empties OUT on --overwrite
            options = {"text_field": text_field, "id_field": id_field, "max_chars": pipeline.max_chars,
                       "dedup": dedup, "mentions": getattr(getattr(pipeline, "tagger", None), "mentions", "all"),
                       "min_score": getattr(getattr(pipeline, "tagger", None), "min_score", 0.0)}
            if encoding != "auto":  # (so that outputs of jobs from before --encoding existed still resume)
                options["encoding"] = encoding
            if not getattr(getattr(pipeline, "tagger", None), "consistent_names", True):  # likewise
                options["model_labels"] = True
            if not brief:  # (likewise: brief outputs of before 2026-12-06 resume; tag outputs of then do not)
                options["entities_only"] = True
            if group_by:  # (likewise)
                options["group_by"] = group_by
            done, last_source = _prepare_output(out, resume, overwrite, _inputs_fingerprint(files, options))
            if limit and done > limit:
                raise BatchError(f"{out} holds {done} records already, more than --limit {limit}: nothing to do")
            try:
                with out.open("ab") as sink:
                    summary = _run(pipeline, files, sink, out, done, text_field, id_field, batch_size, dedup, quiet,
                                   log, encoding, progress_every, limit, last_source, brief, group_by)
                    os.fsync(sink.fileno())
            except BatchError:
                if done == 0 and out.stat().st_size == 0:  # stopped before a record was written: nothing to resume
                    out.unlink()
                    out.with_name(out.name + ".state.json").unlink(missing_ok=True)
                raise
            with out.open("rb") as f:
                summary["failed_total"] = sum(1 for line in f if b'"error": "' in line or b'"error":"' in line)
            # (under the lock: another job's --overwrite must not empty OUT.jsonl while it is converted)
            convert = {"parquet": _to_parquet, "csv": _to_csv, "labelstudio": _to_labelstudio}.get(out_format)
            if convert is _to_csv and group_by:
                convert = functools.partial(_to_csv, members=True)
            summary["output"] = str(convert(out, Path(output)) if convert else out)
    if summary["records"] == 0:  # an empty dump, or a pipe whose writer failed (zcat of a missing file)
        log("warning: the inputs hold no records: " + ", ".join(_display(f) for f in files[:3])
            + (", ..." if len(files) > 3 else "") + " (empty)")
    if summary["duplicate_ids"]:
        log(f"warning: {summary['duplicate_ids']} record(s) repeat the id of an earlier record; their 'source' "
            "field (file and line) tells them apart")
    if not quiet:
        log(json.dumps(summary))
    return summary


def _run(pipeline, files: list[Path], sink, out: Path | None, done: int, text_field, id_field, batch_size: int,
         dedup: bool, quiet: bool, log, encoding: str, progress_every, limit, last_source: str | None = None,
         brief: bool = True, group_by: str | None = None) -> dict:
    """Read ``files``, skip the ``done`` records the output holds, analyse the rest and append one line each to
    ``sink``. ``out`` is the file that holds every line written (the output, or under --dedup standard
    output's copy), where --dedup reads a duplicate's first result back. ``group_by``: records gathered into
    events first (``Events``), and those are the records skipped, analysed and written."""
    with contextlib.ExitStack() as stack:
        reader = RecordReader(text_field, id_field, log, encoding, group_by)
        ids, recoded = _IdCheck(log), _Recoded(log)
        events = None
        if group_by:  # every record is read before the first event is analysed: an event's reports may be anywhere
            spool = events_spool(out) if out is not None else \
                Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conflictbrief-"))) / "events.sqlite"
            if not quiet:
                log(f"--group-by {group_by!r}: reading every record first, to gather each event's reports")
            events = Events(reader.read(files), spool, group_by, check=lambda r: (ids(r), recoded(r)),
                            max_chars=pipeline.max_chars)
            stack.callback(events.close)
            if events.alone and not events.events:  # a misspelt field: not worth a night of ungrouped analysis
                fields = f"; the first such record's fields are {reader.first_fields}" if reader.first_fields else ""
                raise BatchError(f"--group-by {group_by!r}: none of the {events.alone:,} readable records has a value "
                                 f"in that field (a.b for a nested one){fields}: nothing was analysed")
            if not quiet:
                log(_events_line(events))
        summary = _analyse(pipeline, files, reader, events, ids, recoded, sink, out, done, batch_size, dedup, quiet,
                           log, progress_every, limit, last_source, brief)
    if events is not None:
        summary["events"] = {"by": group_by, "records": events.records, "events": events.events,
                             "records_in_events": events.grouped, "records_alone": events.alone,
                             "events_cut_at_max_chars": events.cut}
    return summary


def _events_line(events: Events) -> str:
    line = (f"--group-by {events.field!r}: {events.records:,} records read, {events.grouped:,} of them in "
            f"{events.events:,} events")
    if events.alone:
        shown = ", ".join(events.named_alone) + (", ..." if events.alone > len(events.named_alone) else "")
        line += (f"; {events.alone:,} without a value of {events.field!r}, each analysed alone ({shown})")
    return line


def _analyse(pipeline, files: list[Path], reader: RecordReader, events, ids, recoded, sink, out: Path | None,
             done: int, batch_size: int, dedup: bool, quiet: bool, log, progress_every, limit,
             last_source: str | None, brief: bool) -> dict:
    """``_run``'s work once the records are there to read: from ``reader``, or from ``events`` (whose records
    were checked by ``ids`` and ``recoded`` as they were gathered)."""
    from tqdm import tqdm

    total = reader.count(files) if events is None else len(events)
    total = min(total, limit) if limit and total is not None else total
    show = not quiet and sys.stderr.isatty()
    bar = tqdm(total=total, initial=done, unit="art" if events is None else "rec", disable=not show,
               dynamic_ncols=True, desc="briefing" if brief else "tagging")
    lines = _ProgressLines(log, total, done, None if show or quiet else progress_every,
                           "articles" if events is None else "records")
    started, ok, failed = time.time(), 0, 0
    seen: dict[bytes, int] = {}  # --dedup: text digest -> where its result starts in ``out``
    records = reader.read(files) if events is None else iter(events)
    records = itertools.islice(records, limit) if limit else records

    def check(record: Record) -> None:
        if events is None:  # (events' records were checked as they were gathered)
            ids(record)
            recoded(record)

    # resume: these are in the output already; with --dedup their results are where later copies are read
    offsets = _line_offsets(out) if dedup and done else None
    # standard input has no size or time to fingerprint: the first records of the stream are checked against
    # the output's instead (id and cleaned text)
    written = _written_records(out, STDIN_CHECKED) if done and any(f is STDIN for f in files) else iter(())
    record = None
    for n in range(done):
        record = next(records, None)
        if record is None:
            raise BatchError(f"{out} holds {done} records, more than its inputs have ({n}): not this job's "
                             "output; use --overwrite or another -o")
        _check_same(record, next(written, None), n + 1, out)
        check(record)
        if offsets is not None:
            offset = next(offsets)
            if record.error is None:
                seen.setdefault(_digest(record.text), offset)
    if offsets is not None:
        offsets.close()
    if done and last_source is not None and _name(record.source) != _name(last_source):
        raise BatchError(f"{out}: its record {done} came from {last_source}, but input record {done} is "
                         f"{record.source}: not this job's output; use --overwrite or another -o")

    with (out.open("rb") if dedup else contextlib.nullcontext()) as written:
        def write(line: dict) -> int | None:
            """Append one result line; returns its offset in ``out`` (with --dedup)."""
            nonlocal ok, failed
            if line.get("error"):
                failed += 1
            else:
                ok += 1
            offset = sink.tell() if dedup else None  # (standard output, a pipe, has none)
            # backslashreplace: a lone surrogate in an input id (a JSON "\\ud800" escape) is written back as
            # the same JSON escape instead of stopping the job
            sink.write((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace"))
            sink.flush()
            bar.update(1)
            lines()
            return offset

        chunk: list[Record] = []
        for record in records:
            check(record)
            chunk.append(record)
            if len(chunk) >= batch_size * 4:
                _process(pipeline, chunk, write, batch_size, dedup, seen, written, brief)
                chunk = []
        _process(pipeline, chunk, write, batch_size, dedup, seen, written, brief)
    bar.close()
    seconds = time.time() - started
    return {"output": None, "records": done + ok + failed, "written_this_run": ok + failed, "resumed_after": done,
            "ok_this_run": ok, "failed_this_run": failed, "failed_total": None, "seconds": round(seconds, 1),
            "articles_per_s": round((ok + failed) / seconds, 2) if seconds else None,
            "duplicate_ids": ids.count, "read_as_windows_1252": recoded.count}


class Events:
    """--group-by: a dump's records gathered into events by the value of one field, each event one record of the
    output whose text is its members' texts as the reports of one event (Batch job, "Events"), in the order of
    their first member. A record without the field, and a record that cannot be read, stay records of their own
    at their place. The records are spooled to an SQLite file, ``spool``, as they are read, so that the texts of a
    large dump never sit in memory (``close`` removes it); ``len()`` is the number of output records, known once
    all are read."""

    def __init__(self, records, spool: Path, field: str, check=None, max_chars: int | None = None):
        self.field, self.spool, self.max_chars = field, spool, max_chars
        self.cut = 0  # events whose records' texts did not all fit in max_chars (counted as they are read)
        spool.unlink(missing_ok=True)  # (one a killed job left)
        self.db = sqlite3.connect(spool)
        self.db.execute("PRAGMA journal_mode = OFF")  # a scratch file: no journal beside it, nothing to recover
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute("CREATE TABLE r (unit INTEGER, row TEXT)")
        keys: dict[str, int] = {}  # event key -> its unit (its place in the output)
        self.units = self.records = self.grouped = self.alone = 0
        self.named_alone: list[str] = []  # the first few records without the field
        rows = []
        for record in records:
            if check is not None:
                check(record)
            self.records += 1
            if record.group is not None and record.error is None:
                unit = keys.setdefault(record.group, self.units)
                self.grouped += 1
            else:
                unit = self.units
                if record.error is None:
                    self.alone += 1
                    if len(self.named_alone) < 3:
                        self.named_alone.append(record.source)
            self.units += unit == self.units
            # (JSON, ASCII: a lone surrogate in a text or id, which SQLite's UTF-8 refuses, goes as its escape)
            rows.append((unit, json.dumps([record.id, record.source, record.text, record.error, list(record.notes),
                                           record.group])))
            if len(rows) >= 1000:
                self.db.executemany("INSERT INTO r VALUES (?, ?)", rows)
                rows = []
        self.db.executemany("INSERT INTO r VALUES (?, ?)", rows)
        self.db.execute("CREATE INDEX u ON r (unit)")
        self.events = len(keys)

    def __len__(self) -> int:
        return self.units

    def __iter__(self) -> Iterator[Record]:
        rows = self.db.execute("SELECT unit, row FROM r ORDER BY unit, rowid")
        for _, members in itertools.groupby(rows, key=lambda row: row[0]):
            members = [Record(*fields[:4], notes=tuple(fields[4]), group=fields[5])
                       for fields in (json.loads(row) for _, row in members)]
            first = members[0]
            if first.error is not None:  # a record that could not be read: its error, and the event it named
                yield replace(first, extra={"group": first.group} if first.group else None)
            elif first.group is None:  # a record without the field: analysed alone, as without --group-by
                yield first
            else:
                event = self._event(members, self.max_chars)
                self.cut += any(not m["reports"] for m in event.extra["members"])
                yield event

    @staticmethod
    def _event(members: list[Record], max_chars: int | None = None) -> Record:
        """One record of an event's members: their texts (a member's own ``reports`` each) as its reports, in the
        order read, each text once (syndicated wire copy carried word for word by several outlets is one report
        that each of them is named with); ``extra["members"]`` gives each member's id, source and ``reports``,
        the indices of its texts among the event's. A member whose texts would take the event's above
        ``max_chars`` (counted as the pipeline counts them) is left out of its text, in the order read, and named
        with no reports and in a warning: a large event is briefed from what fits rather than not at all."""
        texts, named, notes, index, left, chars = [], [], [], {}, [], 0
        for m in members:
            # (a blank one of a member's own reports: nothing to brief from)
            given = [t for t in (m.text if isinstance(m.text, list) else [m.text]) if t.strip()]
            fresh = {}  # its texts that no earlier member has
            for text in given:
                if text.strip() not in index:
                    fresh.setdefault(text.strip(), text)
            more = text_chars(list(fresh.values())) + (len(REPORT_JOIN) if texts and fresh else 0)
            if texts and max_chars and chars + more > max_chars:
                left.append(m.id)
                named.append({"id": m.id, "source": m.source, "reports": []})
                continue
            for key, text in fresh.items():
                index[key] = len(texts)
                texts.append(text)
            chars += more
            named.append({"id": m.id, "source": m.source, "reports": [index[t.strip()] for t in given]})
            notes += [f"{m.source}: {note}" for note in m.notes]
        if left:
            shown = ", ".join(map(str, left[:5])) + (", ..." if len(left) > 5 else "")
            notes.append(f"{len(left)} of the event's {len(members)} {_LEFT_OUT} {max_chars:,} characters (in members "
                         f"with no reports): {shown}")
        return Record(members[0].group, members[0].source, texts, notes=tuple(notes), group=members[0].group,
                      extra={"members": named})

    def close(self) -> None:
        self.db.close()
        self.spool.unlink(missing_ok=True)


def events_spool(out: Path) -> Path:
    """Where --group-by spools the records of the job writing ``out`` (beside it, under its lock; a killed
    job's is replaced by the next run's and removed at its end)."""
    return out.with_name(out.name + ".events.sqlite")


class _Tee:
    """Standard output, and a copy of it in a file (``tell`` is the copy's), for --dedup with ``-o -``."""

    def __init__(self, stream, copy):
        self.stream, self.copy = stream, copy

    def write(self, data: bytes) -> None:
        self.stream.write(data)
        self.copy.write(data)

    def flush(self) -> None:
        self.stream.flush()
        self.copy.flush()

    def tell(self) -> int:
        return self.copy.tell()


class _ProgressLines:
    """The progress bar's figures as a plain line every ``every`` seconds, for a job whose stderr is a file:
    until 2026-12-06 such a job (nohup, cron, a scheduler) said nothing from its start to its summary."""

    def __init__(self, log, total: int | None, done: int, every: float | None, each: str = "articles"):
        self.log, self.total, self.done, self.every = log, total, done, every
        self.each = each  # what the rate counts (--group-by: output records, events or not)
        self.started = self.last = time.monotonic()
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        now = time.monotonic()
        if not self.every or now - self.last < self.every:
            return
        self.last = now
        n, rate = self.done + self.count, self.count / max(now - self.started, 1e-9)
        if self.total is None:  # CSV, tar archives and standard input are not counted ahead: no share, no end
            self.log(f"progress: {n:,} records, {rate:.2f} {self.each}/s this run")
            return
        left = (self.total - n) / rate
        self.log(f"progress: {n:,} of {self.total:,} records ({n / max(self.total, 1):.0%}), {rate:.2f} {self.each}/s "
                 f"this run, about {_duration(left)} left")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min"


def _is_reader_note(warning: str) -> bool:
    """A warning that the job put on a record (not the pipeline's): the bytes it read as Windows-1252, an event's
    records left out of its text. A --dedup copy has its own."""
    return "not UTF-8: bytes read as Windows-1252" in warning or _LEFT_OUT in warning


_LEFT_OUT = "records left out of its text, which they would have taken above --max-chars"


class _Recoded:
    """Counts the records whose bytes were not all UTF-8 and were read as Windows-1252 (--encoding auto; those
    written before a --resume included), and names the first few on stderr; each result says so in its warnings."""

    def __init__(self, log, named: int = 3):
        self.log, self.named, self.count = log, named, 0

    def __call__(self, record) -> None:
        if not record.notes:  # the reader notes only this
            return
        self.count += 1
        if self.count <= self.named:
            self.log(f"warning: {record.source}: {'; '.join(record.notes)}"
                     + (" (further ones are counted in the summary)" if self.count == self.named else ""))


class _IdCheck:
    """Counts the records whose id repeats an earlier record's id (two files numbered from 1, a scraper's
    re-crawl) and names the first few: results are joined back by id, so a repeated one is worth knowing about.
    Each id is kept as a 64-bit digest: about 80 MB for a million records."""

    def __init__(self, log, named: int = 3):
        self.log, self.named, self.count, self.seen = log, named, 0, set()

    def __call__(self, record) -> None:
        key = int.from_bytes(hashlib.blake2b(str(record.id).encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                             "little")
        if key not in self.seen:
            self.seen.add(key)
            return
        self.count += 1
        if self.count <= self.named:
            self.log(f"warning: {record.source}: id {record.id!r} repeats the id of an earlier record"
                     + (" (further repeats are counted in the summary)" if self.count == self.named else ""))


def _digest(text: str | list[str]) -> bytes:
    """--dedup's key: the record's text as read (copies are byte-for-byte the same article), or its reports."""
    if isinstance(text, list):
        text = json.dumps(text)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


STDIN_CHECKED = 1000  # records of standard input compared with the output on --resume


def _written_records(out: Path, most: int) -> Iterator[dict]:
    """The first ``most`` results of ``out`` (a JSONL output)."""
    with out.open(encoding="utf-8", errors="surrogateescape") as f:
        for line in itertools.islice(f, most):
            try:
                yield json.loads(line)
            except ValueError:
                yield {}


def _check_same(record: Record, written: dict | None, n: int, out: Path) -> None:
    """A BatchError when input record ``n`` is not the one the output's result ``n`` came from: another id, or
    (both analysed) another cleaned text. Used for standard input, whose stream cannot be fingerprinted."""
    if written is None:
        return
    other = None
    if written.get("id") != record.id:
        other = f"has the id {record.id!r}, where the output's has {written.get('id')!r}"
    elif record.error is None and not written.get("error") and record.text is not None \
            and clean(record.text).text != written.get("text"):
        other = "has another text"
    if other:
        raise BatchError(f"{out}: input record {n} ({record.source}) {other}: another stream than the one this "
                         "output was written from; use --overwrite or another -o")


def _line_offsets(path: Path):
    """The byte offset of each line of ``path``, one at a time."""
    with path.open("rb") as f:
        offset = 0
        for line in f:
            yield offset
            offset += len(line)


def _process(pipeline, chunk: list[Record], write, batch_size: int, dedup: bool, seen: dict, written,
             brief: bool = True):
    """Analyse and write one chunk. With ``dedup``, an article seen before is not analysed again: its first
    result is read back from the output (``written``, at the offset ``seen`` keeps), so memory holds one
    digest and one offset per distinct article, not every result."""
    if not chunk:
        return
    todo, keys, first = [], {}, set()
    for i, r in enumerate(chunk):
        if r.error is None:
            key = _digest(r.text) if dedup else None
            keys[i] = key
            if key is None or key not in seen and key not in first:  # a later copy in this chunk is written
                todo.append((i, r))                                   # after its first, so seen has it then
                first.add(key)
    results = {i: res.to_dict() for (i, _), res in
               zip(todo, pipeline.analyze_batch(((r.id, r.text) for _, r in todo), batch_size=batch_size,
                                                 brief=brief))}
    for i, r in enumerate(chunk):
        extra = r.extra or {}  # (an event's members)
        if r.error is not None:
            write({"id": r.id, "source": r.source, "error": r.error, **extra})
            continue
        if i in results:
            res = results[i]
            if r.notes and not res.get("error"):
                res["warnings"] = list(r.notes) + list(res.get("warnings") or [])
            offset = write({"source": r.source, **extra, **res} if not res.get("error") else
                           {"id": r.id, "source": r.source, "error": res["error"], **extra})
            if keys[i] is not None:
                seen.setdefault(keys[i], offset)
            continue
        written.seek(seen[keys[i]])  # a duplicate: the first one's result
        original = json.loads(written.readline())
        if not original.get("error"):  # the copy's own notes, not the first one's
            kept = [w for w in original.get("warnings") or [] if not _is_reader_note(w)]
            original["warnings"] = list(r.notes) + kept
        write({**original, "source": r.source, **extra, "id": r.id, "duplicate_of": original["id"]}
              if not original.get("error") else {"id": r.id, "source": r.source, "error": original["error"], **extra})


def _utf8(value: str) -> str:
    """``value`` with a lone surrogate (an id from a JSON "\\ud800" escape) as that escape, as UTF-8 allows."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _brief_text(result: dict) -> str:
    return " ".join(s["text"] for s in result.get("brief") or [])


CSV_COLUMNS = ("id", "source", "error", "headline", "brief", "entities", "warnings")
EXCEL_CELL = 32_767  # the most characters a spreadsheet cell holds (Excel, LibreOffice)


def _member_ids(result: dict) -> str:
    """The ids of an event's records (--group-by), joined by "; ", for a CSV cell or a Label Studio field."""
    return "; ".join(str(m["id"]) for m in result.get("members") or [])


def _to_csv(jsonl: Path, target: Path, members: bool = False) -> Path:
    """The JSONL output as CSV for spreadsheets, a line at a time: one row per result, ``CSV_COLUMNS``; the
    brief's sentences joined; each distinct entity once, "text (Label)", joined by "; "; the warnings by " | ".
    UTF-8 with a byte-order mark, so that Excel reads it as UTF-8. A cell that starts with =, +, -, @ (or a
    tab or carriage return) gets a leading apostrophe, so that a spreadsheet shows it as text and does not run
    it as a formula (scraped text is anyone's); a cell above ``EXCEL_CELL`` characters is cut, and says so.
    The full results stay in the JSONL file beside it. ``members`` (--group-by): a column after ``source`` with
    the ids of an event's records, joined by "; "."""
    target = target if target.suffix.lower() == ".csv" else target.with_suffix(".csv")

    def cell(value) -> str:
        value = _utf8("" if value is None else str(value))
        if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            value = "'" + value
        if len(value) > EXCEL_CELL:
            mark = f" [cut at {EXCEL_CELL:,} characters: the whole of it is in {jsonl.name}]"
            value = value[: EXCEL_CELL - len(mark)] + mark
        return value

    with jsonl.open(encoding="utf-8") as f, target.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS[:2] + ("members",) * members + CSV_COLUMNS[2:])
        for line in f:
            r = json.loads(line)
            entities = dict.fromkeys(f"{e['text']} ({e['label']})" for e in r.get("entities") or [])
            named = [_member_ids(r)] if members else []
            writer.writerow([cell(v) for v in (
                r.get("id"), r.get("source"), *named, r.get("error"), r.get("headline"),
                _brief_text(r), "; ".join(entities),
                " | ".join(r.get("warnings") or []))])
    return target


def _to_labelstudio(jsonl: Path, target: Path) -> Path:
    """The JSONL output as Label Studio tasks to import for correction (pre-annotation), a line at a time:
    ``{"data": {"text", "article_id", "source"}, "predictions": [{"model_version", "score", "result": [...]}]}``,
    and beside it (``tasks.labelstudio.xml`` for ``tasks.json``) the labeling config they belong to: a Labels
    control ``label`` over the Text ``text`` with the tagger's labels, and, when the job wrote briefs, a TextArea
    ``brief`` that holds the brief, a sentence a line, to correct. The text is the cleaned text the entities'
    ``start``/``end`` point into; the prediction's score is its least sure entity's, so that sorting by it
    puts the doubtful tasks first. Records that are errors have no text to show and are left out (they stay
    in the JSONL file beside it). The project's JSON export trains the tagger (its label regions) and the
    briefer (its ``brief`` TextArea) as it is."""
    labels, briefs = {}, False
    with jsonl.open(encoding="utf-8") as f, target.open("w", encoding="utf-8") as out:
        out.write("[")
        first = True
        for line in f:
            r = json.loads(line)
            if r.get("error") or not isinstance(r.get("text"), str):
                continue
            entities = r.get("entities") or []
            tagger = (r.get("models") or {}).get("tagger") or {}
            labels.update(dict.fromkeys(tagger.get("labels") or []))
            labels.update(dict.fromkeys(e["label"] for e in entities))
            result = entity_regions(entities)
            if r.get("brief"):
                briefs = True
                result.append(textarea_region("brief", "brief", [s["text"] for s in r["brief"]]))
            data = {"text": r["text"], "article_id": r.get("id"), "source": r.get("source")}
            if r.get("members"):  # (--group-by)
                data["members"] = _member_ids(r)
            task = {"data": data,
                    "predictions": [{"model_version": model_version(r.get("models") or {}),
                                     "score": least_score(result), "result": result}]}
            out.write(("\n" if first else ",\n") + json.dumps(task))
            first = False
        out.write("\n]\n")
    target.with_suffix(".labelstudio.xml").write_text(labelstudio_config(list(labels), briefs), encoding="utf-8")
    return target


def _to_parquet(jsonl: Path, target: Path, rows_per_group: int = 2000) -> Path:
    """The JSONL output as Parquet, written a row group at a time (a whole dump's results never sit in
    memory at once)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def text(value):  # Arrow needs UTF-8
        return _utf8(value) if isinstance(value, str) else value

    target = target if target.suffix.lower() == ".parquet" else target.with_suffix(".parquet")
    schema = pa.schema([(name, pa.string()) for name in ("id", "source", "error", "brief", "result_json")])
    with jsonl.open(encoding="utf-8") as f, pq.ParquetWriter(target, schema) as writer:
        rows = []
        for line in f:
            r = json.loads(line)
            rows.append({"id": text(r.get("id")), "source": text(r.get("source")), "error": text(r.get("error")),
                         "brief": text(_brief_text(r)),
                         "result_json": line.rstrip("\n")})
            if len(rows) == rows_per_group:
                writer.write_table(pa.Table.from_pylist(rows, schema))
                rows = []
        writer.write_table(pa.Table.from_pylist(rows, schema))
    return target
