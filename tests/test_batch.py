"""The batch job: one output per input in order, bad records reported, resume after SIGKILL exactly once."""
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conflictbrief.inference.batch import BatchError, expand_inputs, run_batch

GOOD = "Syrian forces shelled Idlib on Monday. About 120,000 people fled toward Turkey."


def write_bad_corpus(d):
    lines = [json.dumps({"text": GOOD}), "{broken json", json.dumps({"text": ""}), json.dumps({"text": 42}),
             json.dumps({"body": GOOD + " Body field."}), json.dumps({"other": "x"}), json.dumps(["a", "list"]),
             json.dumps({"text": "x" * 10_000_001})]
    raw = ("\n".join(lines) + "\n").encode() + b'{"text": "caf\xe9 latin-1 bytes"}\n' + b"\x00\xff\xfe binary junk\n"
    (d / "dump.jsonl").write_bytes(raw)
    (d / "more.csv").write_text("id,content\nA1,\"" + GOOD + "\"\nA2,\n")
    with gzip.open(d / "zipped.jsonl.gz", "wt") as f:
        f.write(json.dumps({"article": GOOD}) + "\n")
    (d / "one.txt").write_text(GOOD)
    (d / "latin.txt").write_bytes("Caf\xe9".encode("latin-1"))


def test_bad_records_become_error_records_and_nothing_is_lost(tiny_pipeline, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_bad_corpus(corpus)
    out = corpus / "out.jsonl"  # inside the input folder: the job must not read its own output
    summary = run_batch(tiny_pipeline, [str(corpus)], str(out), quiet=True, max_chars=1_000_000)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == summary["records"] == 15
    by_source = {r["source"].rsplit("/", 1)[-1]: r for r in rows}
    assert "brief" in by_source["dump.jsonl:1"] and by_source["dump.jsonl:1"]["entities"] is not None
    assert "invalid JSON" in by_source["dump.jsonl:2"]["error"]
    assert "is empty" in by_source["dump.jsonl:3"]["error"]
    assert "is int, not text" in by_source["dump.jsonl:4"]["error"]
    assert by_source["dump.jsonl:5"].get("error") is None  # 'body' found
    assert "no text field" in by_source["dump.jsonl:6"]["error"]
    assert "expected an object" in by_source["dump.jsonl:7"]["error"]
    assert "above the limit" in by_source["dump.jsonl:8"]["error"]
    # bytes that are not UTF-8 are read as Windows-1252 (--encoding auto), and the result says so; binary junk
    # is no text in any encoding
    assert by_source["dump.jsonl:9"]["text"] == "café latin-1 bytes"
    assert any("read as Windows-1252" in w for w in by_source["dump.jsonl:9"]["warnings"])
    assert "not UTF-8" in by_source["dump.jsonl:10"]["error"] and "binary" in by_source["dump.jsonl:10"]["error"]
    assert "is empty" in by_source["more.csv:3"]["error"] and by_source["more.csv:2"].get("error") is None
    assert by_source["latin.txt"]["text"] == "Café"
    assert summary["failed_total"] == 8 and summary["read_as_windows_1252"] == 2


def test_encoding_utf8_makes_bytes_that_are_not_utf8_errors(tiny_pipeline, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_bad_corpus(corpus)
    out = tmp_path / "out.jsonl"
    summary = run_batch(tiny_pipeline, [str(corpus)], str(out), quiet=True, max_chars=1_000_000, encoding="utf-8")
    by_source = {r["source"].rsplit("/", 1)[-1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert by_source["dump.jsonl:9"]["error"].endswith("line is not UTF-8 (byte 13: b'\\xe9')")
    assert "not UTF-8" in by_source["dump.jsonl:10"]["error"]
    assert by_source["latin.txt"]["error"].endswith("latin.txt: not UTF-8 (byte 3: b'\\xe9')")
    assert summary["failed_total"] == 10 and summary["read_as_windows_1252"] == 0


def test_windows_1252_utf16_and_binary_inputs(tiny_pipeline, tmp_path):
    from conflictbrief.inference.batch import RecordReader

    d = tmp_path / "in"
    d.mkdir()
    # Windows-1252 curly apostrophe (0x92) in a .txt, a CSV field and a JSONL line; a UTF-8 file with one such
    # byte pasted in keeps its UTF-8 quotes; Notepad's "Unicode" (UTF-16 with a byte-order mark) .txt and
    # Excel's "Unicode text" (UTF-16 TSV); a binary file under a .txt name
    (d / "a.txt").write_bytes(b"The army\x92s statement came on Monday. " + GOOD.encode())
    (d / "b.csv").write_bytes(b'id,text\nc1,"Rebels\x92 positions near Aleppo were hit."\n')
    (d / "c.jsonl").write_bytes(b'{"id": "j1", "text": "Caf\xe9 bombed in Kabul."}\n' + json.dumps(
        {"id": "j2", "text": GOOD}).encode() + b"\n")
    (d / "d.txt").write_bytes("\u201cIt was huge,\u201d a witness said of the army".encode() + b"\x92s raid.")
    (d / "e.txt").write_bytes("Forces in Homs said 4 soldiers died.".encode("utf-16"))
    (d / "f.tsv").write_bytes("id\ttext\nr1\tTroops entered Mosul\u2019s old city.\n".encode("utf-16"))
    (d / "g.txt").write_bytes(b"%PDF-1.4\x00\x01\xff\xfe stream")
    records = {r.source.rsplit("/", 1)[-1]: r for r in RecordReader().read(sorted(d.iterdir()))}
    assert records["a.txt"].text.startswith("The army\u2019s statement")
    assert records["a.txt"].notes == ("not UTF-8: bytes read as Windows-1252 (first at byte 8: b'\\x92')",)
    assert records["b.csv:2"].text == "Rebels\u2019 positions near Aleppo were hit."
    assert records["b.csv:2"].notes[0].startswith("field 'text': not UTF-8")
    assert records["c.jsonl:1"].text == "Caf\u00e9 bombed in Kabul." and records["c.jsonl:1"].notes
    assert records["c.jsonl:2"].text == GOOD and not records["c.jsonl:2"].notes
    assert records["d.txt"].text == "\u201cIt was huge,\u201d a witness said of the army\u2019s raid."
    assert records["e.txt"].text == "Forces in Homs said 4 soldiers died." and not records["e.txt"].notes
    assert records["f.tsv:2"].id == "r1" and records["f.tsv:2"].text == "Troops entered Mosul\u2019s old city."
    assert "binary data, not text" in records["g.txt"].error
    # a codec named: every file is read in it (Latin-1 reads 0x92 as a control character, as it is there)
    latin = {r.source.rsplit("/", 1)[-1]: r for r in RecordReader(encoding="latin-1").read([d / "a.txt"])}
    assert latin["a.txt"].text.startswith("The army\x92s") and not latin["a.txt"].notes

    out = tmp_path / "out.jsonl"
    summary = run_batch(tiny_pipeline, [str(d)], str(out), quiet=True, dedup=True)
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert summary["read_as_windows_1252"] == 4 and summary["failed_total"] == 1
    assert rows["a.txt"]["warnings"][0].startswith("not UTF-8: bytes read as Windows-1252")
    assert not any("Windows-1252" in w for w in rows["c.jsonl:2"]["warnings"])


def test_an_unknown_encoding_stops_the_job_before_anything_is_written(tiny_pipeline, tmp_path):
    (tmp_path / "a.txt").write_text(GOOD)
    with pytest.raises(BatchError, match="no such codec"):
        run_batch(tiny_pipeline, [str(tmp_path / "a.txt")], str(tmp_path / "out.jsonl"), quiet=True,
                  encoding="klingon")
    assert not (tmp_path / "out.jsonl").exists()


def test_files_of_a_folder_that_are_not_read_are_named(tiny_pipeline, tmp_path):
    # a scrape folder with .xml files beside the .txt ones: those articles are not in the output, say so
    d = tmp_path / "scrape"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text(GOOD)
    (d / "sub" / "b.xml").write_text("<story>" + GOOD + "</story>")
    (d / ".DS_Store").write_bytes(b"\0")
    messages = []
    out = d / "out.jsonl"  # the job's own output, state and lock files in the folder are not named
    run_batch(tiny_pipeline, [str(d)], str(out), quiet=True, log=messages.append)
    run_batch(tiny_pipeline, [str(d)], str(out), resume=True, quiet=True, log=messages.append)
    warnings = [m for m in messages if "not read" in m]
    assert len(warnings) == 2 and all("1 file(s) not read" in m and "sub/b.xml" in m for m in warnings)
    (d / "a.txt").unlink()
    with pytest.raises(BatchError, match=r"holds no .* files .*; it has 1 other file\(s\), e.g. b.xml"):
        expand_inputs([str(d)], (out, d / "out.jsonl.state.json", d / "out.jsonl.lock"))


def test_saved_web_pages_in_a_folder_are_read_as_one_article_each(tiny_pipeline, tmp_path):
    # a scrape folder of saved pages: each is one record, its menu and footer left out, read in its charset
    d = tmp_path / "pages"
    d.mkdir()
    body = "<nav><a>Home</a> <a>World</a></nav><article><h1>Idlib</h1><p>{}</p></article><footer>(c) Site</footer>"
    (d / "a.html").write_text("<html><head><title>Site</title></head><body>" + body.format(GOOD) + "</body></html>")
    (d / "b.htm").write_bytes(('<meta charset="windows-1251">' + body.format(GOOD + " Киев.")).encode("cp1251"))
    (d / "c.html.gz").write_bytes(gzip.compress(body.format(GOOD + " Caf\u00e9.").encode("cp1252")))
    (d / "d.html").write_text("<html><head><title>Site</title></head><body><script>go()</script></body></html>")
    out = tmp_path / "out.jsonl"
    run_batch(tiny_pipeline, [str(d)], str(out), quiet=True)
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["a.html"]["text"] == "Idlib\n\n" + GOOD
    assert rows["b.htm"]["text"].endswith("Turkey. Киев.")
    assert not any(w.startswith("not UTF-8") for w in rows["b.htm"]["warnings"])
    assert rows["c.html.gz"]["text"].endswith("Caf\u00e9.")
    assert rows["c.html.gz"]["warnings"][0].startswith("not UTF-8: bytes read as Windows-1252")
    raw = (d / "a.html").read_text()
    for e in rows["a.html"]["entities"]:  # raw offsets slice the page file
        assert raw[e["raw_start"]:e["raw_end"]] == e["text"]
    assert "d.html" in rows["d.html"]["error"] and "empty" in rows["d.html"]["error"]


def test_an_input_named_as_the_output_is_refused_before_it_is_touched(tiny_pipeline, tmp_path):
    # With --overwrite the dump was emptied, then read: every record lost.
    import pyarrow as pa
    import pyarrow.parquet as pq

    dump, table = tmp_path / "dump.jsonl", tmp_path / "dump.parquet"
    dump.write_text(json.dumps({"text": GOOD}) + "\n")
    pq.write_table(pa.table({"text": [GOOD]}), table)
    before = dump.read_bytes(), table.read_bytes()
    for path, fmt in ((dump, "jsonl"), (table, "parquet")):
        with pytest.raises(BatchError, match="both an input and the job's output"):
            run_batch(tiny_pipeline, [str(path)], str(path), overwrite=True, quiet=True, out_format=fmt)
    assert (dump.read_bytes(), table.read_bytes()) == before


def test_a_second_job_on_the_same_output_stops_at_once(tiny_pipeline, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    dump, out = tmp_path / "d.jsonl", tmp_path / "o.jsonl"
    dump.write_text(json.dumps({"text": GOOD}) + "\n")
    with open(tmp_path / "o.jsonl.lock", "w") as held:  # as the first job holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BatchError, match="being written by another job"):
            run_batch(tiny_pipeline, [str(dump)], str(out), overwrite=True, quiet=True)
    assert not out.exists()  # --overwrite did not empty anything
    assert run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True)["records"] == 1  # released: it runs


def test_on_windows_the_lock_is_a_byte_lock_and_a_held_one_stops_the_job(tiny_pipeline, tmp_path, monkeypatch):
    """Windows has no fcntl; there the job locks the lock file's first byte with msvcrt (stood in for here:
    this checks our side of the call, not Windows)."""
    import sys
    import types

    calls = []
    msvcrt = types.SimpleNamespace(LK_NBLCK=2, held=True)

    def locking(fd, mode, nbytes):
        calls.append((mode, nbytes))
        if msvcrt.held:
            raise PermissionError(13, "Permission denied")

    msvcrt.locking = locking
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl raises ImportError
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt)
    dump, out = tmp_path / "d.jsonl", tmp_path / "o.jsonl"
    dump.write_text(json.dumps({"text": GOOD}) + "\n")
    with pytest.raises(BatchError, match="being written by another job"):
        run_batch(tiny_pipeline, [str(dump)], str(out), overwrite=True, quiet=True)
    assert not out.exists() and calls == [(2, 1)]
    msvcrt.held = False
    assert run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True)["records"] == 1
    assert calls == [(2, 1), (2, 1)]


def test_output_exists_needs_resume_or_overwrite(tiny_pipeline, tmp_path):
    (tmp_path / "a.txt").write_text(GOOD)
    out = tmp_path / "o.jsonl"
    run_batch(tiny_pipeline, [str(tmp_path / "a.txt")], str(out), quiet=True)
    with pytest.raises(BatchError, match="--resume"):
        run_batch(tiny_pipeline, [str(tmp_path / "a.txt")], str(out), quiet=True)


def test_cli_refuses_an_existing_output_before_loading_the_models(tmp_path, monkeypatch, capsys):
    # It used to load the tagger (seconds; a briefer: longer) and only then say that -o exists.
    from conflictbrief.cli import main
    from conflictbrief.inference import pipeline

    def no_load(*args, **kwargs):
        raise AssertionError("the models were loaded")

    monkeypatch.setattr(pipeline.Pipeline, "load", no_load)
    (tmp_path / "a.txt").write_text(GOOD)
    for argv, existing in ((["-o", str(tmp_path / "o.jsonl")], "o.jsonl"),
                           (["-o", str(tmp_path / "o.parquet"), "--format", "parquet"], "o.jsonl")):
        (tmp_path / existing).write_text("")
        assert main(["brief", str(tmp_path / "a.txt"), *argv]) != 0
        assert f"{existing} exists: pass --resume" in capsys.readouterr().err


def test_resume_refuses_an_output_that_is_not_this_jobs(tiny_pipeline, tmp_path):
    # The fingerprint file may be gone (or the output copied in): the records themselves must still match.
    dump, out = tmp_path / "d.jsonl", tmp_path / "o.jsonl"
    dump.write_text("".join(json.dumps({"id": f"r{i}", "text": GOOD}) + "\n" for i in range(4)))
    run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True)
    lines = out.read_text(encoding="utf-8").splitlines()
    state = tmp_path / "o.jsonl.state.json"
    state.unlink()
    out.write_text("\n".join(lines * 2) + "\n", encoding="utf-8")  # more records than the inputs have
    with pytest.raises(BatchError, match="holds 8 records, more than its inputs have \\(4\\)"):
        run_batch(tiny_pipeline, [str(dump)], str(out), resume=True, quiet=True)
    state.unlink()
    out.write_text("\n".join([lines[0], lines[2]]) + "\n", encoding="utf-8")  # record 2 is not input record 2
    with pytest.raises(BatchError, match="its record 2 came from .*d.jsonl:3, but input record 2 is .*d.jsonl:2"):
        run_batch(tiny_pipeline, [str(dump)], str(out), resume=True, quiet=True)
    state.unlink()
    out.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")  # a true prefix resumes
    run_batch(tiny_pipeline, [str(dump)], str(out), resume=True, quiet=True)
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == [
        "r0", "r1", "r2", "r3"]


def test_dedup_and_parquet(tiny_pipeline, tmp_path):
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"text": GOOD, "id": i}) for i in range(3)) + "\n")
    summary = run_batch(tiny_pipeline, [str(tmp_path / "d.jsonl")], str(tmp_path / "o.parquet"),
                        dedup=True, quiet=True, out_format="parquet")
    import pyarrow.parquet as pq

    table = pq.read_table(summary["output"]).to_pylist()
    assert [r["id"] for r in table] == ["0", "1", "2"]  # the "id" field, found without --id-field
    assert [r["source"] for r in table] == [f"{tmp_path / 'd.jsonl'}:{i}" for i in (1, 2, 3)]
    assert len({r["brief"] for r in table}) == 1
    # analysed once; the copies are read back from the output (memory keeps an offset, not the result)
    assert [json.loads(r["result_json"]).get("duplicate_of") for r in table] == [None, "0", "0"]
    assert [json.loads(r["result_json"])["source"] for r in table] == [r["source"] for r in table]
    # Written a row group at a time; an id with a lone surrogate (a JSON "\\ud800" escape) is kept as that escape
    from conflictbrief.inference.batch import _to_parquet

    lines = [json.dumps({"id": f"r{i}", "source": "s", "brief": [{"text": "B."}]}) for i in range(4)]
    lines.append(json.dumps({"id": "\ud800x", "source": "s", "error": "bad"}))
    (tmp_path / "r.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    target = _to_parquet(tmp_path / "r.jsonl", tmp_path / "r.parquet", rows_per_group=2)
    assert pq.ParquetFile(target).metadata.num_row_groups == 3
    rows = pq.read_table(target).to_pylist()
    assert [r["id"] for r in rows] == ["r0", "r1", "r2", "r3", "\\ud800x"] and rows[0]["brief"] == "B."


def test_dedup_survives_a_resume(tiny_pipeline, tmp_path, monkeypatch):
    # copies of articles written before the interruption are read back, not analysed again
    other = "Aid convoys reached Aleppo on Monday after a week of shelling, the United Nations said."
    dump = tmp_path / "d.jsonl"
    dump.write_text("\n".join(json.dumps({"id": f"r{i}", "text": t}) for i, t in
                              enumerate([GOOD, other, GOOD, other, "A third article about Homs."])) + "\n")
    out = tmp_path / "o.jsonl"
    run_batch(tiny_pipeline, [str(dump)], str(out), dedup=True, quiet=True)
    lines = out.read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")  # as if stopped after two records
    analysed = []
    real = tiny_pipeline.analyze_batch
    monkeypatch.setattr(tiny_pipeline, "analyze_batch",
                        lambda items, **kw: real([analysed.append(i) or i for i in items], **kw))
    run_batch(tiny_pipeline, [str(dump)], str(out), dedup=True, resume=True, quiet=True)
    again = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [ids for ids, _ in analysed] == ["r4"]
    assert [r.get("duplicate_of") for r in again] == [None, None, "r0", "r1", None]
    assert again[2]["brief"] == again[0]["brief"] and again[3]["source"].endswith("d.jsonl:4")
    # as the job that was not stopped wrote them (record 4, analysed alone now, may differ in the tiny
    # random briefer's batch-dependent output)
    assert again[:4] == [json.loads(line) for line in lines[:4]]


def test_repeated_ids_are_named_and_counted_also_after_a_resume(tiny_pipeline, tmp_path):
    # two files numbered from 1: results are joined back by id, so a repeat is reported, and nothing is lost
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"id": i, "text": GOOD}) for i in (1, 2)) + "\n")
    (tmp_path / "b.csv").write_text(f'id,text\n1,"{GOOD}"\n3,"{GOOD}"\n2,"{GOOD}"\n')
    out, messages = tmp_path / "o.jsonl", []
    summary = run_batch(tiny_pipeline, [str(tmp_path / "a.jsonl"), str(tmp_path / "b.csv")], str(out), quiet=True,
                        id_field="id", log=messages.append)
    assert summary["records"] == 5 and summary["duplicate_ids"] == 2
    assert [m for m in messages if "repeats" in m] == [
        f"warning: {tmp_path / 'b.csv'}:2: id '1' repeats the id of an earlier record",
        f"warning: {tmp_path / 'b.csv'}:4: id '2' repeats the id of an earlier record"]
    lines = out.read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")  # stopped after the first repeat
    summary = run_batch(tiny_pipeline, [str(tmp_path / "a.jsonl"), str(tmp_path / "b.csv")], str(out), quiet=True,
                        id_field="id", resume=True, log=messages.append)
    assert summary["resumed_after"] == 3 and summary["duplicate_ids"] == 2  # the ids written before count too
    clean = run_batch(tiny_pipeline, [str(tmp_path / "a.jsonl")], str(tmp_path / "c.jsonl"), quiet=True, id_field="id")
    assert clean["duplicate_ids"] == 0


def test_sigkill_then_resume_is_exactly_once(tiny_tagger_dir, tiny_briefer_dir, tmp_path):
    n = 60
    (tmp_path / "dump.jsonl").write_text(
        "\n".join(json.dumps({"id": f"a{i}", "text": f"Report {i}. " + GOOD}) for i in range(n)) + "\n")
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "conflictbrief.cli", "brief", str(tmp_path / "dump.jsonl"), "-o", str(out),
           "--tagger", str(tiny_tagger_dir), "--briefer", str(tiny_briefer_dir), "--id-field", "id",
           "--batch-size", "2", "--quiet", "--device", "cpu", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 10):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with out.open("ab") as f:
        f.write(b'{"id": "a-torn')  # as if the kill landed mid-write
    partial = out.read_bytes().count(b"\n")
    assert 10 <= partial < n
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [f"a{i}" for i in range(n)]


def test_json_files_in_the_shapes_dumps_come_in(tmp_path):
    from conflictbrief.inference.batch import RecordReader

    # JSON Lines saved as .json (one bad line among them), MUC-4 style objects keyed by id, a wrapper object
    # with one list of articles, and a file that is no JSON at all.
    (tmp_path / "a_lines.json").write_text(json.dumps({"id": "L1", "text": GOOD}) + "\n{broken\n"
                                           + json.dumps({"text": GOOD}) + "\n")
    (tmp_path / "b_keyed.json").write_text(json.dumps({"TST-0001": {"doc": GOOD}, "TST-0002": {"doc": ""}}))
    (tmp_path / "c_wrapped.json").write_text(json.dumps({"count": 2, "articles": [{"text": GOOD}, {"body": GOOD}]}))
    (tmp_path / "d_broken.json").write_text('{"text": "unterminated')
    records = list(RecordReader().read(sorted(tmp_path.iterdir())))
    got = [(r.id.rsplit("/", 1)[-1], r.error is None) for r in records]
    assert got == [("L1", True), ("a_lines.json:2", False), ("a_lines.json:3", True),
                   ("TST-0001", True), ("TST-0002", False),
                   ("c_wrapped.json['articles'][0]", True), ("c_wrapped.json['articles'][1]", True),
                   ("d_broken.json", False)]
    assert "invalid JSON" in records[1].error and "is empty" in records[4].error
    assert "not a valid JSON document" in records[-1].error
    assert records[4].source.endswith("b_keyed.json['TST-0002']")


def test_tsv_with_a_header_is_read_and_a_headerless_one_is_one_clear_error(tmp_path):
    from conflictbrief.inference.batch import RecordReader

    (tmp_path / "a.tsv").write_text(f"id\ttext\tlabel\nT1\t{GOOD}\t1\nT2\t\t0\n")
    (tmp_path / "b.tsv").write_text(f"{GOOD}\t0\t1\nAnother article.\t1\t0\n")  # ConfliBERT style: no header
    records = list(RecordReader().read([tmp_path / "a.tsv", tmp_path / "b.tsv"]))
    assert [(r.id.rsplit("/", 1)[-1], r.error is None) for r in records] == [("T1", True), ("T2", False),
                                                                              ("b.tsv", False)]
    assert records[0].text == GOOD
    assert "has no text column" in records[2].error and "--text-field" in records[2].error


def test_nested_text_and_id_fields(tmp_path):
    from conflictbrief.inference.batch import RecordReader

    lines = [{"meta": {"uuid": "N1"}, "content": {"body": GOOD}}, {"meta": {}, "content": {"title": "x"}},
             {"content": "flat string"}]
    (tmp_path / "n.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "one.json").write_text(json.dumps(lines[0]))  # one nested article, not objects keyed by id
    reader = RecordReader(text_field="content.body", id_field="meta.uuid")
    records = list(reader.read([tmp_path / "n.jsonl", tmp_path / "one.json"]))
    assert [(r.id.rsplit("/", 1)[-1], r.error is None) for r in records] == [
        ("N1", True), ("n.jsonl:2", False), ("n.jsonl:3", False), ("N1", True)]
    assert records[0].text == GOOD and "'content.body'" in records[1].error


def test_label_studio_tasks_are_read_by_their_data_text(tmp_path):
    """A Label Studio export or import file (tasks with the text under 'data') was an error per task unless
    --text-field data.text was given; a top-level text field still comes first."""
    from conflictbrief.inference.batch import RecordReader

    tasks = [{"id": 7, "data": {"text": GOOD}, "annotations": []}, {"id": 8, "data": {"article": GOOD}},
             {"id": 9, "data": {"url": "https://example.org"}}, {"id": 10, "text": "top", "data": {"text": GOOD}}]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    records = list(RecordReader().read([tmp_path / "ls.json"]))
    assert [(r.id, r.text) for r in records] == [("7", GOOD), ("8", GOOD), ("9", None), ("10", "top")]
    assert "no text field" in records[2].error and "'data'" in records[2].error


def test_a_record_the_models_fail_on_is_one_error_and_the_others_go_on(tiny_pipeline, tmp_path, monkeypatch):
    # A lone surrogate (half an emoji, a JSON "\\ud83d" escape) used to stop the whole job in the tokenizer;
    # cleaning drops it now. Any other failure inside the models stays with its record: the batch it was
    # in is rerun one article at a time.
    dump = tmp_path / "d.jsonl"
    dump.write_text("\n".join(json.dumps(r) for r in [{"id": "emoji", "text": "\ud83d " + GOOD},
                                                        {"id": "boom", "text": "BOOM. " + GOOD},
                                                        {"id": "ok", "text": GOOD}]) + "\n")
    tag = tiny_pipeline.tagger.tag

    def failing(texts, *args, **kwargs):
        if any("BOOM" in t for t in texts):
            raise RuntimeError("simulated failure")
        return tag(texts, *args, **kwargs)

    monkeypatch.setattr(tiny_pipeline.tagger, "tag", failing)
    out = tmp_path / "out.jsonl"
    summary = run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["emoji", "boom", "ok"]
    assert rows[0].get("error") is None and rows[0]["text"] == GOOD and rows[0]["brief"]
    assert rows[1]["error"].startswith("record 'boom': analysis failed (RuntimeError: simulated failure)")
    assert rows[2].get("error") is None and rows[2]["brief"]
    assert summary["failed_total"] == 1


def test_a_byte_order_mark_hides_no_column_and_breaks_no_line(tiny_pipeline, tmp_path):
    # Excel writes CSV with a byte-order mark: before, the header's first column ('text' here) was not found
    # and the whole file was one error; a JSONL or JSON file starting with one was invalid JSON.
    bom = "\ufeff"
    (tmp_path / "a.csv").write_text(bom + 'text,id\n"' + GOOD + '",c1\n', encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(bom + json.dumps({"id": "j1", "text": GOOD}) + "\n", encoding="utf-8")
    (tmp_path / "c.json").write_text(bom + json.dumps([{"id": "d1", "text": GOOD}]), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    summary = run_batch(tiny_pipeline, [str(tmp_path / n) for n in ("a.csv", "b.jsonl", "c.json")], str(out),
                        quiet=True)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r.get("error")) for r in rows] == [("c1", None), ("j1", None), ("d1", None)]
    assert summary["failed_total"] == 0


def test_a_corrupt_parquet_or_truncated_gz_is_one_error_record(tiny_pipeline, tmp_path):
    # Counting records for the progress bar opened them outside the reader's error handling: the job
    # stopped before its first record.
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not a parquet file")
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress((json.dumps({"id": "g1", "text": GOOD}) + "\n"
                                                            + json.dumps({"text": GOOD})).encode())[:-12])
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": [GOOD, None]}), tmp_path / "ok.parquet")
    out = tmp_path / "out.jsonl"
    run_batch(tiny_pipeline, [str(tmp_path / n) for n in ("broken.parquet", "cut.jsonl.gz", "ok.parquet")],
              str(out), quiet=True)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"].rsplit("/", 1)[-1] for r in rows] == ["broken.parquet:unreadable", "g1",
                                                          "cut.jsonl.gz:unreadable", "p1", "p2"]
    assert "cannot read further" in rows[0]["error"] and "cannot read further" in rows[2]["error"]
    assert rows[1].get("error") is None and rows[3].get("error") is None
    assert rows[4]["error"].endswith("field 'text' is null")


def damaged_in_the_middle(data: bytes) -> bytes:
    """``data`` with 40 bytes in its middle overwritten: deflate data that breaks there (zlib.error), where data
    cut short breaks at its end (EOFError)."""
    middle = len(data) // 2
    return data[:middle] + b"\xff" * 40 + data[middle + 40:]


def test_damaged_deflate_data_in_a_gz_a_zip_or_a_workbook_is_an_error_record_not_a_stopped_job(tmp_path):
    """A .gz, a .zip member or an .xlsx whose compressed bytes are damaged (a bad disk, a download with a bad
    block: not only cut short) raised zlib.error, which stopped the whole job before 2026-12-06."""
    import zipfile
    import zlib

    import openpyxl

    from conflictbrief.inference.batch import RecordReader

    lines = "".join(json.dumps({"id": f"r{i}", "text": f"Shelling hit Idlib on day {i}; {i * 7} fled."}) + "\n"
                    for i in range(400)).encode()
    with pytest.raises(zlib.error):
        gzip.decompress(damaged_in_the_middle(gzip.compress(lines)))
    (tmp_path / "bad.jsonl.gz").write_bytes(damaged_in_the_middle(gzip.compress(lines)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("in/a.jsonl", lines)
    (tmp_path / "bad.zip").write_bytes(damaged_in_the_middle(buffer.getvalue()))
    book = openpyxl.Workbook()
    for i in range(300):
        book.active.append([f"r{i}", f"Shelling hit Idlib on day {i}; {i * 7} fled."] if i else ["id", "text"])
    book.save(tmp_path / "good.xlsx")
    (tmp_path / "bad.xlsx").write_bytes(damaged_in_the_middle((tmp_path / "good.xlsx").read_bytes()))
    (tmp_path / "after.jsonl").write_text(json.dumps({"id": "after", "text": GOOD}) + "\n")
    names = ["bad.jsonl.gz", "bad.zip", "bad.xlsx", "after.jsonl"]
    records = list(RecordReader().read(expand_inputs([str(tmp_path / n) for n in names])))
    broken = [r for r in records if r.error]
    assert [r.id.removeprefix(str(tmp_path) + "/") for r in broken] == [
        "bad.jsonl.gz:unreadable", "bad.zip/in/a.jsonl:unreadable", "bad.xlsx:unreadable"]
    assert all("cannot read further" in r.error for r in broken)
    assert records[-1].id == "after" and 0 < len(records) - 4 < 3 * 400  # the records up to the damage, then on


def test_resume_reads_the_output_a_block_at_a_time():
    # --resume used to read the whole output into memory to count its records and find the torn tail.
    import io
    import random

    from conflictbrief.inference.batch import _complete_lines

    rng = random.Random(0)
    cases = [b"", b"torn", b"\n\n", b'{"a": 1}\n{"b": 2}\n{"c"'] + [
        bytes(rng.choice(b"ab\n") for _ in range(rng.randint(0, 30))) for _ in range(200)]
    for data in cases:
        cut = data.rfind(b"\n") + 1
        last = data[data.rfind(b"\n", 0, cut - 1) + 1 if cut else 0: cut]
        for block in (1, 3, 1 << 20):
            assert _complete_lines(io.BytesIO(data), block) == (data[:cut].count(b"\n"), cut, last)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="the time limit needs SIGALRM (POSIX)")
def test_an_article_that_runs_away_is_one_error_and_the_job_goes_on(tiny_pipeline, tmp_path, monkeypatch):
    # 2026-12-05: one regex backtracked exponentially on one-line articles in capitals and the job sat on one
    # record for minutes. A record whose analysis runs past --time-limit is stopped and reported; the batch it
    # was in is rerun one article at a time. Here one article makes the tagger, another cleaning, run away.
    import re

    from conflictbrief.inference import pipeline as pipeline_module

    runaway = re.compile(r"(a+)+$")
    tag, clean = tiny_pipeline.tagger.tag, pipeline_module.clean

    def slow_tag(texts, *args, **kwargs):
        if any("HANG" in t for t in texts):
            runaway.match("a" * 60 + "b")
        return tag(texts, *args, **kwargs)

    def slow_clean(text):
        if "STUCK" in text:
            runaway.match("a" * 60 + "b")
        return clean(text)

    monkeypatch.setattr(tiny_pipeline.tagger, "tag", slow_tag)
    monkeypatch.setattr(pipeline_module, "clean", slow_clean)
    dump = tmp_path / "d.jsonl"
    ids = ["a", "hang", "b", "stuck", "c"]
    dump.write_text("\n".join(json.dumps({"id": i, "text": ("HANG. " if i == "hang" else "STUCK. " if i == "stuck"
                                                            else "") + GOOD}) for i in ids) + "\n")
    out = tmp_path / "out.jsonl"
    started = time.perf_counter()
    summary = run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, time_limit=2)
    assert time.perf_counter() - started < 60
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ids
    assert [bool(r.get("error")) for r in rows] == [False, True, False, True, False]
    for row in (rows[1], rows[3]):
        assert row["error"].startswith(f"record {row['id']!r}: analysis ran past its time limit of 2 s")
        assert "--time-limit" in row["error"]
    assert all(r["brief"] for r in rows if not r.get("error"))
    assert summary["failed_total"] == 2
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_a_python_caller_gets_no_time_limit_unless_it_asks(tiny_pipeline, monkeypatch):
    from conflictbrief.inference.pipeline import TimeLimitError

    assert tiny_pipeline.time_limit is None
    tag = tiny_pipeline.tagger.tag
    monkeypatch.setattr(tiny_pipeline.tagger, "tag", lambda texts, *a, **k: (time.sleep(0.3), tag(texts, *a, **k))[1])
    assert tiny_pipeline.analyze(GOOD, id="x").brief
    if hasattr(signal, "setitimer"):
        tiny_pipeline.time_limit = 0.1
        with pytest.raises(TimeLimitError, match=r"record 'x': analysis ran past its time limit of 0.1 s"):
            tiny_pipeline.analyze(GOOD, id="x")


def test_the_output_format_follows_the_name_and_a_name_of_another_kind_is_refused(tiny_pipeline, tmp_path,
                                                                                   monkeypatch, capsys):
    """`-o out.parquet` without --format wrote JSON Lines under the Parquet name, and `-o out.csv` or
    `-o out.jsonl.gz` JSON Lines under those; a name and a --format that disagree gave out.jsonl.jsonl."""
    import pyarrow.parquet as pq

    from conflictbrief.cli import main
    from conflictbrief.inference import pipeline

    (tmp_path / "a.txt").write_text(GOOD)
    summary = run_batch(tiny_pipeline, [str(tmp_path / "a.txt")], str(tmp_path / "o.parquet"), quiet=True)
    assert summary["output"] == str(tmp_path / "o.parquet") and pq.read_table(tmp_path / "o.parquet").num_rows == 1

    def no_load(*args, **kwargs):
        raise AssertionError("the models were loaded")

    monkeypatch.setattr(pipeline.Pipeline, "load", no_load)
    for argv, said in ((["-o", "o.tsv"], "-o o.tsv: the job writes JSON Lines (name the output .jsonl), "
                                         "Parquet (.parquet), CSV (.csv) or Label Studio tasks (.json with --format "
                                         "labelstudio), not TSV files"),
                       (["-o", "o.jsonl", "--format", "labelstudio"], "Label Studio imports a JSON file; name it o.json"),
                       (["-o", "o.jsonl.gz"], "not compressed files"),
                       (["-o", "o.csv", "--format", "parquet"], "the name says csv; name it o.parquet"),
                       (["-o", "-", "--format", "csv"], "CSV needs a file name (-o out.csv)"),
                       (["-o", "o.jsonl", "--format", "parquet"], "the name says jsonl; name it o.parquet"),
                       (["-o", "p.parquet", "--format", "jsonl"], "the name says parquet; name it p.jsonl")):
        monkeypatch.chdir(tmp_path)
        assert main(["brief", "a.txt", *argv]) == 2
        assert said in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name[:2] in ("o.", "p.")) == \
        ["o.jsonl", "o.jsonl.lock", "o.jsonl.state.json", "o.parquet"]  # the first job's; nothing else written


def test_a_job_whose_stderr_is_a_file_logs_progress_lines(tiny_pipeline, tmp_path):
    """No terminal, no bar: a job under nohup or a scheduler said nothing from its start to its summary."""
    from conflictbrief.inference.batch import _duration

    dump = tmp_path / "d.jsonl"
    dump.write_text("".join(json.dumps({"id": f"r{i}", "text": GOOD}) + "\n" for i in range(5)))
    said = []
    run_batch(tiny_pipeline, [str(dump)], str(tmp_path / "o.jsonl"), log=said.append, progress_every=1e-9)
    progress = [m for m in said if m.startswith("progress:")]
    assert progress[0].startswith("progress: 1 of 5 records (20%), ") and "articles/s this run, about" in progress[0]
    assert progress[-1].startswith("progress: 5 of 5 records (100%)") and progress[-1].endswith("about 0 s left")
    said.clear()  # --group-by: output records (events, records alone, errors), known once every record is read
    run_batch(tiny_pipeline, [str(_events_dump(tmp_path / "e.jsonl"))], str(tmp_path / "e_out.jsonl"), log=said.append,
              progress_every=1e-9, group_by="event")
    progress = [m for m in said if m.startswith("progress:")]
    assert progress[0].startswith("progress: 1 of 6 records (17%), ") and "records/s this run, about" in progress[0]
    said.clear()
    run_batch(tiny_pipeline, [str(dump)], str(tmp_path / "o.jsonl"), log=said.append, overwrite=True)
    assert not [m for m in said if m.startswith("progress:")]  # the default, once a minute: none in a second
    said.clear()
    run_batch(tiny_pipeline, [str(dump)], str(tmp_path / "o.jsonl"), log=said.append, overwrite=True, quiet=True,
              progress_every=1e-9)
    assert said == []
    assert [_duration(s) for s in (42, 600, 7199, 7230)] == ["42 s", "10 min", "2 h 0 min", "2 h 0 min"]
    # inputs not counted ahead (CSV, tar archives, standard input): the first progress line was a TypeError
    # that stopped the job (found on the GLOCON sample as a .tar.xz, after 2,561 of its 3,002 records)
    csv_dump = tmp_path / "d.csv"
    csv_dump.write_text("id,text\n" + "".join(f"c{i},{GOOD}\n" for i in range(3)))
    said.clear()
    summary = run_batch(tiny_pipeline, [str(csv_dump)], str(tmp_path / "c.jsonl"), log=said.append,
                        progress_every=1e-9)
    progress = [m for m in said if m.startswith("progress:")]
    assert summary["records"] == 3 and progress[0].startswith("progress: 1 records, ")
    assert progress[-1].startswith("progress: 3 records, ") and progress[-1].endswith("articles/s this run")


def test_limit_runs_the_first_records_and_resume_goes_on_from_there(tiny_pipeline, tmp_path):
    dump, out = tmp_path / "d.jsonl", tmp_path / "o.jsonl"
    dump.write_text("".join(json.dumps({"id": f"r{i}", "text": GOOD}) + "\n" for i in range(5)))
    summary = run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, limit=2)
    assert summary["records"] == 2 and [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["r0", "r1"]
    assert run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, limit=2, resume=True)["written_this_run"] == 0
    # the limit changes no result: the trial goes on into more of the dump, and then all of it
    assert run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, limit=3, resume=True)["written_this_run"] == 1
    summary = run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, resume=True)
    assert summary["written_this_run"] == 2 and summary["records"] == 5
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == [f"r{i}" for i in range(5)]
    with pytest.raises(BatchError, match="holds 5 records already, more than --limit 4: nothing to do"):
        run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, limit=4, resume=True)


class _Stream(io.TextIOWrapper):
    """A pipe as standard input or output: binary underneath, no terminal."""


def _stdin(monkeypatch, data: bytes):
    monkeypatch.setattr(sys, "stdin", _Stream(io.BufferedReader(io.BytesIO(data))))


def _stdout(monkeypatch) -> io.BytesIO:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", _Stream(raw))
    return raw


def test_standard_input_and_output(tiny_pipeline, tmp_path, monkeypatch):
    dump = "".join(json.dumps(r) + "\n" for r in [{"id": "a", "text": GOOD}, {"id": "b", "text": "Another one."}])
    dump += "{broken\n" + json.dumps({"id": "c", "text": GOOD}) + "\n"
    rows = []
    for data in (dump.encode(), gzip.compress(dump.encode())):  # zcat-less: gzip is told by its first bytes
        _stdin(monkeypatch, data)
        raw = _stdout(monkeypatch)
        summary = run_batch(tiny_pipeline, ["-"], "-", quiet=True, dedup=True)
        rows.append([{k: v for k, v in json.loads(line).items() if k != "timings"}
                     for line in raw.getvalue().decode().splitlines()])
        assert summary["output"] == "<stdout>" and summary["records"] == 4 and summary["failed_total"] == 1
    assert rows[0] == rows[1]
    got = rows[0]
    assert [r["id"] for r in got] == ["a", "b", "<stdin>:3", "c"]
    assert [r["source"] for r in got] == ["<stdin>:1", "<stdin>:2", "<stdin>:3", "<stdin>:4"]
    assert "invalid JSON" in got[2]["error"] and "standard input is read as JSON Lines" not in got[2]["error"]
    # --dedup reads the first copy's result back from a copy of what went to standard output
    assert got[3]["duplicate_of"] == "a" and got[3]["brief"] == got[0]["brief"]
    # standard input next to files, into a file
    (tmp_path / "one.txt").write_text(GOOD)
    _stdin(monkeypatch, dump.encode())
    run_batch(tiny_pipeline, [str(tmp_path / "one.txt"), "-"], str(tmp_path / "o.jsonl"), quiet=True)
    sources = [json.loads(x)["source"] for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert sources[0].endswith("one.txt") and sources[1:] == ["<stdin>:1", "<stdin>:2", "<stdin>:3", "<stdin>:4"]


def test_standard_input_resumes_when_the_same_stream_comes_again(tiny_pipeline, tmp_path, monkeypatch):
    dump = "".join(json.dumps({"id": f"r{i}", "text": GOOD}) + "\n" for i in range(5))
    out = tmp_path / "o.jsonl"
    _stdin(monkeypatch, dump.encode())
    run_batch(tiny_pipeline, ["-"], str(out), quiet=True, limit=2)  # as if stopped after two records
    _stdin(monkeypatch, dump.encode())
    summary = run_batch(tiny_pipeline, ["-"], str(out), quiet=True, resume=True)
    assert summary["resumed_after"] == 2 and summary["written_this_run"] == 3
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == [f"r{i}" for i in range(5)]
    # a stream with fewer records than the output holds is not this job's
    _stdin(monkeypatch, "".join(dump.splitlines(keepends=True)[:2]).encode())
    with pytest.raises(BatchError, match="more than its inputs have"):
        run_batch(tiny_pipeline, ["-"], str(out), quiet=True, resume=True)
    # nor is another stream of at least as many records, told by an id or a text among its first 1,000
    # (before 2026-12-06 it was taken for this job's if its record 5 came from line 5 as well)
    before = out.read_bytes()
    for other, said in ((dump.replace('"r1"', '"x1"'), r"input record 2 \(<stdin>:2\) has the id 'x1', where the "
                                                      r"output's has 'r1': another stream"),
                        (dump.replace(GOOD, GOOD.replace("Idlib", "Homs"), 1) + dump,
                         r"input record 1 \(<stdin>:1\) has another text")):
        _stdin(monkeypatch, other.encode())
        with pytest.raises(BatchError, match=said):
            run_batch(tiny_pipeline, ["-"], str(out), quiet=True, resume=True)
    assert out.read_bytes() == before
    # records without ids are told by their text (their ids are <stdin>:LINE in any stream)
    bare = "".join(json.dumps({"text": f"{GOOD} Report {i}."}) + "\n" for i in range(3))
    _stdin(monkeypatch, bare.encode())
    run_batch(tiny_pipeline, ["-"], str(tmp_path / "b.jsonl"), quiet=True, limit=2)
    _stdin(monkeypatch, bare.replace("Report 1", "Report 7").encode())
    with pytest.raises(BatchError, match=r"input record 2 \(<stdin>:2\) has another text"):
        run_batch(tiny_pipeline, ["-"], str(tmp_path / "b.jsonl"), quiet=True, resume=True)
    _stdin(monkeypatch, bare.encode())
    assert run_batch(tiny_pipeline, ["-"], str(tmp_path / "b.jsonl"), quiet=True, resume=True)["written_this_run"] == 1


def test_standard_input_and_output_refuse_what_they_cannot_do(tiny_pipeline, tmp_path, monkeypatch):
    _stdin(monkeypatch, b'{"text": "x"}\n')
    with pytest.raises(BatchError, match="named twice"):
        run_batch(tiny_pipeline, ["-", "-"], str(tmp_path / "o.jsonl"), quiet=True)
    with pytest.raises(BatchError, match="--resume needs an output file"):
        run_batch(tiny_pipeline, ["-"], "-", quiet=True, resume=True)
    with pytest.raises(BatchError, match="Parquet needs a file name"):
        run_batch(tiny_pipeline, ["-"], "-", quiet=True, out_format="parquet")
    tty = _Stream(io.BufferedReader(io.BytesIO(b"")))
    tty.isatty = lambda: True
    monkeypatch.setattr(sys, "stdin", tty)
    with pytest.raises(BatchError, match="standard input is a terminal"):
        run_batch(tiny_pipeline, ["-"], str(tmp_path / "o.jsonl"), quiet=True)
    assert not (tmp_path / "o.jsonl").exists()  # refused before anything was written


def test_output_to_a_reader_that_stops_early_ends_quietly(tiny_tagger_dir, tmp_path):
    """``conflictbrief tag - -o - | head -1``: the closed pipe ends the job without a traceback."""
    dump = "".join(json.dumps({"id": f"r{i}", "text": GOOD}) + "\n" for i in range(400))
    cmd = (f"{sys.executable} -m conflictbrief.cli tag - -o - --tagger {tiny_tagger_dir} --device cpu --threads 1 "
           f"--batch-size 8 | head -1")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], input=dump, capture_output=True, text=True,
                          timeout=600)
    assert json.loads(done.stdout)["id"] == "r0"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 1  # the job did not finish


def test_inputs_without_records_are_named_in_a_warning(tiny_pipeline, tmp_path, monkeypatch):
    (tmp_path / "empty.jsonl").write_text("\n")
    messages = []
    summary = run_batch(tiny_pipeline, [str(tmp_path / "empty.jsonl")], str(tmp_path / "o.jsonl"), quiet=True,
                        log=messages.append)
    assert summary["records"] == 0 and any("hold no records" in m and "empty.jsonl" in m for m in messages)
    _stdin(monkeypatch, b"")  # a pipe whose writer failed: `zcat missing.gz | conflictbrief brief - ...`
    _stdout(monkeypatch)
    messages.clear()
    run_batch(tiny_pipeline, ["-"], "-", quiet=True, log=messages.append)
    assert any("hold no records: <stdin>" in m for m in messages)
    messages.clear()
    (tmp_path / "one.jsonl").write_text(json.dumps({"text": GOOD}) + "\n")
    run_batch(tiny_pipeline, [str(tmp_path / "one.jsonl")], str(tmp_path / "o2.jsonl"), quiet=True,
              log=messages.append)
    assert not any("no records" in m for m in messages)


def test_a_json_file_of_json_lines_is_read_a_line_at_a_time(tmp_path):
    """A scraper's dump of JSON Lines saved as .json was read into memory whole (and decoded: twice its size
    and more) before it was read line by line; a JSON document still is read whole, as it must be."""
    import tracemalloc

    from conflictbrief.inference.batch import RecordReader

    body = "x" * 20_000
    lines = "".join(json.dumps({"id": f"r{i}", "text": f"Report {i}. {body}"}) + "\n" for i in range(500))
    (tmp_path / "dump.json").write_text("\n" + lines)  # ~10 MB, a blank first line included
    (tmp_path / "doc.json").write_text("[\n" + lines.replace("}\n", "},\n").rstrip(",\n") + "\n]\n")
    reader = RecordReader()
    for name, most in (("dump.json", 2_000_000), ("doc.json", None)):
        tracemalloc.start()
        n = sum(1 for r in reader.read([tmp_path / name]) if r.error is None)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert n == 500
        if most:
            assert peak < most, peak
        else:
            assert peak > 10_000_000  # read whole
    # a one-line file, a pretty-printed object and a first line that is no JSON keep their old readings
    (tmp_path / "one.json").write_text(json.dumps({"id": "o", "text": GOOD}) + "\n")
    (tmp_path / "pretty.json").write_text(json.dumps({"id": "p", "text": GOOD}, indent=2) + "\n")
    (tmp_path / "bad.json").write_text("{broken\n" + json.dumps({"text": GOOD}) + "\n")
    got = {r.source.rsplit("/", 1)[-1]: r for r in reader.read([tmp_path / n for n in ("one.json", "pretty.json",
                                                                                        "bad.json")])}
    assert got["one.json[0]"].id == "o" and got["pretty.json[0]"].id == "p"
    assert "not a valid JSON document" in got["bad.json"].error
    assert reader.count([tmp_path / "dump.json"]) == 500  # the progress bar knows the total
    assert reader.count([tmp_path / "doc.json"]) is None


def test_bzip2_and_xz_dumps_files_and_standard_input(tiny_pipeline, tmp_path, monkeypatch):
    import bz2
    import lzma

    from conflictbrief.inference.batch import RecordReader

    lines = "".join(json.dumps({"id": f"r{i}", "text": GOOD}) + "\n" for i in range(3)).encode()
    tmp_path = tmp_path / "dumps"
    tmp_path.mkdir()
    (tmp_path / "a.jsonl.bz2").write_bytes(bz2.compress(lines))
    (tmp_path / "b.jsonl.xz").write_bytes(lzma.compress(lines))
    (tmp_path / "c.txt.xz").write_bytes(lzma.compress(GOOD.encode()))
    (tmp_path / "cut.jsonl.xz").write_bytes(lzma.compress(lines)[:-20])  # broken off
    (tmp_path / "junk.jsonl.bz2").write_bytes(b"BZh9 not bzip2 at all")  # corrupt
    reader = RecordReader()
    files = expand_inputs([str(tmp_path)])
    got = [(r.source.rsplit("/", 1)[-1], r.error is None) for r in reader.read(files)]
    assert got[:7] == [(f"a.jsonl.bz2:{i}", True) for i in (1, 2, 3)] + [(f"b.jsonl.xz:{i}", True) for i in (1, 2, 3)] \
        + [("c.txt.xz", True)]
    assert got[-1] == ("junk.jsonl.bz2", False) and ("cut.jsonl.xz", False) in got
    assert reader.count([tmp_path / "a.jsonl.bz2", tmp_path / "b.jsonl.xz"]) == 6
    for compress in (bz2.compress, lzma.compress, gzip.compress, lambda b: b):  # standard input: by its bytes
        _stdin(monkeypatch, compress(lines))
        assert [r.id for r in RecordReader().read(expand_inputs(["-"]))] == ["r0", "r1", "r2"]


def test_plain_text_on_standard_input_gets_a_hint(monkeypatch):
    from conflictbrief.inference.batch import RecordReader

    _stdin(monkeypatch, ("\n" + GOOD + "\nAnother line.\n").encode())
    records = list(RecordReader().read(expand_inputs(["-"])))
    assert [r.source for r in records] == ["<stdin>:2", "<stdin>:3"]
    assert "standard input is read as JSON Lines" in records[0].error  # the first record only
    assert "standard input" not in records[1].error and "invalid JSON" in records[1].error


def test_tag_writes_entities_only_and_does_not_resume_as_brief(tiny_pipeline, tmp_path, monkeypatch):
    """`tag` used to write "no briefer loaded: entities only" into the warnings of every record, so that a user
    looking for records with warnings found them all; and `brief --resume` went on in a `tag` output."""
    dump, out = tmp_path / "d.jsonl", tmp_path / "o.jsonl"
    dump.write_text("".join(json.dumps({"id": f"r{i}", "text": GOOD}) + "\n" for i in range(3)))
    monkeypatch.setattr(tiny_pipeline.briefer, "brief", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, limit=2, brief=False)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["brief"] for r in rows] == [[], []] and all(r["entities"] for r in rows)
    assert [r["warnings"] for r in rows] == [[], []]
    with pytest.raises(BatchError, match="written for other inputs or options"):
        run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, resume=True)  # brief: the other kind
    assert run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, resume=True, brief=False)["records"] == 3


def test_resume_does_not_mix_the_models_labels_with_consistent_names(tiny_pipeline, tmp_path):
    """--model-labels changes entities (a surname keeps the model's label): an output of one is not resumed by
    the other; an output of the default resumes as before the option existed (no new fingerprint key)."""
    dump, out = tmp_path / "d.jsonl", tmp_path / "o.jsonl"
    dump.write_text("".join(json.dumps({"id": f"r{i}", "text": GOOD}) + "\n" for i in range(3)))
    tiny_pipeline.tagger.consistent_names = False
    run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, limit=2, brief=False)
    tiny_pipeline.tagger.consistent_names = True
    with pytest.raises(BatchError, match="written for other inputs or options"):
        run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, resume=True, brief=False)
    tiny_pipeline.tagger.consistent_names = False
    assert run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, resume=True, brief=False)["records"] == 3


def _zip_flag(data: bytes, member: str, offset: int, value: int) -> bytes:
    """``data`` (a zip archive) with the 2-byte field at ``offset`` of ``member``'s central-directory entry set."""
    import struct

    pos = data.index(b"PK\x01\x02")
    while True:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46:pos + 46 + name_len] == member.encode():
            return data[:pos + offset] + struct.pack("<H", value) + data[pos + offset + 2:]
        pos = data.index(b"PK\x01\x02", pos + 46)


def test_a_zip_archive_is_read_as_a_folder_is(tiny_pipeline, tmp_path):
    """A .zip of articles (a Kaggle or GDELT download, a zipped folder of .txt files) was "unsupported input
    type" and, in a folder, a file not read. Its members are read in name order as a folder's files are; the
    others are named; a member that cannot be read, or an archive that is none, is one error record."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zipfile

    from conflictbrief.inference.batch import RecordReader

    tmp_path = tmp_path / "dumps"  # (the tiny models' folders are in tmp_path)
    tmp_path.mkdir()
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": ["p1"], "text": [GOOD]}), buf)
    with zipfile.ZipFile(tmp_path / "dump.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("articles/b.jsonl", json.dumps({"id": "j1", "text": GOOD}) + "\n{broken\n")
        z.writestr("articles/a.txt", GOOD)
        z.writestr("c.csv", "id,text\nc1," + GOOD + "\n")
        z.writestr("d.jsonl.gz", gzip.compress((json.dumps({"id": "g1", "text": GOOD}) + "\n").encode()))
        z.writestr("e.parquet", buf.getvalue())
        z.writestr("__MACOSX/articles/._a.txt", b"\0\x05\x16\x07")  # macOS's resource forks: nobody's data
        z.writestr("notes.pdf", b"%PDF-1.4")
        z.writestr("inner.zip", b"PK\x05\x06" + b"\0" * 18)
        z.writestr("secret.txt", GOOD)
        z.writestr("z.txt", GOOD)
    data = (tmp_path / "dump.zip").read_bytes()
    data = _zip_flag(data, "secret.txt", 8, 0x1)  # encrypted
    data = _zip_flag(data, "z.txt", 10, 93)  # Zstandard, which Python 3.11's zipfile does not read
    (tmp_path / "dump.zip").write_bytes(data)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not a zip archive")
    messages = []
    reader = RecordReader(log=messages.append)
    records = list(reader.read(expand_inputs([str(tmp_path)])))
    zipped = str(tmp_path / "dump.zip")
    assert [(r.id.removeprefix(str(tmp_path) + "/"), r.error is None) for r in records] == [
        ("broken.zip:unreadable", False),
        ("dump.zip/articles/a.txt", True), ("j1", True), ("dump.zip/articles/b.jsonl:2", False), ("c1", True),
        ("g1", True), ("p1", True), ("dump.zip/secret.txt", False), ("dump.zip/z.txt", False)]
    assert "cannot read further: File is not a zip file" in records[0].error
    assert records[2].source == zipped + "/articles/b.jsonl:1" and records[4].source == zipped + "/c.csv:2"
    assert "encrypted" in records[7].error and "method Python's zipfile cannot read (number 93)" in records[8].error
    assert messages == [f"warning: {zipped}: 2 file(s) in the archive not read, not of a type read here "
                        "(.jsonl/.ndjson/.json/.csv/.tsv/.xlsx/.xls/.parquet/.txt/.html/.htm, or .gz, .bz2, .xz, .zst "
                        "of them): "
                        "inner.zip, notes.pdf"]
    assert reader.count([tmp_path / "dump.zip"]) is None  # a .csv member: counting it is reading it
    with zipfile.ZipFile(tmp_path / "lines.zip", "w") as z:
        z.writestr("a.jsonl", "".join(json.dumps({"text": GOOD}) + "\n" for _ in range(3)))
        z.writestr("b.txt", GOOD)
    assert reader.count([tmp_path / "lines.zip"]) == 4
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(tmp_path / "twice.zip", "w") as z:
        z.writestr("a.txt", GOOD)
        z.writestr("a.txt", "Another article about Homs.")
    assert [r.text for r in reader.read([tmp_path / "twice.zip"])] == [GOOD, "Another article about Homs."]
    with zipfile.ZipFile(tmp_path / "crc.zip", "w") as z:  # stored, and a byte changed near its end: bad CRC
        z.writestr("a.jsonl", "".join(json.dumps({"text": GOOD}) + "\n" for _ in range(2000)))
    data = (tmp_path / "crc.zip").read_bytes()
    cut = data.rindex(b"Idlib")
    (tmp_path / "crc.zip").write_bytes(data[:cut] + b"Idlix" + data[cut + 5:])
    records = list(reader.read([tmp_path / "crc.zip"]))  # the records read before the check, then one error
    assert len(records) > 1000 and all(r.error is None for r in records[:-1])
    assert records[-1].id == f"{tmp_path}/crc.zip/a.jsonl:unreadable" and "Bad CRC-32" in records[-1].error
    # the job: one output line per record, and --resume knows the archive
    out = tmp_path / "out" / "o.jsonl"
    out.parent.mkdir()
    summary = run_batch(tiny_pipeline, [zipped], str(out), quiet=True)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 8 and summary["failed_total"] == 3 and rows[0]["brief"]
    run_batch(tiny_pipeline, [zipped], str(out), quiet=True, resume=True)
    assert len(out.read_text(encoding="utf-8").splitlines()) == 8


def test_label_studio_tasks_to_correct_and_their_export_trains_both_models(tiny_pipeline, tmp_path):
    """`--format labelstudio` writes the results as Label Studio tasks with the entities (and the brief) as
    predictions, and the labeling config beside them; the annotations made from them, exported as JSON, are
    read by the tagger's and the briefer's training readers as they are."""
    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.training.readers import read_brief_file, read_tagger_file

    dump = tmp_path / "d.jsonl"
    dump.write_text("".join(json.dumps(r) + "\n" for r in ({"id": "r1", "text": "& # 39;" + GOOD},
                                                           {"id": "r2", "text": ""}, {"id": "r3", "text": GOOD})))
    out = tmp_path / "tasks.json"
    summary = run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, out_format="labelstudio")
    assert summary["output"] == str(out) and (tmp_path / "tasks.jsonl").is_file()
    tasks = json.loads(out.read_text())
    results = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    assert [t["data"]["article_id"] for t in tasks] == ["r1", "r3"]  # the error record stays in the JSONL only
    for task, r in zip(tasks, (results[0], results[2])):
        regions = task["predictions"][0]["result"]
        spans = [x["value"] for x in regions if x["type"] == "labels"]
        assert [(v["start"], v["end"], v["labels"][0]) for v in spans] == [(e["start"], e["end"], e["label"])
                                                                          for e in r["entities"]]
        assert all(task["data"]["text"][v["start"]:v["end"]] == v["text"] for v in spans)
        [area] = [x for x in regions if x["type"] == "textarea"]
        assert area["value"]["text"] == [s["text"] for s in r["brief"]] and area["from_name"] == "brief"
    config = (tmp_path / "tasks.labelstudio.xml").read_text()
    schema = LabelSchema.from_yaml(None)
    assert all(f'<Label value="{label}"/>' in config for label in schema.labels)
    assert '<TextArea name="brief" toName="text"' in config and '<Text name="text" value="$text"/>' in config
    # an annotator accepts the predictions: Label Studio's JSON export of the project
    export = [{"id": n, "data": t["data"], "annotations": [{"id": 10 + n, "result": t["predictions"][0]["result"]}]}
              for n, t in enumerate(tasks, 1)]
    (tmp_path / "export.json").write_text(json.dumps(export))
    examples = read_tagger_file(tmp_path / "export.json", schema)
    assert len(examples) == 2 and examples[0]["tokens"][:3] == ["'", "Syrian", "forces"]
    assert sum(t.startswith("B-") for t in examples[0]["tags"]) == len(results[0]["entities"]) > 0
    pairs = read_brief_file(tmp_path / "export.json")
    assert [p["brief"] for p in pairs] == ["\n".join(s["text"] for s in r["brief"]) for r in (results[0], results[2])]
    with pytest.raises(BatchError, match="Label Studio imports a JSON file; name it tasks.json"):
        run_batch(tiny_pipeline, [str(dump)], str(tmp_path / "tasks.jsonl"), quiet=True, out_format="labelstudio")
    with pytest.raises(BatchError, match="-o - writes JSON Lines to standard output; Label Studio tasks needs"):
        run_batch(tiny_pipeline, [str(dump)], "-", quiet=True, out_format="labelstudio")


def test_a_csv_output_for_spreadsheets(tiny_pipeline, tmp_path):
    """`-o out.csv` was refused (and before that wrote JSON Lines under the name). It writes one row per result
    for a spreadsheet, from the out.jsonl beside it, which --resume goes on from."""
    import csv

    from conflictbrief.inference.batch import _to_csv

    dump = tmp_path / "d.jsonl"
    dump.write_text("".join(json.dumps(r) + "\n" for r in (
        {"id": "r1", "text": GOOD}, {"id": "=HYPERLINK(\"http://x\")", "text": GOOD}, {"id": "r3", "text": ""})))
    out = tmp_path / "o.csv"
    summary = run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, limit=2)
    assert summary["output"] == str(out) and (tmp_path / "o.jsonl").is_file()
    summary = run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, resume=True)
    assert summary["written_this_run"] == 1
    assert out.read_bytes().startswith(b"\xef\xbb\xbfid,source,error,headline,brief,entities,warnings\r\n")
    with out.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    results = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["r1", "'=HYPERLINK(\"http://x\")", "r3"]  # a formula stays text
    assert rows[0]["brief"] == " ".join(s["text"] for s in results[0]["brief"]) and rows[0]["brief"]
    names = dict.fromkeys(f"{e['text']} ({e['label']})" for e in results[0]["entities"])
    assert rows[0]["entities"] == "; ".join(names) and rows[0]["source"] == f"{dump}:1" and not rows[0]["error"]
    assert rows[2]["error"] == results[2]["error"] and "empty" in rows[2]["error"] and not rows[2]["brief"]
    # a cell longer than a spreadsheet holds is cut, and says where the whole of it is
    (tmp_path / "long.jsonl").write_text(json.dumps({"id": "x", "source": "s", "warnings": ["w" * 40_000]}) + "\n")
    with _to_csv(tmp_path / "long.jsonl", tmp_path / "long.csv").open(encoding="utf-8-sig", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert len(row["warnings"]) == 32_767 and row["warnings"].endswith("the whole of it is in long.jsonl]")


def test_zstandard_dumps_files_archives_and_standard_input(tiny_pipeline, tmp_path, monkeypatch):
    """.zst inputs were "unsupported input type" (the README said to pipe them through zstd -dc). Frames are
    read one after another; a file cut short inside a frame gives its records up to there and an error record,
    where zstandard's own reader ends quietly and the rest of the dump would be lost without a word."""
    import sys
    import zipfile

    import zstandard

    from conflictbrief.inference.batch import RecordReader

    def zst(data: bytes) -> bytes:  # two frames, as `cat a.zst b.zst` makes
        c = zstandard.ZstdCompressor()
        return c.compress(data[:40]) + c.compress(data[40:])

    lines = "".join(json.dumps({"id": f"r{i}", "text": GOOD}) + "\n" for i in range(3)).encode()
    d = tmp_path / "dumps"
    d.mkdir()
    (d / "a.jsonl.zst").write_bytes(zst(lines))
    (d / "b.txt.zst").write_bytes(zst(GOOD.encode()))
    one_frame_a_line = b"".join(zstandard.ZstdCompressor().compress(line + b"\n")
                                for line in (lines * 50).splitlines())
    (d / "cut.jsonl.zst").write_bytes(one_frame_a_line[:-30])
    (d / "junk.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"not zstd at all" * 3)
    with zipfile.ZipFile(d / "z.zip", "w") as z:
        z.writestr("in.jsonl.zst", zst(lines))
    reader = RecordReader()
    records = list(reader.read(expand_inputs([str(d)])))
    got = [(r.id.rsplit("/", 1)[-1], r.error is None) for r in records]
    assert got[:4] == [("r0", True), ("r1", True), ("r2", True), ("b.txt.zst", True)]
    cut = [r for r in records if "cut.jsonl.zst" in r.source]
    assert len(cut) > 100 and all(r.error is None for r in cut[:-1])
    assert cut[-1].id.endswith("cut.jsonl.zst:unreadable") and "ended inside a frame" in cut[-1].error
    assert got[-4] == ("junk.jsonl.zst:unreadable", False) and "not valid Zstandard data" in records[-4].error
    assert got[-3:] == [("r0", True), ("r1", True), ("r2", True)]  # the archive's member
    assert reader.count([d / "a.jsonl.zst"]) == 3
    _stdin(monkeypatch, zst(lines))  # told by its first bytes
    assert [r.id for r in RecordReader().read(expand_inputs(["-"]))] == ["r0", "r1", "r2"]
    # without the package: the job stops before it starts for a .zst file, and says what to do
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setattr("conflictbrief.inference.zstd.available", lambda: False)
    with pytest.raises(BatchError, match=r"a\.jsonl\.zst: reading Zstandard \(\.zst\) data needs the zstandard "
                                         r"package: pip install zstandard \(or pipe it in: zstd -dc "):
        expand_inputs([str(d / "a.jsonl.zst")])
    # a .zip's member too (its names are read at once; until 2026-12-06 each such member was an error record)
    with pytest.raises(BatchError, match=r"z\.zip/in\.jsonl\.zst: reading Zstandard .* pip install zstandard "
                                         r"\(or unpack z\.zip and decompress its \.zst files: zstd -d\)"):
        expand_inputs([str(d / "z.zip")])
    (d / "bad.zip").write_bytes(b"PK\x03\x04 not a zip")
    assert expand_inputs([str(d / "bad.zip")]) == [d / "bad.zip"]  # a broken archive is the job's error record
    _stdin(monkeypatch, zst(lines))  # told before the job starts, from its first bytes (not read from it)
    with pytest.raises(BatchError, match=r"-: standard input is Zstandard data; reading Zstandard .* needs the "
                                         r"zstandard package: pip install zstandard \(or decompress it in the pipe"):
        expand_inputs(["-"])
    assert sys.stdin.buffer.read() == zst(lines)


def test_a_small_zstandard_stream_of_zeros_is_not_decompressed_whole():
    """A few kB of zstd can stand for hundreds of MB; it is decompressed a little at a time, as it is read
    (with 8 kB of input a call, 64 MB of zeros peaked at 64 MB)."""
    import tracemalloc

    import zstandard

    from conflictbrief.inference.zstd import open_zstd

    bomb = zstandard.ZstdCompressor().compress(b"\0" * (64 << 20))
    assert len(bomb) < 4096
    tracemalloc.start()
    try:
        with open_zstd(io.BytesIO(bomb)) as f:
            total = sum(len(b) for b in iter(lambda: f.read(1 << 16), b""))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 64 << 20 and peak < 24 << 20


def test_a_file_name_that_is_not_utf8_and_a_tar_of_dot(tiny_pipeline, tmp_path):
    """Found by feeding odd file names to the job (2026-12-06): a name whose bytes are not UTF-8 (a Linux file
    system allows them; old Latin-1 archives have them) stopped the job before its first record, in the
    fingerprint that --resume checks; and `tar cf dump.tar .`, which writes "./" before every name, gave
    nothing: "." was taken for a hidden folder."""
    import os
    import tarfile

    d = tmp_path / "dump"
    d.mkdir()
    (d / "plain.txt").write_text(GOOD)
    with open(os.path.join(os.fsencode(d), b"caf\xe9.txt"), "wb") as f:  # Latin-1 "café"
        f.write(GOOD.encode())
    out = tmp_path / "o.jsonl"
    summary = run_batch(tiny_pipeline, [str(d)], str(out), quiet=True)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert summary["records"] == 2 and not summary["failed_total"]
    assert sorted(r["id"].rsplit("/", 1)[-1] for r in rows) == ["caf\udce9.txt", "plain.txt"]  # as os.fsdecode has it
    assert run_batch(tiny_pipeline, [str(d)], str(out), quiet=True, resume=True)["resumed_after"] == 2
    with tarfile.open(tmp_path / "dot.tar", "w") as t:
        t.add(d, arcname=".")  # what `tar cf dot.tar .` in the folder writes: ./, ./plain.txt, ...
    with tarfile.open(tmp_path / "dot.tar") as t:
        assert sorted(t.getnames()) == [".", "./caf\udce9.txt", "./plain.txt"]
    summary = run_batch(tiny_pipeline, [str(tmp_path / "dot.tar")], str(tmp_path / "t.jsonl"), quiet=True)
    assert summary["records"] == 2 and not summary["failed_total"]
    hidden = tmp_path / "hidden.tar"  # a hidden file inside stays out
    with tarfile.open(hidden, "w") as t:
        t.add(d / "plain.txt", arcname="./.DS_Store")
        t.add(d / "plain.txt", arcname="./a.txt")
    assert run_batch(tiny_pipeline, [str(hidden)], str(tmp_path / "h.jsonl"), quiet=True)["records"] == 1


def test_a_tar_archive_is_read_in_one_pass_in_its_order(tiny_pipeline, tmp_path):
    """A .tar.gz of articles (a folder as Linux ships it) was "unsupported input type". Its files are read in
    one pass, in the archive's order; a .json or .parquet member is read into memory (it is read twice or with
    seeks), the others as they stream; a tar cut short gives its records up to there and an error record."""
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    from conflictbrief.inference.batch import RecordReader

    d = tmp_path / "dumps"
    d.mkdir()
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": ["p1"], "text": [GOOD]}), buf)
    files = {"b/z.txt": GOOD.encode(), "a.jsonl": (json.dumps({"id": "j1", "text": GOOD}) + "\n").encode(),
             "c.json": json.dumps([{"id": "js1", "text": GOOD}]).encode(), "d.parquet": buf.getvalue(),
             "e.csv.gz": gzip.compress(("id,text\nc1," + GOOD + "\n").encode()), "notes.pdf": b"%PDF",
             "._z.txt": b"\0\5\26\7"}

    def tar(mode: str) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode=mode) as t:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        return raw.getvalue()

    (d / "a.tar").write_bytes(tar("w"))
    (d / "b.tar.gz").write_bytes(tar("w:gz"))
    (d / "c.tbz2").write_bytes(tar("w:bz2"))
    (d / "d.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(tar("w")))
    messages = []
    records = list(RecordReader(log=messages.append).read(expand_inputs([str(d)])))
    ids = [r.id.removeprefix(str(d) + "/") for r in records]
    one = ["a.tar/b/z.txt", "j1", "js1", "p1", "c1"]  # the archive's order, not the names'
    assert ids == one + [i.replace("a.tar", "b.tar.gz") for i in one] + [i.replace("a.tar", "c.tbz2") for i in one] \
        + [i.replace("a.tar", "d.tar.zst") for i in one] and all(r.error is None for r in records)
    assert records[1].source == f"{d}/a.tar/a.jsonl:1" and records[9].source == f"{d}/b.tar.gz/e.csv.gz:2"
    assert len(messages) == 4 and all("1 file(s) in the archive not read" in m and m.endswith(": notes.pdf")
                                      for m in messages)
    assert RecordReader().count([d / "a.tar"]) is None  # counting it would be reading it
    (d / "n.ndjson.gz").write_bytes(gzip.compress(files["a.jsonl"]))  # JSON Lines by another name
    assert [r.id for r in RecordReader().read(expand_inputs([str(d / "n.ndjson.gz")]))] == ["j1"]
    # cut short: the records before the cut, then an error record
    big = {f"{i:03}.txt": f"{GOOD} Report {i}.".encode() for i in range(200)}
    files = big
    (d / "cut.tar.gz").write_bytes(tar("w:gz")[:-200])
    records = list(RecordReader().read([d / "cut.tar.gz"]))
    assert len(records) > 150 and all(r.error is None for r in records[:-1])
    assert records[-1].id == f"{d}/cut.tar.gz:unreadable" and "cannot read further" in records[-1].error
    (d / "cut.tar").write_bytes(tar("w")[:1024 * 100])  # at a header: tarfile itself ends there quietly
    records = list(RecordReader().read([d / "cut.tar"]))
    assert [r.error is None for r in records] == [True] * 100 + [False]
    assert "ends without the end-of-archive blocks of a tar file: it is cut short" in records[-1].error
    # the job, and --resume
    out = tmp_path / "o.jsonl"
    run_batch(tiny_pipeline, [str(d / "b.tar.gz")], str(out), quiet=True, limit=2)
    summary = run_batch(tiny_pipeline, [str(d / "b.tar.gz")], str(out), quiet=True, resume=True)
    assert summary["written_this_run"] == 3 and summary["failed_total"] == 0


def test_an_excel_workbook_is_read_as_csv_files_are(tiny_pipeline, tmp_path, monkeypatch):
    """.xlsx was "unsupported input type" (analysts keep articles in spreadsheets). Every sheet is read as a CSV
    file is, from its first row that is not empty; a sheet without a text column is one error record."""
    import datetime
    import sys
    import zipfile

    import openpyxl

    from conflictbrief.inference.batch import RecordReader

    book = openpyxl.Workbook()
    news = book.active
    news.title = "News"
    news["B3"], news["C3"], news["D3"] = "id", "text", "date"  # a title block above the table, as people do
    news["B4"], news["C4"], news["D4"] = 12, GOOD, datetime.date(2020, 1, 27)
    news["B6"], news["C6"] = "r2", "Aid reached Aleppo on Monday."
    news["B7"], news["C7"] = "r3", None
    notes = book.create_sheet("Codebook")
    notes.append(["field", "meaning"])
    notes.append(["text", "the article"])
    book.create_sheet("Empty")
    d = tmp_path / "dumps"
    d.mkdir()
    book.save(d / "articles.xlsx")
    (d / "articles.xlsx.gz").write_bytes(gzip.compress((d / "articles.xlsx").read_bytes()))
    with zipfile.ZipFile(d / "z.zip", "w") as z:
        z.write(d / "articles.xlsx", "in/articles.xlsx")
    (d / "broken.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
    records = list(RecordReader().read(expand_inputs([str(d)])))
    got = [(r.id.removeprefix(str(d) + "/"), r.source.removeprefix(str(d) + "/"), r.error is None) for r in records]
    one = [("12", "articles.xlsx[News]:4", True), ("r2", "articles.xlsx[News]:6", True),
           ("r3", "articles.xlsx[News]:7", False), ("articles.xlsx[Codebook]", "articles.xlsx[Codebook]", False)]
    assert got[:4] == one and got[4:8] == [(i.replace("xlsx", "xlsx.gz"), s.replace("xlsx", "xlsx.gz"), ok)
                                          for i, s, ok in one]
    assert got[8] == ("broken.xlsx:unreadable", "broken.xlsx", False) and "not a readable .xlsx" in records[8].error
    assert [g[0] for g in got[9:]] == ["12", "r2", "r3", "z.zip/in/articles.xlsx[Codebook]"]
    assert records[0].text == GOOD and "field 'text' is null" in records[2].error
    assert "the header row ['field', 'meaning'] has no text column" in records[3].error
    # a sheet cut short inside the workbook: xml's ParseError (a SyntaxError) stopped the whole job
    with zipfile.ZipFile(d / "articles.xlsx") as good, zipfile.ZipFile(tmp_path / "cut.xlsx", "w") as cut:
        for info in good.infolist():
            data = good.read(info.filename)
            cut.writestr(info, data[: len(data) // 2] if info.filename == "xl/worksheets/sheet1.xml" else data)
    records = list(RecordReader().read([tmp_path / "cut.xlsx"]))
    assert records[-1].id == f"{tmp_path}/cut.xlsx:unreadable" and "a sheet of the workbook is damaged" in \
        records[-1].error
    out = tmp_path / "o.jsonl"
    run_batch(tiny_pipeline, [str(d / "articles.xlsx")], str(out), quiet=True)
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == \
        ["12", "r2", "r3", f"{d}/articles.xlsx[Codebook]"]
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # without the package: stopped before the job starts
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(BatchError, match=r"articles\.xlsx: reading Excel \(\.xlsx\) files needs the openpyxl "
                                         r"package: pip install openpyxl \(or save the sheet as CSV\)"):
        expand_inputs([str(d / "articles.xlsx")])
    with zipfile.ZipFile(tmp_path / "sheets.zip", "w") as z:  # also as a .zip's member
        z.write(d / "articles.xlsx", "2026/articles.xlsx")
    with pytest.raises(BatchError, match=r"sheets\.zip/2026/articles\.xlsx: reading Excel .* pip install openpyxl"):
        expand_inputs([str(tmp_path / "sheets.zip")])


def test_an_excel_97_2003_workbook_is_read_as_an_xlsx_one(tiny_pipeline, tmp_path, monkeypatch, capsys):
    """.xls (Excel 97-2003, what older systems still export) was "unsupported input type". It is read with xlrd
    as an .xlsx is with openpyxl: ids given as numbers keep their digits, dates become ISO text, a sheet
    without a text column is one error record."""
    import datetime
    import sys

    import xlwt

    from conflictbrief.inference.batch import RecordReader

    book = xlwt.Workbook()
    news = book.add_sheet("News")
    for column, value in enumerate(["id", "text", "date", "checked"]):
        news.write(2, column + 1, value)  # a title block above the table: rows 1-2 empty, column A empty
    news.write(3, 1, 12)
    news.write(3, 2, GOOD)
    news.write(3, 3, datetime.date(2020, 1, 27), xlwt.easyxf(num_format_str="YYYY-MM-DD"))
    news.write(3, 4, True)
    news.write(5, 1, "r2")  # an empty row 5 is passed over
    news.write(5, 2, "Caf\u00e9 bombed in Kabul on Monday.")
    news.write(6, 1, "r3")
    notes = book.add_sheet("Codebook")
    notes.write(0, 0, "field")
    notes.write(0, 1, "meaning")
    d = tmp_path / "dumps"
    d.mkdir()
    book.save(str(d / "old.xls"))
    (d / "old.xls.gz").write_bytes(gzip.compress((d / "old.xls").read_bytes()))
    (d / "not.xls").write_bytes(b"\xd0\xcf\x11\xe0 not a workbook")
    records = list(RecordReader().read(expand_inputs([str(d)])))
    got = [(r.id.removeprefix(str(d) + "/"), r.source.removeprefix(str(d) + "/"), r.error is None) for r in records]
    assert got[0][:2] == ("not.xls:unreadable", "not.xls") and "not a readable .xls workbook" in records[0].error
    one = [("12", "old.xls[News]:4", True), ("r2", "old.xls[News]:6", True), ("r3", "old.xls[News]:7", False),
           ("old.xls[Codebook]", "old.xls[Codebook]", False)]
    assert got[1:5] == one and got[5:] == [(i.replace("xls", "xls.gz"), s.replace("xls", "xls.gz"), ok)
                                          for i, s, ok in one]
    assert records[1].text == GOOD and records[2].text == "Caf\u00e9 bombed in Kabul on Monday."
    assert "field 'text'" in records[3].error and "has no text column" in records[4].error
    out = tmp_path / "o.jsonl"
    run_batch(tiny_pipeline, [str(d / "old.xls")], str(out), quiet=True)
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == \
        ["12", "r2", "r3", f"{d}/old.xls[Codebook]"]
    (d / "renamed.xls").write_bytes((tmp_path / "o.jsonl").read_bytes())  # not a workbook at all
    assert "not a readable .xls workbook" in list(RecordReader().read([d / "renamed.xls"]))[0].error
    capsys.readouterr()
    for size in (600, len((d / "old.xls").read_bytes()) // 2):  # cut short: one error record, and xlrd's
        (d / "cut.xls").write_bytes((d / "old.xls").read_bytes()[:size])  # warnings kept off stdout (-o -)
        [record] = RecordReader().read([d / "cut.xls"])
        assert record.id.endswith("cut.xls:unreadable") and "not a readable .xls workbook" in record.error
    assert capsys.readouterr().out == ""
    monkeypatch.setitem(sys.modules, "xlrd", None)  # without the package: stopped before the job starts
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(BatchError, match=r"old\.xls: reading Excel 97-2003 \(\.xls\) files needs the xlrd package: "
                                         r"pip install xlrd \(or save the sheet as CSV\)"):
        expand_inputs([str(d / "old.xls")])


def test_xls_cells_are_given_as_openpyxl_gives_them():
    import datetime
    import io

    import xlwt

    from conflictbrief.inference.batch import _cell_value, open_workbook

    book = xlwt.Workbook()
    sheet = book.add_sheet("S")
    sheet.write(0, 0, datetime.datetime(2019, 3, 9, 14, 30), xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM"))
    sheet.write(0, 1, False)
    sheet.write(0, 2, "")
    sheet.write(0, 3, 3.5)
    sheet.write(0, 5, "x")  # column E empty
    buffer = io.BytesIO()
    book.save(buffer)
    workbook = open_workbook(io.BytesIO(buffer.getvalue()), ".xls")
    [sheet] = list(workbook.worksheets)
    [row] = list(sheet.iter_rows(values_only=True))
    assert sheet.title == "S"
    assert row[0] == datetime.datetime(2019, 3, 9, 14, 30) and row[1] is False and row[3] == 3.5 and row[4] is None
    assert [_cell_value(v) for v in row[3:]] == ["3.5", None, "x"]
    workbook.close()


def test_a_reports_field_holds_the_reports_of_one_event_briefed_together(tiny_pipeline, tmp_path):
    first, second = GOOD, "Rebels said they had pushed back the assault near Idlib on Monday evening."
    dump = tmp_path / "events.jsonl"
    dump.write_text("\n".join(json.dumps(r) for r in [
        {"id": "e1", "reports": [first, second]}, {"id": "e2", "reports": [first, {"body": second}]},
        {"id": "e3", "reports": ["", " "]}, {"id": "e4", "reports": [first, second]},
        {"id": "e5", "content": [first, second]}, {"id": "e6", "data": {"reports": [second, first]}}]) + "\n")
    out = tmp_path / "out.jsonl"
    summary = run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, dedup=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["e1", "e2", "e3", "e4", "e5", "e6"] and summary["failed_total"] == 3
    assert rows[0]["reports"] == [0, rows[0]["text"].index("Rebels")] and rows[0]["error"] is None
    assert rows[1]["error"].endswith("events.jsonl:2: report 2 of field 'reports' is dict, not text")
    assert rows[2]["error"].endswith("events.jsonl:3: field 'reports' is empty")
    assert rows[3]["reports"] == rows[0]["reports"] and rows[3]["duplicate_of"] == "e1"
    # a list in another field is more likely a scraper's paragraphs than reports: an error that says so
    assert rows[4]["error"].endswith("field 'content' is a list, not text (join a list of paragraphs first; the "
                                     "reports of one event go in a field named 'reports')")
    assert rows[5]["reports"] == [0, rows[5]["text"].index("Syrian")]
    assert run_batch(tiny_pipeline, [str(dump)], str(out), quiet=True, dedup=True, resume=True)["records"] == 6


EVENT_DUMP = [
    {"id": "a1", "event": "e1", "text": "Government forces shelled the town of Maarat al-Numan on Monday, residents "
                                        "said. The shelling went on into the night."},
    {"id": "b1", "meta": {"event": 7}, "text": "Protesters gathered in Khartoum on Tuesday. Police fired tear gas "
                                               "at the crowd of about 2,000 people."},
    {"id": "a2", "event": "e1", "text": "Rebels said they had pushed back an army assault near Maarat al-Numan on "
                                        "Monday. Two villages were retaken."},
    {"id": "x", "text": "An article with no event named at all. It is briefed on its own, as before."},
    {"id": "a3", "event": " e1 ", "reports": ["More than 300 families fled Maarat al-Numan towards the border, the "
                                              "UN said.", "Another outlet said 250 families had fled the town."]},
    {"id": "b2", "event": "7", "text": None},
    {"id": "y", "event": ["e1"], "text": GOOD},
]


def _events_dump(path, records=EVENT_DUMP):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "{broken\n")
    return path


def test_group_by_briefs_the_records_of_one_event_together(tiny_pipeline, tmp_path, monkeypatch):
    dump, out, messages = _events_dump(tmp_path / "d.jsonl"), tmp_path / "o.jsonl", []
    (tmp_path / "o.jsonl.events.sqlite").write_bytes(b"what a job killed while reading left")
    analysed = []
    real = tiny_pipeline.analyze_batch
    monkeypatch.setattr(tiny_pipeline, "analyze_batch",
                        lambda items, **kw: real([analysed.append(i) or i for i in items], **kw))
    summary = run_batch(tiny_pipeline, [str(dump)], str(out), group_by="event", log=messages.append)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # an event's record stands where its first member stood; a record without the field, or unreadable, in its place
    assert [r["id"] for r in rows] == ["e1", "b1", "x", "b2", "y", f"{dump}:8"]
    assert [r["source"].rsplit(":", 1)[1] for r in rows] == ["1", "2", "4", "6", "7", "8"]
    e1 = rows[0]
    assert e1["members"] == [{"id": "a1", "source": f"{dump}:1", "reports": [0]},
                             {"id": "a2", "source": f"{dump}:3", "reports": [1]},
                             {"id": "a3", "source": f"{dump}:5", "reports": [2, 3]}]
    assert analysed[0] == ("e1", [EVENT_DUMP[0]["text"], EVENT_DUMP[2]["text"], *EVENT_DUMP[4]["reports"]])
    assert len(e1["reports"]) == 4 and e1["text"].startswith("Government") and e1["error"] is None
    assert [b["report"] for b in e1["brief"]] == sorted(b["report"] for b in e1["brief"]) and \
        {b["report"] for b in e1["brief"]} <= {0, 1, 2, 3}
    # b1's event is in a nested field, not "event": b1 is analysed alone, as x, as without --group-by
    assert "members" not in rows[2] and rows[2]["reports"] == [] and rows[2]["brief"] and rows[1]["id"] == "b1"
    # a member that cannot be read is an error record of its own that names its event (as text: 7 -> "7")
    assert rows[3]["error"].endswith("d.jsonl:6: field 'text' is null") and rows[3]["group"] == "7"
    assert rows[4]["error"].endswith("d.jsonl:7: field 'event' is list, not an event key (--group-by)")
    assert "invalid JSON" in rows[5]["error"]
    assert summary["events"] == {"by": "event", "records": 8, "events": 1, "records_in_events": 3,
                                 "records_alone": 2, "events_cut_at_max_chars": 0}
    assert summary["records"] == 6 and summary["failed_total"] == 3
    assert not (tmp_path / "o.jsonl.events.sqlite").exists()  # the records' spool is gone with the job
    # an event above --max-chars is briefed from its records that fit, and says which did not
    summary = run_batch(tiny_pipeline, [str(dump)], str(tmp_path / "cut.jsonl"), group_by="event", quiet=True,
                        max_chars=250)
    cut = json.loads((tmp_path / "cut.jsonl").read_text().splitlines()[0])
    assert [m["reports"] for m in cut["members"]] == [[0], [1], []] and not cut["error"] and len(cut["text"]) <= 250
    assert any("1 of the event's 3 records left out of its text" in w for w in cut["warnings"])
    assert summary["events"]["events_cut_at_max_chars"] == 1
    assert messages[1] == (f"--group-by 'event': 8 records read, 3 of them in 1 events; 2 without a value of "
                           f"'event', each analysed alone ({dump}:2, {dump}:4)")


def test_group_by_a_nested_field_resumes_dedups_and_limits_by_event(tiny_pipeline, tmp_path, monkeypatch):
    records = [{**r, "meta": {"event": r.get("event") or (r.get("meta") or {}).get("event")}} for r in EVENT_DUMP[:6]]
    records += [{"id": "c1", "meta": {"event": "copy"}, "text": EVENT_DUMP[1]["text"]}]
    dump, out = _events_dump(tmp_path / "d.jsonl", records), tmp_path / "o.jsonl"
    whole = run_batch(tiny_pipeline, [str(dump)], str(out), group_by="meta.event", dedup=True, quiet=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["e1", "7", "x", "b2", "copy", f"{dump}:8"] and whole["events"]["events"] == 3
    assert [m["id"] for m in rows[1]["members"]] == ["b1"]  # and b2, its member that cannot be read:
    assert rows[3]["error"].endswith("d.jsonl:6: field 'text' is null") and rows[3]["group"] == "7"
    assert rows[4]["duplicate_of"] == "7" and [m["id"] for m in rows[4]["members"]] == ["c1"]  # its own members
    # --limit counts events (records cut at the limit would change an event's brief), and --resume goes on
    out.unlink()
    assert run_batch(tiny_pipeline, [str(dump)], str(out), group_by="meta.event", dedup=True, quiet=True,
                     limit=2)["records"] == 2
    analysed = []
    real = tiny_pipeline.analyze_batch
    monkeypatch.setattr(tiny_pipeline, "analyze_batch",
                        lambda items, **kw: real([analysed.append(i) or i for i in items], **kw))
    summary = run_batch(tiny_pipeline, [str(dump)], str(out), group_by="meta.event", dedup=True, quiet=True,
                        resume=True)
    assert summary["resumed_after"] == 2 and [i for i, _ in analysed] == ["x"]  # "copy" is read back
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "timings"} for r in again] == \
        [{k: v for k, v in r.items() if k != "timings"} for r in rows]
    # an output written without --group-by (or by another field) is not this job's
    for other in (None, "event"):
        with pytest.raises(BatchError, match="written for other inputs or options"):
            run_batch(tiny_pipeline, [str(dump)], str(out), dedup=True, quiet=True, resume=True, group_by=other)


def test_group_by_into_a_spreadsheet_label_studio_tasks_and_from_standard_input(tiny_pipeline, tmp_path,
                                                                                monkeypatch):
    import csv

    dump = _events_dump(tmp_path / "d.jsonl")
    run_batch(tiny_pipeline, [str(dump)], str(tmp_path / "o.csv"), group_by="event", quiet=True)
    with (tmp_path / "o.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:3] == ["id", "source", "members"] and rows[0]["members"] == "a1; a2; a3"
    assert [r["members"] for r in rows[1:]] == [""] * 5 and rows[0]["brief"]
    run_batch(tiny_pipeline, [str(dump)], str(tmp_path / "t.json"), group_by="event", quiet=True,
              out_format="labelstudio")
    tasks = json.loads((tmp_path / "t.json").read_text())
    assert tasks[0]["data"]["members"] == "a1; a2; a3" and "members" not in tasks[1]["data"]
    # standard input: every line is read before the first event is analysed; --resume checks the same stream
    _stdin(monkeypatch, dump.read_bytes())
    run_batch(tiny_pipeline, ["-"], str(tmp_path / "s.jsonl"), group_by="event", quiet=True, limit=1)
    _stdin(monkeypatch, dump.read_bytes())
    summary = run_batch(tiny_pipeline, ["-"], str(tmp_path / "s.jsonl"), group_by="event", quiet=True, resume=True)
    got = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert summary["resumed_after"] == 1 and [r["id"] for r in got] == ["e1", "b1", "x", "b2", "y", "<stdin>:8"]
    assert [m["source"] for m in got[0]["members"]] == ["<stdin>:1", "<stdin>:3", "<stdin>:5"]
    shuffled = dump.read_text().splitlines(keepends=True)
    _stdin(monkeypatch, "".join([shuffled[2], shuffled[0], *shuffled[3:]]).encode())  # e1's reports in another order
    with pytest.raises(BatchError, match="another stream"):
        run_batch(tiny_pipeline, ["-"], str(tmp_path / "s.jsonl"), group_by="event", quiet=True, resume=True,
                  overwrite=False, limit=None)


def test_the_brief_command_takes_group_by(tiny_pipeline, tmp_path, monkeypatch):
    from conflictbrief.cli import main
    from conflictbrief.inference import pipeline

    monkeypatch.setattr(pipeline.Pipeline, "load", lambda *a, **k: tiny_pipeline)
    dump = _events_dump(tmp_path / "d.jsonl")
    assert main(["tag", str(dump), "-o", str(tmp_path / "o.jsonl"), "--group-by", "event", "--quiet"]) == 1
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert rows[0]["id"] == "e1" and len(rows[0]["members"]) == 3 and rows[0]["brief"] == [] and len(rows) == 6


def test_an_event_reads_wire_copy_carried_by_several_outlets_once():
    from conflictbrief.inference.batch import Events, Record, _is_reader_note

    wire = "Shelling hit Idlib on Monday, the agency reported. Thousands fled north."
    own = "The BBC's own report."
    event = Events._event([Record("ap", "d:1", wire, group="e"), Record("bbc", "d:2", own, group="e"),
                           Record("local", "d:3", "  " + wire + "\n", group="e", notes=("not UTF-8: ...",)),
                           Record("both", "d:4", [own, " ", "A third report."], group="e")])
    assert event.id == "e" and event.source == "d:1" and event.text == [wire, own, "A third report."]
    assert [(m["id"], m["reports"]) for m in event.extra["members"]] == [("ap", [0]), ("bbc", [1]), ("local", [0]),
                                                                         ("both", [1, 2])]
    assert event.notes == ("d:3: not UTF-8: ...",)
    # an event above max_chars is briefed from the records that fit, in the order read, and says which did not
    big = [Record(f"m{n}", f"d:{n}", f"Report {n}. " + "x" * 90, group="e") for n in range(6)]
    cut = Events._event(big[:2] + [Record("long", "d:9", "y" * 400, group="e")] + big[2:], max_chars=350)
    assert len(cut.text) == 3 and sum(map(len, cut.text)) + 2 * 2 <= 350  # (joined by blank lines, as counted)
    assert [(m["id"], m["reports"]) for m in cut.extra["members"]] == [
        ("m0", [0]), ("m1", [1]), ("long", []), ("m2", [2]), ("m3", []), ("m4", []), ("m5", [])]
    assert cut.notes == ("4 of the event's 7 records left out of its text, which they would have taken above "
                         "--max-chars 350 characters (in members with no reports): long, m3, m4, m5",)
    assert _is_reader_note(cut.notes[0])  # a --dedup copy of the event gets its own, not the first one's too
    alone = Events._event([Record("long", "d:9", "y" * 400, group="e")], max_chars=350)  # one record: the
    assert alone.text == ["y" * 400]                                                     # pipeline's error


def _record_strategy():
    from hypothesis import strategies as st

    from conflictbrief.inference.batch import Record

    texts = st.sampled_from(["Idlib was shelled.", "Aid arrived.", "\ud800 lone", "x" * 50])
    return st.builds(lambda n, text, group, error: Record(f"r{n}", f"d:{n}", None if error else text,
                                                          error=f"d:{n}: bad" if error else None, group=group),
                     st.integers(0, 10**6), texts | st.lists(texts, min_size=1, max_size=3),
                     st.none() | st.sampled_from(["e1", "e2", "e3"]), st.booleans())


def test_every_record_is_in_exactly_one_output_record_of_its_events(tmp_path):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from conflictbrief.inference.batch import Events
    from conflictbrief.inference.clean import text_chars

    @settings(max_examples=150, deadline=None)
    @given(st.lists(_record_strategy(), max_size=25))
    def check(records):
        records = [r.__class__(f"r{n}", f"d:{n}", r.text, r.error, group=r.group) for n, r in enumerate(records)]
        events = Events(iter(records), tmp_path / "spool.sqlite", "event", max_chars=120)
        out = list(events)
        events.close()
        assert len(out) == len(events) and not (tmp_path / "spool.sqlite").exists()
        named = [m["source"] for o in out for m in (o.extra or {}).get("members", [])]
        named += [o.source for o in out if not (o.extra or {}).get("members")]
        assert sorted(named) == sorted(r.source for r in records)  # each record once: a member, or a line of its own
        firsts = [min(int(m["source"][2:]) for m in o.extra["members"]) if (o.extra or {}).get("members")
                  else int(o.source[2:]) for o in out]
        assert firsts == sorted(firsts)  # an event stands at its first record's place
        for o in out:
            for m in (o.extra or {}).get("members", []):
                given_texts = records[int(m["source"][2:])].text
                given_texts = given_texts if isinstance(given_texts, list) else [given_texts]
                assert [o.text[k] for k in m["reports"]] in ([t for t in given_texts if t.strip()], [])
            if (o.extra or {}).get("members"):  # an event's text fits in max_chars, but for one record's own
                assert text_chars(o.text) <= 120 or o.extra["members"][0]["reports"] == list(range(len(o.text)))
                assert bool(o.notes) == any(not m["reports"] for m in o.extra["members"])
        assert events.records == len(records) and events.events == len({r.group for r in records
                                                                        if r.group and r.error is None})

    check()


def test_a_group_by_field_that_no_record_has_stops_before_anything_is_analysed(tiny_pipeline, tmp_path, monkeypatch,
                                                                              capsys):
    from conflictbrief.cli import main
    from conflictbrief.inference import pipeline

    (tmp_path / "job").mkdir()
    dump, out = _events_dump(tmp_path / "job" / "d.jsonl"), tmp_path / "job" / "o.jsonl"
    monkeypatch.setattr(tiny_pipeline, "analyze_batch", lambda *a, **k: pytest.fail("records were analysed"))
    with pytest.raises(BatchError, match=r"--group-by 'evnt': none of the 6 readable records has a value in that "
                                         r"field \(a.b for a nested one\); the first such record's fields are "
                                         r"\['event', 'id', 'text'\]: nothing was analysed"):
        run_batch(tiny_pipeline, [str(dump)], str(out), group_by="evnt", quiet=True)
    assert sorted(p.name for p in out.parent.iterdir()) == ["d.jsonl", "o.jsonl.lock"]  # nothing to resume or clear
    with pytest.raises(BatchError, match="needs the name of a field"):
        run_batch(tiny_pipeline, [str(dump)], str(out), group_by=" ", quiet=True)
    monkeypatch.setattr(pipeline.Pipeline, "load", lambda *a, **k: pytest.fail("the models were loaded"))
    for option in ("--group-by", "--text-field", "--id-field"):  # an unset shell variable: not "none given"
        with pytest.raises(SystemExit):
            main(["brief", str(dump), "-o", str(out), option, ""])
        assert "expected the name of a field (a.b for a nested one), got an empty one" in capsys.readouterr().err
