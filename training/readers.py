"""Readers for labeled data: tagger formats (CoNLL/BIO, span JSONL, Label Studio, Doccano) and brief pairs.

Every reader checks its input before any training starts and raises ``DataError`` naming the file, the record
and the problem. Tagger readers yield word-level examples ``{"id", "tokens", "tags", "mapping"}`` whose tags
are already in our schema (None for a token the source does not annotate); ``to_dataset`` wraps them in a
``datasets.Dataset``.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import random
import re
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

from conflictbrief.inference.clean import COMPRESSED_SUFFIXES, DROPPED, IN_WORD_DROPPED, REPORTS_FIELD, \
    compression_suffix
from conflictbrief.model.labels import OUTSIDE, LabelSchema, SchemaError, split_tag

logger = logging.getLogger(__name__)

# Words as BERT's basic tokenizer sees them: runs of word characters, or single punctuation marks. A soft
# hyphen or another invisible character inside a word ("Mos\u00adul") does not split it: cleaning drops them, so
# the tagger sees "Mosul" at inference, and span JSONL (not cleaned, its offsets are its own) must train on the same.
WORD_RE = re.compile(rf"\w+(?:[{IN_WORD_DROPPED}]+\w+)*|[^\w\s{DROPPED}]", re.UNICODE)
_IN_WORD = re.compile(f"[{IN_WORD_DROPPED}]+")

TAGGER_FORMATS = ("conll", "spans", "labelstudio", "doccano")


class DataError(ValueError):
    """Training or evaluation data that cannot be used as it is."""


def words_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end): the word without the invisible characters inside it, its span in ``text`` with them."""
    return [(_IN_WORD.sub("", m.group()), m.start(), m.end()) for m in WORD_RE.finditer(text)]


def check_file(path: Path, text: bool = True) -> str | None:
    """A readable file, and with ``text`` its text (UTF-8; gzip, bzip2, xz or zstd compressed or not), or
    DataError naming the problem (for bytes that are not UTF-8: line and column)."""
    from conflictbrief.inference.clean import TextFileError, read_utf8

    if path.is_dir():
        raise DataError(f"{path}: is a folder; a training or evaluation file is one file (give each with --train)")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not text:
        return None
    try:
        return read_utf8(path, decompress=True)
    except TextFileError as e:
        raise DataError(str(e)) from None


def format_suffix(path: Path) -> str:
    """The suffix that names the format, a compression suffix passed over: 'train.conll.gz' -> '.conll'
    (training and evaluation files may be compressed); '.ndjson', another name for JSON Lines, is '.jsonl'."""
    suffix = Path(path.name[: len(path.name) - len(compression_suffix(path.name))]).suffix.lower()
    return ".jsonl" if suffix == ".ndjson" else suffix


def _lines(text: str) -> io.StringIO:
    """The text's lines as a file opened in text mode gives them ("\r\n" and "\r" read as "\n")."""
    return io.StringIO(text, newline=None)


def detect_tagger_format(path: Path, text: str) -> str:
    """Guess the format from the file name and first record; ambiguous cases must be named explicitly."""
    suffix = format_suffix(path)
    if suffix in (".txt", ".conll", ".bio", ".iob", ".tsv"):
        return "conll"
    if suffix == ".json":
        return "labelstudio"
    if suffix == ".jsonl":
        for lineno, first in _jsonl_records(path, text):  # a first line that is not a JSON object is reported here
            if "spans" in first or "entities" in first and not _is_doccano(first["entities"]):
                return "spans"
            if {"label", "labels", "entities"} & first.keys():
                return "doccano"
            raise DataError(f"{path}:{lineno}: cannot tell the format: a record needs an 'entities' list (span "
                            "JSONL), 'spans' (Prodigy) or 'label' (Doccano), even an empty one; this one has "
                            + ", ".join(map(repr, first)))
        raise DataError(f"{path}: no records (empty file?)")
    raise DataError(f"{path}: cannot tell the format from the name; pass one of {TAGGER_FORMATS}")


def _is_doccano(entities) -> bool:
    return isinstance(entities, list) and bool(entities) and isinstance(entities[0], dict) \
        and "start_offset" in entities[0]


def read_tagger_file(
    path: str | Path, schema: LabelSchema, fmt: str | None = None, mapping: str | None = None
) -> list[dict]:
    """Read one labeled file into word-level examples in our schema; raises DataError on any bad record."""
    path = Path(path)
    text = check_file(path)
    fmt = fmt or detect_tagger_format(path, text)
    readers = {"conll": _read_conll, "spans": _read_spans, "labelstudio": _read_labelstudio,
               "doccano": _read_doccano}
    if fmt not in readers:
        raise DataError(f"{path}: unknown format {fmt!r}; choose one of {TAGGER_FORMATS}")
    examples = list(readers[fmt](path, text, schema, mapping))
    if not examples:
        why = "no task annotated yet (or an empty export)" if fmt == "labelstudio" else "empty file?"
        raise DataError(f"{path}: no examples found ({why})")
    return examples


def _map_tag(tag: str, schema: LabelSchema, mapping: str | None, where: str) -> str | None:
    try:
        prefix, label = split_tag(tag)
        if label is None:
            return OUTSIDE
        ours = schema.map_label(label, mapping)
    except SchemaError as e:
        raise DataError(f"{where}: {e}") from None
    if ours is None:
        return None
    return f"{'I' if prefix == 'I' else 'B'}-{ours}"


def iob2(tag: str, previous: str) -> str:
    """``tag`` as IOB2, given the file's tag before it (O at a sentence start): a tag continues an entity only
    when it is I- (or BIOES's E-) after B-/I- of the same label; any other entity tag starts one. So IOB1
    files (the original CoNLL-2003: I- starts an entity, B- only between two of the same label), BIOES
    files (S-, E-) and stray I- tags (CoNLL-2003's "Barcelona I-ORG" after O) read as the entities meant."""
    if len(tag) > 2 and tag[0] in "BIES" and tag[1] in "-_":
        inside = len(previous) > 2 and previous[0] in "BI" and previous[1] in "-_" and previous[2:] == tag[2:]
        return ("I-" if tag[0] in "IE" and inside else "B-") + tag[2:]
    return tag


def _read_conll(path: Path, text: str, schema: LabelSchema, mapping: str | None) -> Iterator[dict]:
    tokens: list[str] = []
    tags: list[str | None] = []
    start_line, previous = 1, OUTSIDE
    with _lines(text) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("-DOCSTART-"):
                if tokens:
                    yield {"id": f"{path.name}:{start_line}", "tokens": tokens, "tags": tags, "mapping": mapping}
                tokens, tags, previous = [], [], OUTSIDE
                start_line = lineno + 1
                continue
            cols = line.split("\t") if "\t" in line else line.split()
            if len(cols) < 2 or not cols[0].strip():
                raise DataError(f"{path}:{lineno}: expected 'token<TAB or space>tag', got {line!r}")
            tokens.append(cols[0].strip())
            tag = cols[-1].strip()
            tags.append(_map_tag(iob2(tag, previous), schema, mapping, f"{path}:{lineno}"))
            previous = tag
    if tokens:
        yield {"id": f"{path.name}:{start_line}", "tokens": tokens, "tags": tags, "mapping": mapping}


def spans_to_example(
    text, spans: list[tuple[int, int, str]], schema: LabelSchema, mapping: str | None, where: str
) -> dict:
    """Validate character spans against the text and turn them into word-level BIO tags."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: 'text' must be a non-empty string")
    checked = []
    for start, end, label in spans:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            raise DataError(f"{where}: span ({start!r}, {end!r}, {label!r}): start and end must be whole numbers "
                            "(character offsets into the text)")
        if not 0 <= start < end <= len(text):
            raise DataError(
                f"{where}: span ({start}, {end}, {label!r}) is outside the text (length {len(text)}) or empty"
            )
        try:
            ours = schema.map_label(str(label), mapping)
        except SchemaError as e:
            raise DataError(f"{where}: {e}") from None
        checked.append((start, end, ours, label))
    checked.sort()
    for (s1, e1, _, l1), (s2, e2, _, l2) in zip(checked, checked[1:]):
        if s2 < e1:
            raise DataError(f"{where}: overlapping spans ({s1}, {e1}, {l1!r}) and ({s2}, {e2}, {l2!r})")
    words = words_with_offsets(text)
    tags: list[str | None] = [OUTSIDE] * len(words)
    for start, end, ours, label in checked:
        inside = [i for i, (_, ws, we) in enumerate(words) if ws < end and we > start]
        if not inside:
            raise DataError(f"{where}: span ({start}, {end}, {label!r}) covers no word")
        for k, i in enumerate(inside):
            tags[i] = None if ours is None else f"{'B' if k == 0 else 'I'}-{ours}"
    return {"id": where, "tokens": [w for w, _, _ in words], "tags": tags, "mapping": mapping, "text": text}


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    with _lines(text) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def _read_spans(path: Path, text: str, schema: LabelSchema, mapping: str | None) -> Iterator[dict]:
    """Span JSONL, ``{"text", "entities": [{"start", "end", "label"}]}``, and Prodigy's ``"spans"`` (records
    with ``"answer": "reject"`` or ``"ignore"`` left out). A record with neither list is an error: it used to
    be taught as "no entities" (a file of ``"ner"`` lists trained a model to find nothing)."""
    left_out = 0
    for lineno, record in _jsonl_records(path, text):
        where = f"{path}:{lineno}"
        if record.get("answer") in ("reject", "ignore"):
            left_out += 1
            continue
        key = "entities" if "entities" in record else "spans"
        if key not in record:
            raise DataError(f"{where}: no 'entities' list (a text without entities has \"entities\": []); this "
                            "record has " + ", ".join(map(repr, record)))
        entities = record[key]
        if not isinstance(entities, list):
            raise DataError(f"{where}: '{key}' must be a list of {{start, end, label}}")
        spans = []
        for ent in entities:
            if not isinstance(ent, dict) or not {"start", "end", "label"} <= ent.keys():
                raise DataError(f"{where}: each entity needs 'start', 'end' and 'label', got {ent!r}")
            spans.append((ent["start"], ent["end"], ent["label"]))
        yield spans_to_example(record.get("text"), spans, schema, mapping, where)
    if left_out:
        logger.warning("%s: %d record(s) answered 'reject' or 'ignore' (Prodigy) left out", path, left_out)


def _read_doccano(path: Path, text: str, schema: LabelSchema, mapping: str | None) -> Iterator[dict]:
    for lineno, record in _jsonl_records(path, text):
        where = f"{path}:{lineno}"
        key = next((k for k in ("label", "labels", "entities") if k in record), None)
        if key is None:  # it was taught as "no entities"; Doccano writes "label": [] for a text without any
            raise DataError(f"{where}: no 'label' list (Doccano writes \"label\": [] for a text without entities); "
                            "this record has " + ", ".join(map(repr, record)))
        raw = record[key]
        if not isinstance(raw, list):
            raise DataError(f"{where}: '{key}' must be a list of [start, end, label]")
        spans = []
        for ent in raw:
            if isinstance(ent, dict) and {"start_offset", "end_offset", "label"} <= ent.keys():
                spans.append((ent["start_offset"], ent["end_offset"], ent["label"]))
            elif isinstance(ent, (list, tuple)) and len(ent) == 3:
                spans.append(tuple(ent))
            else:
                raise DataError(f"{where}: a Doccano label is [start, end, label] or has start_offset/"
                                f"end_offset/label, got {ent!r}")
        yield spans_to_example(record.get("text", record.get("data")), spans, schema, mapping, where)


# Fields that Label Studio's JSON_MIN export adds to a task's data fields.
_MIN_META = {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement"}


def _task_text(data: dict, where: str, skip=frozenset(), taken: set | None = None) -> str:
    """The text of a task: its ``text`` field, else its one string field (a project whose text is ``$article``),
    whose name goes into ``taken`` for the reader to say which field it read."""
    if "text" in data:
        return data["text"]
    strings = [k for k, v in data.items() if isinstance(v, str) and k not in skip]
    if len(strings) == 1:
        if taken is not None:
            taken.add(strings[0])
        return data[strings[0]]
    raise DataError(f"{where}: no 'text' field, and {'no' if not strings else 'more than one'} other text field to "
                    f"take instead ({', '.join(map(repr, strings)) or 'fields: ' + ', '.join(map(repr, data))})")


def _span(value, where: str):
    """(start, end, label) of a Labels (or HyperTextLabels) region; None for results of other kinds."""
    labels = value.get("labels") or value.get("hypertextlabels") if isinstance(value, dict) else None
    if not labels:
        return None  # relations, choices and other result types carry no span
    if not isinstance(labels, list) or not isinstance(labels[0], str):
        raise DataError(f"{where}: a label result's labels are {labels!r}, not a list of label names")
    if "start" not in value or "end" not in value:
        raise DataError(f"{where}: a label result has no start/end: {value!r}")
    return value["start"], value["end"], labels[0]


def first_annotation(task: dict, where: str) -> list | None:
    """The result list of a Label Studio task's first annotation that was not cancelled (JSON export); None for
    a task without one (not annotated yet, or skipped); DataError naming the task when ``annotations`` or its
    ``result`` is not a list."""
    annotations = task.get("annotations") or task.get("completions") or []
    if not isinstance(annotations, list):
        raise DataError(f"{where}: 'annotations' is {annotations!r}, not a list of annotations")
    annotations = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not annotations:
        return None
    result = annotations[0].get("result") or []
    if not isinstance(result, list):
        raise DataError(f"{where}: an annotation's 'result' is {result!r}, not a list of results")
    return result


def _read_labelstudio(path: Path, text: str, schema: LabelSchema, mapping: str | None) -> Iterator[dict]:
    """Label Studio's JSON export (tasks with ``data`` and ``annotations``; each task's first annotation that
    was not cancelled) and its JSON_MIN export (the data's fields at the top of each record, each Labels
    control's regions under the control's name; one record per annotation, the first kept)."""
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno} ({e.msg})") from None
    if not isinstance(tasks, list):
        raise DataError(f"{path}: a Label Studio export is a JSON list of tasks")
    unannotated, seen, repeated, taken = 0, set(), 0, set()
    for n, task in enumerate(tasks):
        where = f"{path}[task {task.get('id', n) if isinstance(task, dict) else n}]"
        if not isinstance(task, dict):
            raise DataError(f"{where}: a task is a JSON object")
        if not isinstance(task.get("data"), dict):
            regions = [v for k, value in task.items() if k not in _MIN_META and isinstance(value, list)
                       for v in value if isinstance(v, dict) and ("labels" in v or "hypertextlabels" in v)]
            if not regions and "annotation_id" not in task:
                raise DataError(f"{where}: a task needs a 'data' object with the text (JSON export), or the text "
                                "and the label regions at its top (JSON_MIN export)")
            if task.get("id") is not None and repr(task["id"]) in seen:  # (repr: an id may be anything in JSON)
                repeated += 1  # JSON_MIN writes a record per annotation: the first is kept, as in the JSON export
                continue
            seen.add(repr(task.get("id")))
            if not regions and task.get("annotation_id") is None:
                unannotated += 1
                continue
            spans = [s for s in (_span(v, where) for v in regions) if s]
            skip = _MIN_META | {k for k, v in task.items() if isinstance(v, list)}
            yield spans_to_example(_task_text(task, where, skip, taken), spans, schema, mapping, where)
            continue
        result = first_annotation(task, where)
        if result is None:  # not annotated yet, or skipped by the annotator: nothing to learn, not "no entities"
            unannotated += 1
            continue
        spans = [s for s in (_span(r.get("value", {}) if isinstance(r, dict) else {}, where) for r in result) if s]
        yield spans_to_example(_task_text(task["data"], where, taken=taken), spans, schema, mapping, where)
    if unannotated:
        logger.warning("%s: %d task(s) without an annotation (or only a cancelled one) left out", path, unannotated)
    if taken:
        logger.warning("%s: tasks without a 'text' field: read their text from %s, their one text field", path,
                       ", ".join(map(repr, sorted(taken))))
    if repeated:
        logger.warning("%s: %d more annotation(s) of tasks annotated more than once left out (the first of each "
                       "task is used)", path, repeated)


def hold_out(rows: list, fraction: float, seed: int, where: str) -> tuple[list, list]:
    """(kept, held out): ``fraction`` of ``rows`` set aside for evaluation, the same rows for a seed and file
    name (rounded, at least one each way; by the name, so that a run resumed from another folder, which names
    the file by another relative path, holds out the same rows). DataError when the file has too few rows."""
    if not fraction:
        return rows, []
    if len(rows) < 2:
        raise DataError(f"{where}: {len(rows)} example(s): too few to hold out a share for evaluation "
                        "(eval_fraction); give an eval file instead")
    order = list(range(len(rows)))
    # (as bytes: the same seed as the text for a UTF-8 name, and one for a name that is not UTF-8 too)
    random.Random(f"{seed}:{Path(where).name}:eval".encode("utf-8", "surrogateescape")).shuffle(order)
    held = set(order[: min(max(1, round(len(rows) * fraction)), len(rows) - 1)])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(name: str) -> str:
    """A name as UTF-8 can carry it: the bytes of a file name that is not UTF-8 (a Linux file system allows them;
    Python holds them as lone surrogates, "caf\udce9") as escapes ("caf\\xe9"), for datasets, model cards and
    JSON; other lone surrogates (a JSON "\\ud800" escape) as "\\ud800"; other names as they are."""
    return _SURROGATE.sub(lambda m: (f"\\x{ord(m[0]) - 0xDC00:02x}" if "\udc80" <= m[0] <= "\udcff"
                                     else f"\\u{ord(m[0]):04x}"), name)


def write_card(out_dir: Path, lines: list[str]) -> None:
    """A trained model's README.md, with a file name that is not UTF-8 spelt as `printable` spells it for the
    datasets and the JSON ("caf\\xe9.jsonl"), not as the surrogate Python holds ("caf\\udce9.jsonl")."""
    (Path(out_dir) / "README.md").write_text(printable("\n".join(lines)) + "\n", encoding="utf-8")


def to_dataset(examples: list[dict]):
    """Word-level examples as a datasets.Dataset (tags as strings; '' marks an unannotated token). Examples
    with ``segments`` (their text's sentences, ``training.tagger.text_segments``) keep them as
    ``[start, end, shares]`` rows, ``[]`` for none."""
    import datasets

    rows = [{"id": printable(e["id"]), "tokens": e["tokens"], "tags": [t if t is not None else "" for t in e["tags"]],
             "mapping": e["mapping"] or ""} for e in examples]
    if any(e.get("segments") for e in examples):
        for row, e in zip(rows, examples):
            row["segments"] = [[start, end, int(shares)] for start, end, shares in e.get("segments") or ()]
    return datasets.Dataset.from_list(rows)


# ---------------------------------------------------------------------------------------------- briefs

BRIEF_TEXT_KEYS = ("text", "article", "source", "document", "reports")  # document: XSum's; reports: of one event
BRIEF_TARGET_KEYS = ("brief", "abstract", "summary", "target", "highlights")  # highlights: CNN/DailyMail's


def parse_neus_target(target: str) -> tuple[str | None, str]:
    """'TITLE=> headline. ARTICLE=> summary' -> (headline, summary)."""
    if "ARTICLE=>" in target:
        head, _, body = target.partition("ARTICLE=>")
        headline = head.replace("TITLE=>", "").strip() or None
        return headline, body.strip()
    return None, target.strip()


def parse_neus_source(source: str) -> list[str]:
    """Left/center/right articles joined by [SEP], each 'TITLE=> t. ARTICLE=> body' -> the reports of one
    event, a list (``inference.clean.clean`` reads it as one text and knows where each report starts)."""
    parts = []
    for piece in source.split("[SEP]"):
        title, _, body = piece.partition("ARTICLE=>")
        title = title.replace("TITLE=>", "").strip()
        body = body.strip() if body else ""
        parts.append(body if body else title)
    return [p for p in parts if p]


def is_article(text) -> bool:
    """An article's text, or the reports of one event: a list of texts, one at least not blank."""
    if isinstance(text, list):
        return all(isinstance(t, str) for t in text) and any(t.strip() for t in text)
    return isinstance(text, str) and bool(text.strip())


def read_brief_file(path: str | Path) -> list[dict]:
    """Pairs ``{"id", "text", "brief", "headline"}`` from JSONL/CSV/Parquet (text+brief columns, SumLLM's
    article+abstract, CNN/DailyMail's article+highlights, XSum's document+summary), from Label Studio's and
    Doccano's exports of summaries (``_Export``) or from a NeuS ``X.source`` file with its ``X.target`` beside it."""
    path = Path(path)
    suffix = format_suffix(path)
    if suffix in (".parquet", ".xlsx", ".xls") and compression_suffix(path.name):
        kind = "a Parquet file" if suffix == ".parquet" else "an Excel workbook"
        raise DataError(f"{path}: {kind} is compressed inside already; give the {suffix} file itself")
    text = check_file(path, text=suffix not in (".parquet", ".xlsx", ".xls"))
    if suffix == ".source":
        return _read_neus(path, text)
    if suffix == ".jsonl":
        records = ((f"{path}:{n}", r) for n, r in _jsonl_records(path, text))
    elif suffix == ".json":  # a JSON list of records, or JSON Lines (what Dataset.to_json writes)
        records = _json_list_or_lines(path, text)
    elif suffix in (".csv", ".tsv"):
        csv.field_size_limit(sys.maxsize)  # an article above 131,072 characters stopped the read (csv's default)
        with io.StringIO(text, newline="") as f:
            reader, records, start = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","), [], 2
            try:
                for row in reader:  # named by the line its record starts on (a quoted field may hold newlines)
                    records.append((f"{path}:{start}", row))
                    start = reader.line_num + 1
            except csv.Error as e:
                raise DataError(f"{path}:{reader.line_num}: not readable as {suffix[1:].upper()} ({e})") from None
    elif suffix == ".parquet":  # as the datasets library saves a split (Dataset.to_parquet)
        records = ((f"{path}#{n}", r) for n, r in enumerate(_parquet_rows(path), 1))
    elif suffix in (".xlsx", ".xls"):
        records = _workbook_rows(path)
    else:
        raise DataError(f"{path}: brief pairs must be .jsonl, .json, .csv, .tsv, .parquet, .xlsx, .xls or a NeuS "
                        ".source/.target pair (the text files may be .gz, .bz2, .xz or .zst compressed)")
    pairs, export = [], _Export(path)
    for where, record in records:
        got = export.pair(where, record)
        if got is None:
            continue
        where, text, brief, headline = got
        if isinstance(text, list) and not (is_article(text) and _text_key(record) == REPORTS_FIELD):
            raise DataError(f"{where}: the article text is a list: the reports of one event go in a field named "
                            "'reports', as a list of texts (strings, one not blank at least); a list of paragraphs: "
                            "join them first")
        if not is_article(text):
            raise DataError(f"{where}: no article text (looked for {', '.join(BRIEF_TEXT_KEYS)}; the record has "
                            f"{', '.join(map(repr, record)) or 'no fields'})")
        if not isinstance(brief, str) or not brief.strip():
            raise DataError(f"{where}: no brief (looked for {', '.join(BRIEF_TARGET_KEYS)}; the record has "
                            f"{', '.join(map(repr, record))})")
        neus_headline, brief = parse_neus_target(brief)
        check_pair(text, brief, where)
        pairs.append({"id": where, "text": text, "brief": brief, "headline": headline or neus_headline})
    export.report()
    if not pairs:
        raise DataError(f"{path}: no pairs found ({export.why_none() or 'empty file?'})")
    return pairs


def _joined(value):
    """A brief as an annotation tool writes it: a string, a list of submitted lines (Label Studio's TextArea,
    Doccano's responses) or Label Studio JSON_MIN's {"text": [lines]}; the lines joined one per line."""
    if isinstance(value, dict) and set(value) == {"text"}:
        value = value["text"]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(v.strip() for v in value if v.strip())
    return value


class _Export:
    """Brief pairs in annotation tools' exports, told apart record by record:

    * Label Studio's JSON export: ``{"data": {"text": ...}, "annotations": [{"result": [{"type": "textarea",
      "from_name": "answer", "value": {"text": [lines]}}]}]}`` (the Text Summarization template), the first
      annotation that was not cancelled;
    * its JSON_MIN, CSV and TSV exports: the data's fields and each control's answer side by side, with an
      ``annotation_id`` (one record per annotation: the first of a task is kept);
    * Doccano's sequence-to-sequence JSONL: ``{"text": ..., "label": [responses]}``, the first response.

    A control or field named brief/summary/... is the brief and one named headline the headline; a
    single other TextArea control (or JSON_MIN field) is the brief whatever its name. Tasks that have no
    brief yet are left out and counted, not read as pairs."""

    def __init__(self, path: Path):
        self.path = path
        self.unannotated = self.repeated = self.more_responses = 0
        self.seen: set = set()

    def pair(self, where: str, record: dict) -> tuple | None:
        """(where, text, brief, headline) of a record, or None for a record to leave out."""
        if isinstance(record.get("data"), dict):  # (a task imported and not annotated yet has no annotations)
            return self._labelstudio(record)
        if "annotation_id" in record:
            return self._json_min(where, record)
        label = record.get("label")
        if isinstance(label, list) and all(isinstance(v, str) for v in label) \
                and not any(k in record for k in BRIEF_TARGET_KEYS):
            if not label:  # a text that was not annotated yet
                self.unannotated += 1
                return None
            self.more_responses += len(label) > 1
            return where, _text_of(record), label[0], None
        return where, _text_of(record), next((record[k] for k in BRIEF_TARGET_KEYS if k in record), None), \
            record.get("headline")

    def _labelstudio(self, task: dict) -> tuple | None:
        where = f"{self.path}[task {task.get('id', '?')}]"
        areas: dict[str, list] = {}
        for r in first_annotation(task, where) or []:
            value = r.get("value") if isinstance(r, dict) else None
            if not isinstance(value, dict) or str(r.get("type")).lower() != "textarea":
                continue
            lines = value.get("text")
            lines = [lines] if isinstance(lines, str) else lines
            if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
                raise DataError(f"{where}: the TextArea {r.get('from_name')!r} holds {lines!r}, not lines of text")
            areas.setdefault(str(r.get("from_name")), []).extend(lines)
        areas = {name: _joined(lines) for name, lines in areas.items()}
        brief, headline = self._answer(where, {k: v for k, v in areas.items() if v})
        if brief is None:  # not annotated yet, skipped, or answered without a brief: nothing to learn from
            self.unannotated += 1
            return None
        return where, _task_text(task["data"], where), brief, headline

    def _json_min(self, where: str, record: dict) -> tuple | None:
        if record.get("id") is not None:
            where = f"{self.path}[task {record['id']}]"
            if repr(record["id"]) in self.seen:
                self.repeated += 1
                return None
            self.seen.add(repr(record["id"]))
        text_key = _text_key(record)
        answers = {k: _joined(v) for k, v in record.items() if k not in _MIN_META and k != text_key}
        answers = {k: v for k, v in answers.items() if isinstance(v, str) and v.strip()}
        brief, headline = self._answer(where, answers)
        if brief is None:
            self.unannotated += 1
            return None
        return where, record.get(text_key), brief, headline

    @staticmethod
    def _answer(where: str, answers: dict) -> tuple:
        """(brief, headline) among a task's answers by name: None for the brief when there is none."""
        headline = answers.get("headline")
        brief = next((answers[k] for k in BRIEF_TARGET_KEYS if k in answers), None)
        others = [k for k in answers if k != "headline"]
        if brief is None and len(others) == 1:
            brief = answers[others[0]]
        elif brief is None and others:
            raise DataError(f"{where}: more than one answer ({', '.join(map(repr, others))}) and none named as the "
                            f"brief: name the brief's control one of {', '.join(BRIEF_TARGET_KEYS)}")
        return brief, headline

    def report(self) -> None:
        if self.unannotated:
            logger.warning("%s: %d task(s) without a brief yet (not annotated, skipped or cancelled) left out",
                           self.path, self.unannotated)
        if self.repeated:
            logger.warning("%s: %d more annotation(s) of tasks annotated more than once left out (the first of each "
                           "task is used)", self.path, self.repeated)
        if self.more_responses:
            logger.warning("%s: %d text(s) with more than one response: the first of each is the brief", self.path,
                           self.more_responses)

    def why_none(self) -> str:
        return f"{self.unannotated} task(s), none with a brief yet" if self.unannotated else ""


def _text_key(record: dict) -> str | None:
    return next((k for k in BRIEF_TEXT_KEYS if k in record), None)


def _text_of(record: dict):
    key = _text_key(record)
    return record[key] if key else None


def _json_list_or_lines(path: Path, text: str) -> Iterator[tuple[str, dict]]:
    try:  # JSON Lines fail here at the end of their first record, so that one is parsed twice, no more
        whole = json.loads(text)
    except json.JSONDecodeError:
        yield from ((f"{path}:{n}", r) for n, r in _jsonl_records(path, text))
        return
    if isinstance(whole, dict):
        whole = [whole]
    if not isinstance(whole, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(whole).__name__}")
    for n, record in enumerate(whole):
        if not isinstance(record, dict):
            raise DataError(f"{path}[{n}]: expected a JSON object, got {type(record).__name__}")
        yield f"{path}[{n}]", record


def _workbook_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """The rows of an Excel workbook's sheets whose header row names an article column, as ``FILE[SHEET]:ROW``
    (the row number the sheet shows); other sheets (notes, a codebook) are passed over and named in a warning."""
    from conflictbrief.inference.batch import open_workbook, sheet_tables

    try:
        book = open_workbook(path, path.suffix.lower())
    except ImportError as e:
        raise DataError(f"{path}: {e} (or save the sheet as CSV)") from None
    except ValueError as e:  # not a workbook
        raise DataError(f"{path}: {e}") from None
    passed = []
    try:
        for title, header, rows in sheet_tables(book):
            if not set(header) & set(BRIEF_TEXT_KEYS):
                passed.append(title)
                continue
            yield from ((f"{path}[{title}]:{n}", data) for n, data in rows)
    # a sheet cut short or damaged: xml's ParseError (a SyntaxError), xlrd's errors (ValueError), a damaged
    # member of the .xlsx's zip (BadZipFile: bad CRC; zlib.error)
    except (SyntaxError, ValueError, OSError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: a sheet of the workbook is damaged ({e})") from None
    finally:
        book.close()
    if passed:
        logger.warning("%s: sheet(s) %s passed over: no article column (%s) in the header row", path,
                       ", ".join(map(repr, passed)), ", ".join(BRIEF_TEXT_KEYS))


def _parquet_rows(path: Path) -> Iterator[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
        for batch in table.iter_batches(batch_size=1000):
            yield from batch.to_pylist()
    except Exception as e:  # pyarrow's errors have no common base beyond ArrowException/OSError
        raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None


def check_pair(text: str, brief: str, where: str) -> None:
    """A pair whose article or brief is nothing once cleaned (markup, control characters) teaches nothing."""
    from conflictbrief.inference.clean import clean

    for name, value in (("article", text), ("brief", brief)):
        if not clean(value).text:
            raise DataError(f"{where}: the {name} is empty once cleaned (markup or control characters only)")


def _read_neus(path: Path, text: str) -> list[dict]:
    compression = compression_suffix(path.name)
    stem = path.name[: len(path.name) - len(compression) - len(".source")]
    # X.target beside X.source, compressed as the source is or otherwise
    names = dict.fromkeys(f"{stem}.target{c}" for c in (compression, "") + COMPRESSED_SUFFIXES)
    target = next((path.with_name(n) for n in names if path.with_name(n).is_file()), None)
    if target is None:
        raise DataError(f"{path}: a NeuS source file needs {stem}.target{compression} beside it")
    sources = text.splitlines()
    targets = check_file(target).splitlines()
    if len(sources) != len(targets):
        raise DataError(f"{path}: {len(sources)} sources but {len(targets)} targets in {target.name}")
    pairs = []
    for n, (src, tgt) in enumerate(zip(sources, targets), 1):
        headline, brief = parse_neus_target(tgt)
        text = parse_neus_source(src)
        if not text or not brief:
            raise DataError(f"{path}:{n}: empty source or target")
        check_pair(text, brief, f"{path}:{n}")
        pairs.append({"id": f"{path.name}:{n}", "text": text, "brief": brief, "headline": headline})
    return pairs
