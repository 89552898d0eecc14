"""The batch job over article dumps: `conflictbrief brief INPUT... -o OUT.jsonl`.

* Inputs: .jsonl/.json/.csv/.tsv/.parquet/.txt files, directories of them (recursively, sorted), .gz of any.
* Exactly one output line per input record, in input order. A bad record becomes ``{"id", "source",
  "error"}`` and the job goes on.
* Resume: records are appended one whole line at a time and flushed; after a crash (kill -9 included) the
  rerun drops a torn last line, checks that the inputs are the same, and skips the records already written.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

TEXT_FIELDS = ("text", "article", "content", "body", "article_content", "doc", "story")
ID_FIELDS = ("id", "doc_id", "article_id", "uuid", "url")
SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")


class BatchError(RuntimeError):
    """A problem with the job as a whole (not one record): bad arguments, unusable output file."""


@dataclass
class Record:
    id: str
    source: str  # file:line / file:row / file
    text: object = None
    error: str | None = None


def _kind(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    return next((s for s in SUFFIXES if name.endswith(s)), None)


def expand_inputs(inputs: list[str], exclude: tuple[Path, ...] = (), log=None) -> list[Path]:
    """Input files in a stable order; ``exclude`` (the job's own output files) is never read as input. Files
    of a folder that are not of a type read here (.html, .xml, .pdf ...) are named through ``log``: their
    articles are not in the output, and the user should know."""
    skip = {p.resolve() for p in exclude}
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found, other = [], []
            for p in sorted(p for p in path.rglob("*") if p.is_file() and p.resolve() not in skip):
                if _kind(p):
                    found.append(p)
                elif not any(part.startswith(".") for part in p.relative_to(path).parts):  # .DS_Store, .git/
                    other.append(p)
            if not found:
                raise BatchError(f"{path}: directory holds no {'/'.join(SUFFIXES)} files (or .gz of them)"
                                 + (f"; it has {len(other)} other file(s), e.g. {other[0].name}" if other else ""))
            if other and log:
                names = ", ".join(str(p.relative_to(path)) for p in other[:3]) + (", ..." if len(other) > 3 else "")
                log(f"warning: {path}: {len(other)} file(s) not read, not of a type read here "
                    f"({'/'.join(SUFFIXES)}, or .gz of them): {names}")
            files.extend(found)
        elif path.is_file():
            if path.resolve() in skip:  # with --overwrite it would be emptied before it was read
                raise BatchError(f"{path} is both an input and the job's output: give another -o")
            if not _kind(path):
                raise BatchError(f"{path}: unsupported input type; use {', '.join(SUFFIXES)} or .gz of them")
            files.append(path)
        else:
            raise BatchError(f"{path}: no such file or directory")
    return files


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _has_undecodable(text: str) -> int:
    """Index of the first byte that was not UTF-8 (decoded with surrogateescape), or -1."""
    return next((i for i, c in enumerate(text) if "\udc80" <= c <= "\udcff"), -1)


_MISSING = object()


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

    def __init__(self, text_field: str | None = None, id_field: str | None = None, log=None):
        self.text_field, self.id_field = text_field, id_field
        self.log = log or (lambda m: None)

    def read(self, files: list[Path]) -> Iterator[Record]:
        for path in files:
            kind = _kind(path)
            try:
                if kind == ".txt":
                    yield self._txt(path)
                elif kind == ".jsonl":
                    yield from self._jsonl(path)
                elif kind == ".json":
                    yield from self._json(path)
                elif kind in (".csv", ".tsv"):
                    yield from self._csv(path, "\t" if kind == ".tsv" else ",")
                else:
                    yield from self._parquet(path)
            except (OSError, EOFError, ValueError, gzip.BadGzipFile) as e:
                # The file broke off (truncated .gz, corrupt parquet): one error record names it.
                yield Record(f"{path}:unreadable", str(path), error=f"{path}: cannot read further: {e}")

    def count(self, files: list[Path]) -> int | None:
        """Number of records, for the progress bar (None when counting would be as slow as reading)."""
        total = 0
        for path in files:
            kind = _kind(path)
            try:
                if kind == ".txt":
                    total += 1
                elif kind == ".jsonl":
                    with _open_binary(path) as f:
                        total += sum(1 for line in f if line.strip())
                elif kind == ".parquet":
                    import pyarrow.parquet as pq

                    total += pq.ParquetFile(path).metadata.num_rows
                else:
                    return None
            except (OSError, EOFError, ValueError):  # a truncated .gz, a corrupt parquet: read() reports it
                return None
        return total

    def _record(self, data, rid: str, source: str) -> Record:
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
        if not isinstance(value, str):
            return Record(rid, source, error=f"{source}: field {key!r} is {type(value).__name__}, not text")
        bad = _has_undecodable(value)
        if bad >= 0:
            return Record(rid, source, error=f"{source}: field {key!r} has bytes that are not UTF-8 "
                                             f"(character {bad})")
        if not value.strip():
            return Record(rid, source, error=f"{source}: field {key!r} is empty")
        return Record(rid, source, value)

    def _txt(self, path: Path) -> Record:
        with _open_binary(path) as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            return Record(str(path), str(path), error=f"{path}: not UTF-8 (byte {e.start}: {data[e.start:e.start + 1]!r})")
        if not text.strip():
            return Record(str(path), str(path), error=f"{path}: file is empty")
        return Record(str(path), str(path), text)

    def _jsonl(self, path: Path) -> Iterator[Record]:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(f, 1):
                if lineno == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark (Windows exports)
                if not raw.strip():
                    continue
                source = f"{path}:{lineno}"
                line = raw.decode("utf-8", errors="surrogateescape").rstrip("\r\n")
                bad = _has_undecodable(line)
                if bad >= 0:
                    yield Record(source, source, error=f"{source}: line has bytes that are not UTF-8 (column {bad})")
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as e:
                    yield Record(source, source, error=f"{source}: invalid JSON ({e.msg.removesuffix(' at')} at "
                                                      f"column {e.colno})")
                    continue
                yield self._record(data, source, source)

    def _json(self, path: Path) -> Iterator[Record]:
        """A JSON document: one article object, a list of them, an object of them keyed by id (MUC-4 style:
        the key is the id), or an object with one list of them ({"articles": [...]}). A .json file that holds
        JSON Lines (one object per line, as many scrapers write) is read as .jsonl."""
        with _open_binary(path) as f:
            raw = f.read()
        try:
            data = json.loads(raw.decode("utf-8-sig"))  # -sig: a byte-order mark is not data
        except json.JSONDecodeError as e:
            if e.msg == "Extra data" and raw.lstrip()[:1] in (b"{", b"["):
                yield from self._jsonl(path)
                return
            yield Record(str(path), str(path), error=f"{path}: not a valid JSON document ({e})")
            return
        except UnicodeDecodeError as e:
            yield Record(str(path), str(path), error=f"{path}: not UTF-8 (byte {e.start})")
            return
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
        """The field of ``data`` that holds the article (``--text-field`` or the first of ``TEXT_FIELDS``)."""
        if self.text_field:
            return self.text_field if _field(data, self.text_field, _MISSING) is not _MISSING else None
        return next((f for f in TEXT_FIELDS if f in data), None)

    def _wanted(self) -> str:
        return f"'{self.text_field}'" if self.text_field else f"any of {TEXT_FIELDS}"

    def _csv(self, path: Path, delimiter: str = ",") -> Iterator[Record]:
        """CSV or TSV with a header row. Without a text column in the header (a headerless file, say) the
        file is one error record, not one per row."""
        csv.field_size_limit(sys.maxsize)
        with _open_binary(path) as f:
            # utf-8-sig: Excel writes a byte-order mark before the header, which would hide its first column
            reader = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig", errors="surrogateescape", newline=""),
                                    delimiter=delimiter)
            header = reader.fieldnames or []
            if header and self._text_key(dict.fromkeys(header)) is None:
                shown = [h[:40] for h in header[:10]]
                yield Record(str(path), str(path), error=f"{path}: the header row {shown} has no text column "
                                                         f"({self._wanted()}); add a header row, or name the text "
                                                         f"column with --text-field")
                return
            for n, row in enumerate(reader, 2):
                source = f"{path}:{n}"
                yield self._record(row, source, source)

    def _parquet(self, path: Path) -> Iterator[Record]:
        import pyarrow.parquet as pq

        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            for data in batch.to_pylist():
                source = f"{path}#{row}"
                row += 1
                yield self._record(data, source, source)


# ------------------------------------------------------------------------------------------- output

def _inputs_fingerprint(files: list[Path], options: dict) -> str:
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


@contextmanager
def _exclusive(out: Path):
    """Hold ``OUT.lock`` for the whole job, so that a second job on the same output (a cron run that overlaps
    the last one) stops at once instead of interleaving its records with this one's or emptying the file.
    The operating system releases the lock when the job ends in any way, kill -9 included. POSIX only."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(f"{out} is being written by another job; wait for it to end or give another -o") \
                from None
        yield


def _name(source: str) -> str:
    """A record's source without its folder (a job resumed from another working directory names its
    inputs by other relative paths)."""
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def _prepare_output(out: Path, resume: bool, overwrite: bool, fingerprint: str) -> tuple[int, str | None]:
    """How many records the output already holds (after dropping a torn last line), and the last one's
    ``source``."""
    state = out.with_name(out.name + ".state.json")
    if out.exists() and not (resume or overwrite):
        raise BatchError(f"{out} exists: pass --resume to continue that job or --overwrite to start again")
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
              max_chars: int | None = None, dedup: bool = False, quiet: bool = False, out_format: str = "jsonl",
              log=None) -> dict:
    """Run the batch job; returns the summary (records, ok, failed, seconds, articles_per_s)."""
    from tqdm import tqdm

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    batch_size = batch_size or pipeline.batch_size  # the pipeline holds the default (by dtype)
    if max_chars:
        pipeline.max_chars = max_chars
    out = Path(output)
    if out_format == "parquet":
        out = out.with_suffix(".jsonl") if out.suffix == ".parquet" else out.with_name(out.name + ".jsonl")
    own = (out, out.with_name(out.name + ".state.json"), out.with_name(out.name + ".lock"), Path(output))
    files = expand_inputs(inputs, own, log)
    with _exclusive(out):  # before _prepare_output, which empties OUT on --overwrite
        options = {"text_field": text_field, "id_field": id_field, "max_chars": pipeline.max_chars, "dedup": dedup,
                   "mentions": getattr(getattr(pipeline, "tagger", None), "mentions", "all"),
                   "min_score": getattr(getattr(pipeline, "tagger", None), "min_score", 0.0)}
        done, last_source = _prepare_output(out, resume, overwrite, _inputs_fingerprint(files, options))
        reader = RecordReader(text_field, id_field, log)
        total = reader.count(files)
        show = not quiet and sys.stderr.isatty()
        bar = tqdm(total=total, initial=done, unit="art", disable=not show, dynamic_ncols=True, desc="briefing")
        started, ok, failed = time.time(), 0, 0
        seen: dict[bytes, int] = {}  # --dedup: text digest -> where its result starts in the output
        records = reader.read(files)
        # resume: these are in the output already; with --dedup their results are where later copies are read
        offsets = _line_offsets(out) if dedup and done else None
        ids = _IdCheck(log)
        for n in range(done):
            record = next(records, None)
            if record is None:
                raise BatchError(f"{out} holds {done} records, more than its inputs have ({n}): not this job's "
                                 "output; use --overwrite or another -o")
            ids(record)
            if offsets is not None:
                offset = next(offsets)
                if record.error is None:
                    seen.setdefault(_digest(record.text), offset)
        if offsets is not None:
            offsets.close()
        if done and last_source is not None and _name(record.source) != _name(last_source):
            raise BatchError(f"{out}: its record {done} came from {last_source}, but input record {done} is "
                             f"{record.source}: not this job's output; use --overwrite or another -o")

        # written: --dedup reads a duplicate's result back from the output
        with out.open("ab") as sink, out.open("rb") as written:
            def write(line: dict) -> int:
                """Append one result line; returns its offset in the output."""
                nonlocal ok, failed
                if line.get("error"):
                    failed += 1
                else:
                    ok += 1
                # backslashreplace: a lone surrogate in an input id (a JSON "\\ud800" escape) is written back as
                # the same JSON escape instead of stopping the job
                offset = sink.tell()
                sink.write((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace"))
                sink.flush()
                bar.update(1)
                return offset

            chunk: list[Record] = []
            for record in records:
                ids(record)
                chunk.append(record)
                if len(chunk) >= batch_size * 4:
                    _process(pipeline, chunk, write, batch_size, dedup, seen, written)
                    chunk = []
            _process(pipeline, chunk, write, batch_size, dedup, seen, written)
            os.fsync(sink.fileno())
        bar.close()
        seconds = time.time() - started
        with out.open("rb") as f:
            failed_total = sum(1 for line in f if b'"error": "' in line or b'"error":"' in line)
        summary = {"output": str(out), "records": done + ok + failed, "written_this_run": ok + failed,
                   "resumed_after": done, "ok_this_run": ok, "failed_this_run": failed, "failed_total": failed_total,
                   "seconds": round(seconds, 1), "articles_per_s": round((ok + failed) / seconds, 2) if seconds else None,
                   "duplicate_ids": ids.count}
        if ids.count:
            log(f"warning: {ids.count} record(s) repeat the id of an earlier record; their 'source' field (file and "
                "line) tells them apart")
        if out_format == "parquet":
            summary["output"] = str(_to_parquet(out, Path(output)))
        if not quiet:
            log(json.dumps(summary))
        return summary


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


def _digest(text: str) -> bytes:
    """--dedup's key: the record's text as read (copies are byte-for-byte the same article)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _line_offsets(path: Path):
    """The byte offset of each line of ``path``, one at a time."""
    with path.open("rb") as f:
        offset = 0
        for line in f:
            yield offset
            offset += len(line)


def _process(pipeline, chunk: list[Record], write, batch_size: int, dedup: bool, seen: dict, written):
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
               zip(todo, pipeline.analyze_batch(((r.id, r.text) for _, r in todo), batch_size=batch_size))}
    for i, r in enumerate(chunk):
        if r.error is not None:
            write({"id": r.id, "source": r.source, "error": r.error})
            continue
        if i in results:
            res = results[i]
            offset = write({"source": r.source, **res} if not res.get("error") else
                           {"id": r.id, "source": r.source, "error": res["error"]})
            if keys[i] is not None:
                seen.setdefault(keys[i], offset)
            continue
        written.seek(seen[keys[i]])  # a duplicate: the first one's result
        original = json.loads(written.readline())
        write({**original, "source": r.source, "id": r.id, "duplicate_of": original["id"]}
              if not original.get("error") else {"id": r.id, "source": r.source, "error": original["error"]})


def _to_parquet(jsonl: Path, target: Path, rows_per_group: int = 2000) -> Path:
    """The JSONL output as Parquet, written a row group at a time (a whole dump's results never sit in
    memory at once)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def text(value):  # a lone surrogate (an id from a JSON "\ud800" escape) as that escape: Arrow needs UTF-8
        return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value

    target = target if target.suffix == ".parquet" else target.with_suffix(".parquet")
    schema = pa.schema([(name, pa.string()) for name in ("id", "source", "error", "brief", "result_json")])
    with jsonl.open(encoding="utf-8") as f, pq.ParquetWriter(target, schema) as writer:
        rows = []
        for line in f:
            r = json.loads(line)
            rows.append({"id": text(r.get("id")), "source": text(r.get("source")), "error": text(r.get("error")),
                         "brief": text(" ".join(s["text"] for s in r.get("brief") or [])),
                         "result_json": line.rstrip("\n")})
            if len(rows) == rows_per_group:
                writer.write_table(pa.Table.from_pylist(rows, schema))
                rows = []
        writer.write_table(pa.Table.from_pylist(rows, schema))
    return target
