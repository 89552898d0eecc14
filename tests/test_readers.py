import json
import re
import sys

import pytest

from conflictbrief.model.labels import LabelSchema
from conflictbrief.training.readers import DataError, read_brief_file, read_tagger_file

SCHEMA = LabelSchema.from_yaml()


def test_conll_tab_space_docstart_and_mapping(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("-DOCSTART- O\n\nEU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\r\nBlackburn I-PER\r\n")
    rows = read_tagger_file(f, SCHEMA, "conll", "conll")
    assert [r["tokens"] for r in rows] == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    assert rows[0]["tags"] == ["B-Organisation", "O", None, "O"]  # MISC: not learned from
    assert rows[1]["tags"] == ["B-Person", "I-Person"]


def test_partial_labels_allow_unannotated_types_on_conll_O():
    allowed = SCHEMA.allowed_tags("O", "conll")
    tags = [SCHEMA.tags[i] for i in allowed]
    assert "O" in tags and "B-Weapon" in tags and "B-Person" not in tags
    assert SCHEMA.allowed_tags("O", None) == [0]


def test_spans_to_bio(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps({"text": "Shelling hit Maarat al-Numan.", "entities": [
        {"start": 13, "end": 28, "label": "Location"}]}) + "\n")
    [row] = read_tagger_file(f, SCHEMA)
    assert row["tokens"] == ["Shelling", "hit", "Maarat", "al", "-", "Numan", "."]
    assert row["tags"] == ["O", "O", "B-Location", "I-Location", "I-Location", "I-Location", "O"]


@pytest.mark.parametrize("record, message", [
    ({"text": "Idlib", "entities": [{"start": 0, "end": 5, "label": "Town"}]}, "unknown label 'Town'"),
    ({"text": "Idlib", "entities": [{"start": 0, "end": 9, "label": "Location"}]}, "outside the text"),
    ({"text": "Idlib city", "entities": [{"start": 0, "end": 5, "label": "Location"},
                                     {"start": 3, "end": 10, "label": "Location"}]}, "overlapping spans"),
    ({"text": "", "entities": []}, "non-empty string"),
    ({"text": "Idlib", "entities": [{"start": "0", "end": 5, "label": "Location"}]}, "must be whole numbers"),
    ({"text": "Idlib", "entities": [{"start": True, "end": 5, "label": "Location"}]}, "must be whole numbers"),
    ({"text": "Idlib", "entities": {"start": 0, "end": 5, "label": "Location"}}, "'entities' must be a list"),
])
def test_bad_span_data_names_file_record_and_problem(tmp_path, record, message):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"text": "ok text", "entities": []}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError, match=rf"bad.jsonl:2: .*{message}"):
        read_tagger_file(f, SCHEMA, "spans")


def test_empty_file_and_bad_conll_tag(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="empty.txt: no examples"):
        read_tagger_file(empty, SCHEMA, "conll")
    # A .jsonl's format is told from its first record: an empty file or a broken first line is named as such
    # (was: "cannot tell the format from the name", and a bare JSONDecodeError).
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty.jsonl: no records"):
        read_tagger_file(tmp_path / "empty.jsonl", SCHEMA)
    (tmp_path / "broken.jsonl").write_text("{broken\n")
    with pytest.raises(DataError, match="broken.jsonl:1: invalid JSON"):
        read_tagger_file(tmp_path / "broken.jsonl", SCHEMA)
    (tmp_path / "dict.jsonl").write_text(json.dumps({"text": "Idlib", "entities": {"start": 0}}) + "\n")
    with pytest.raises(DataError, match="dict.jsonl:1: 'entities' must be a list"):  # was a bare KeyError
        read_tagger_file(tmp_path / "dict.jsonl", SCHEMA)
    bad = tmp_path / "bad.txt"
    bad.write_text("Idlib B-Town\n")
    with pytest.raises(DataError, match=r"bad.txt:1: unknown label 'Town'; the schema has \[[^]]*\]$"):
        read_tagger_file(bad, SCHEMA, "conll")
    bad.write_text("Idlib B-LOC\n")  # CoNLL data read without its mapping: the error says which one maps it
    with pytest.raises(DataError, match=r"unknown label 'LOC'; .* \(mapping 'conll' maps it: --mapping conll"):
        read_tagger_file(bad, SCHEMA, "conll")


def test_labelstudio_and_doccano(tmp_path):
    ls = tmp_path / "ls.json"
    ls.write_text(json.dumps([{"id": 7, "data": {"text": "Russian jets struck Aleppo."}, "annotations": [
        {"result": [{"type": "labels", "value": {"start": 0, "end": 7, "labels": ["Nationality"]}},
                    {"type": "labels", "value": {"start": 20, "end": 26, "labels": ["Location"]}}]}]}]))
    [row] = read_tagger_file(ls, SCHEMA)
    assert row["tags"] == ["B-Nationality", "O", "O", "B-Location", "O"]
    # A task nobody annotated, or whose only annotation was cancelled (skipped), is left out: it was taught as
    # "no entities". A cancelled annotation before a real one is passed over.
    real = {"result": [{"type": "labels", "value": {"start": 20, "end": 26, "labels": ["Location"]}}]}
    ls.write_text(json.dumps([
        {"id": 1, "data": {"text": "Russian jets struck Aleppo."}, "annotations": []},
        {"id": 2, "data": {"text": "Russian jets struck Aleppo."}, "annotations": [{"was_cancelled": True,
                                                                                      "result": []}]},
        {"id": 3, "data": {"text": "Russian jets struck Aleppo."}, "annotations": [
            {"was_cancelled": True, "result": []}, real]}]))
    [row] = read_tagger_file(ls, SCHEMA)
    assert row["id"].endswith("[task 3]") and row["tags"] == ["O", "O", "O", "B-Location", "O"]
    dc = tmp_path / "d.jsonl"
    dc.write_text(json.dumps({"text": "Russian jets struck Aleppo.", "label": [[20, 26, "Location"]]}) + "\n")
    [row] = read_tagger_file(dc, SCHEMA, "doccano")
    assert row["tags"][3] == "B-Location"


def test_a_label_studio_export_of_the_wrong_shape_is_a_data_error_naming_the_task(tmp_path):
    """Hand-edited or half-converted exports, found by fuzzing (runs/s27/reader_fuzz.py): annotations or a result
    that is not a list, labels that are not a list of names, stopped both readers with a TypeError or a KeyError
    before 2026-12-06."""
    text = "Russian jets struck Aleppo."
    region = {"type": "labels", "value": {"start": 20, "end": 26, "labels": ["Location"]}}
    ls = tmp_path / "ls.json"
    for task, problem in (({"annotations": 3}, "'annotations' is 3, not a list of annotations"),
                          ({"annotations": True}, "'annotations' is True, not a list of annotations"),
                          ({"annotations": [{"result": 18}]}, "an annotation's 'result' is 18, not a list of results"),
                          ({"annotations": [{"result": [{"value": {"start": 20, "end": 26, "labels": {"x": 1}}}]}]},
                           "a label result's labels are {'x': 1}, not a list of label names")):
        ls.write_text(json.dumps([{"id": 9, "data": {"text": text}, "annotations": [{"result": [region]}]},
                                  {"id": 4, "data": {"text": text}} | task]))
        with pytest.raises(DataError, match=re.escape(f"ls.json[task 4]: {problem}")):
            read_tagger_file(ls, SCHEMA)
        if "labels are" not in problem:  # (the brief reader reads TextAreas, not label regions)
            with pytest.raises(DataError, match=re.escape(f"ls.json[task 4]: {problem}")):
                read_brief_file(ls)


def test_labelstudio_json_min_export_and_a_text_field_of_another_name(tmp_path, caplog):
    """JSON_MIN, as Label Studio's converter writes it: the task's data fields at the top, each Labels control's
    regions under the control's name, annotation fields beside them, one record per annotation. It stopped with
    "a task needs a 'data' object"."""
    meta = {"annotator": "ana@example.org", "created_at": "2026-11-01T10:00:00Z",
            "updated_at": "2026-11-01T10:00:00Z", "lead_time": 12.5}
    region = {"start": 20, "end": 26, "text": "Aleppo", "labels": ["Location"]}
    ls = tmp_path / "min.json"
    ls.write_text(json.dumps([
        {"text": "Russian jets struck Aleppo.", "id": 1, "ner": [{"start": 0, "end": 7, "text": "Russian",
                                                                  "labels": ["Nationality"]}, region],
         "annotation_id": 11, **meta},
        {"text": "Russian jets struck Aleppo.", "id": 1, "ner": [region], "annotation_id": 12, **meta},  # 2nd
        {"text": "Talks resumed.", "id": 2, "annotation_id": 13, **meta},  # annotated: no entities
        {"text": "Not yet annotated.", "id": 3, "annotation_id": None, "annotator": None, "created_at": None,
         "updated_at": None, "lead_time": None}]))
    with caplog.at_level("WARNING"):
        rows = read_tagger_file(ls, SCHEMA)
    assert [r["tags"] for r in rows] == [["B-Nationality", "O", "O", "B-Location", "O"], ["O", "O", "O"]]
    assert rows[0]["id"].endswith("[task 1]")
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "1 task(s) without an annotation" in said and "1 more annotation(s)" in said
    # A project whose text field is not called "text": its one text field is taken, in both exports.
    full = tmp_path / "article.json"
    full.write_text(json.dumps([{"id": 5, "data": {"article": "Russian jets struck Aleppo.", "n": 3},
                                 "annotations": [{"result": [{"type": "labels", "value": region}]}]}]))
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert read_tagger_file(full, SCHEMA)[0]["tags"][3] == "B-Location"
    assert "read their text from 'article', their one text field" in caplog.text  # said, not guessed silently
    full.write_text(json.dumps([{"id": 5, "data": {"article": "A.", "title": "B."}, "annotations": [{"result": []}]}]))
    with pytest.raises(DataError, match=r"\[task 5\]: no 'text' field, and more than one other text field to take "
                                        r"instead \('article', 'title'\)"):
        read_tagger_file(full, SCHEMA)
    ls.write_text(json.dumps([{"id": 9, "title": "No regions, no annotation fields"}]))
    with pytest.raises(DataError, match=r"\[task 9\]: a task needs a 'data' object .* \(JSON_MIN export\)"):
        read_tagger_file(ls, SCHEMA)


def test_a_jsonl_record_without_an_entity_list_is_an_error_not_a_text_without_entities(tmp_path, caplog):
    """A file whose entities sit under another key ("ner", Doccano's "labels") was read as Doccano and every
    record taught as "no entities": a model trained on it learns to find nothing. Prodigy's "spans" are read,
    its rejected and ignored answers left out."""
    text = "Russian jets struck Aleppo."
    f = tmp_path / "f.jsonl"
    f.write_text(json.dumps({"text": text, "ner": [[20, 26, "Location"]]}) + "\n")
    with pytest.raises(DataError, match=r"f.jsonl:1: cannot tell the format: .* this one has 'text', 'ner'"):
        read_tagger_file(f, SCHEMA)
    for fmt, said in (("doccano", r"f.jsonl:1: no 'label' list"), ("spans", r"f.jsonl:1: no 'entities' list")):
        with pytest.raises(DataError, match=said):
            read_tagger_file(f, SCHEMA, fmt)
    f.write_text(json.dumps({"text": text, "labels": [[20, 26, "Location"]]}) + "\n")  # older Doccano
    assert read_tagger_file(f, SCHEMA)[0]["tags"][3] == "B-Location"
    f.write_text(json.dumps({"text": text, "label": [[20, 26, "Location"]]}) + "\n"
                 + json.dumps({"text": text}) + "\n")  # the second record lost its labels
    with pytest.raises(DataError, match=r"f.jsonl:2: no 'label' list"):
        read_tagger_file(f, SCHEMA)
    prodigy = [{"text": text, "spans": [{"start": 20, "end": 26, "label": "Location", "token_start": 3}],
                "answer": "accept"},
               {"text": "Talks resumed.", "spans": [], "answer": "accept"},
               {"text": text, "spans": [{"start": 0, "end": 7, "label": "Location"}], "answer": "reject"},
               {"text": text, "spans": [], "answer": "ignore"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in prodigy))
    with caplog.at_level("WARNING"):
        rows = read_tagger_file(f, SCHEMA)
    assert [r["tags"] for r in rows] == [["O", "O", "O", "B-Location", "O"], ["O", "O", "O"]]
    assert "2 record(s) answered 'reject' or 'ignore'" in caplog.text


def test_brief_pairs_from_parquet_and_the_cnn_dailymail_and_xsum_columns(tmp_path):
    """A split saved by the datasets library (Dataset.to_parquet) with CNN/DailyMail's article+highlights, and
    XSum's document+summary as JSONL; parquet files were refused, those columns "no article text"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a", "b"], "article": ["Troops entered Idlib on Monday. Talks stalled.",
                                                            "Rebels shelled Homs. Two people died."],
                             "highlights": ["Troops entered Idlib .\nTalks stalled .", "Rebels shelled Homs ."]}),
                   tmp_path / "cnn.parquet")
    pairs = read_brief_file(tmp_path / "cnn.parquet")
    assert [(p["id"], p["brief"]) for p in pairs] == [
        (f"{tmp_path}/cnn.parquet#1", "Troops entered Idlib .\nTalks stalled ."),
        (f"{tmp_path}/cnn.parquet#2", "Rebels shelled Homs .")]
    (tmp_path / "x.jsonl").write_text(json.dumps({"document": "A long report.", "summary": "Short."}) + "\n")
    assert read_brief_file(tmp_path / "x.jsonl")[0]["text"] == "A long report."
    both = [{"article": "Troops entered Idlib.", "highlights": "Troops entered Idlib ."},
            {"article": "Rebels shelled Homs.", "highlights": "Rebels shelled Homs ."}]
    (tmp_path / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in both))  # Dataset.to_json
    (tmp_path / "list.json").write_text(json.dumps(both))
    texts = ["Troops entered Idlib.", "Rebels shelled Homs."]
    assert [p["text"] for p in read_brief_file(tmp_path / "lines.json")] == texts
    assert [p["text"] for p in read_brief_file(tmp_path / "list.json")] == texts
    assert read_brief_file(tmp_path / "list.json")[1]["id"].endswith("list.json[1]")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"bad.parquet: not a readable Parquet file"):
        read_brief_file(tmp_path / "bad.parquet")
    (tmp_path / "y.jsonl").write_text(json.dumps({"body": "A long report.", "tldr": "Short."}) + "\n")
    with pytest.raises(DataError, match=r"y.jsonl:1: no article text \(looked for text, article, source, document, "
                                        r"reports; the record has 'body', 'tldr'\)"):
        read_brief_file(tmp_path / "y.jsonl")


def test_a_csv_of_brief_pairs_takes_long_articles_and_names_records_by_their_first_line(tmp_path):
    """csv's field limit (131,072 characters) stopped a training file with one long article in a traceback."""
    long = "Troops entered Idlib on Monday. " * 5000
    f = tmp_path / "p.csv"
    f.write_text(f'text,brief\n"{long}",Troops entered Idlib.\n"Two\nlines",Short.\n"Three",Brief.\n')
    pairs = read_brief_file(f)
    assert len(pairs[0]["text"]) == len(long) > 131_072
    assert [p["id"] for p in pairs] == [f"{f}:2", f"{f}:3", f"{f}:5"]


def test_brief_pairs_jsonl_csv_and_neus(tmp_path):
    j = tmp_path / "p.jsonl"
    j.write_text(json.dumps({"article": "A. B.", "abstract": "A."}) + "\n")
    assert read_brief_file(j)[0]["brief"] == "A."
    c = tmp_path / "p.csv"
    c.write_text('text,brief\n"Long article.","Short."\n')
    assert read_brief_file(c)[0]["text"] == "Long article."
    src, tgt = tmp_path / "val.source", tmp_path / "val.target"
    src.write_text("TITLE=> T1. ARTICLE=> Body one. [SEP] TITLE=> T2. ARTICLE=> Body two.\n")
    tgt.write_text("TITLE=> Neutral headline. ARTICLE=> The summary.\n")
    [pair] = read_brief_file(src)
    assert pair == {"id": "val.source:1", "text": ["Body one.", "Body two."], "brief": "The summary.",
                    "headline": "Neutral headline."}
    reports = tmp_path / "reports.jsonl"  # the reports of one event, as a NeuS source is read
    reports.write_text(json.dumps({"reports": ["Report one.", "Report two."], "brief": "Both."}) + "\n")
    assert read_brief_file(reports)[0]["text"] == ["Report one.", "Report two."]
    for n, record in enumerate([{"reports": ["Report one.", 3]}, {"text": ["A paragraph.", "Another."]}]):
        reports.write_text(json.dumps({**record, "brief": "Both."}) + "\n")
        with pytest.raises(DataError, match=r"reports.jsonl:1: the article text is a list: the reports of one "
                                            r"event go in a field named 'reports'"):
            read_brief_file(reports)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n')
    with pytest.raises(DataError, match="bad.jsonl:1: no brief"):
        read_brief_file(bad)


def test_a_byte_order_mark_is_not_data(tmp_path):
    # Excel and other Windows tools start UTF-8 files with a byte-order mark: it must not become part of
    # the first column's name or the first token, or make the first JSON line invalid.
    bom = "\ufeff"
    c = tmp_path / "p.csv"
    c.write_text(bom + 'text,brief\n"Long article.","Short."\n', encoding="utf-8")
    assert read_brief_file(c)[0]["text"] == "Long article."
    j = tmp_path / "s.jsonl"
    j.write_text(bom + json.dumps({"text": "Idlib", "entities": [{"start": 0, "end": 5, "label": "Location"}]})
                 + "\n", encoding="utf-8")
    assert read_tagger_file(j, SCHEMA)[0]["tags"] == ["B-Location"]
    f = tmp_path / "a.txt"
    f.write_text(bom + "Idlib\tB-Location\n", encoding="utf-8")
    assert read_tagger_file(f, SCHEMA, "conll")[0]["tokens"] == ["Idlib"]


def test_iob1_bioes_and_stray_inside_tags_read_as_iob2(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("Barcelona I-ORG\nbeat O\nReal I-ORG\nMadrid I-ORG\nand O\nAjax I-ORG\nPSV B-ORG\n\n"  # IOB1
                 "Maarat B-LOC\nal E-LOC\nIdlib S-LOC\nAleppo S-LOC\n\n"                              # BIOES
                 "fellow O\nQueenslander I-MISC\nDaniel I-PER\n")                                   # stray I-
    rows = read_tagger_file(f, SCHEMA, "conll", "conll")
    assert rows[0]["tags"] == ["B-Organisation", "O", "B-Organisation", "I-Organisation", "O", "B-Organisation",
                               "B-Organisation"]
    assert rows[1]["tags"] == ["B-Location", "I-Location", "B-Location", "B-Location"]
    assert rows[2]["tags"] == ["O", None, "B-Person"]  # MISC is not learned from CoNLL; Daniel starts a Person


def test_a_folder_given_as_a_data_file_is_named_as_one(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        read_tagger_file(tmp_path, SCHEMA)
    with pytest.raises(DataError, match="is a folder"):
        read_brief_file(tmp_path)
    with pytest.raises(DataError, match="missing.jsonl: no such file"):
        read_brief_file(tmp_path / "missing.jsonl")


def test_a_pair_that_is_empty_once_cleaned_is_named_and_targets_are_cleaned(tmp_path):
    from transformers import AutoTokenizer

    from conflictbrief.model.loading import base_model_path
    from conflictbrief.training.briefer import featurize
    from conflictbrief.training.config import BrieferConfig

    for record, name in (({"text": "<div></div>", "brief": "A brief."}, "article"),
                         ({"text": "An article.", "brief": "<p> </p>"}, "brief")):
        f = tmp_path / "p.jsonl"
        f.write_text(json.dumps({"text": "An article.", "brief": "A brief."}) + "\n" + json.dumps(record) + "\n")
        with pytest.raises(DataError, match=f"p.jsonl:2: the {name} is empty once cleaned"):
            read_brief_file(f)
    # A lone surrogate in a brief (half an emoji) stopped training in the tokenizer; HTML debris was taught.
    tok = AutoTokenizer.from_pretrained(base_model_path())
    [row] = featurize([{"text": "Shelling hit Idlib.", "brief": "Shelling hit Idlib & # 39;s centre \ud83d.",
                        "headline": None}], tok, BrieferConfig())
    assert tok.decode(row["labels"], skip_special_tokens=True) == "shelling hit idlib ' s centre."  # wordpieces


def test_span_text_is_split_into_words_without_the_characters_cleaning_drops(tmp_path):
    # Span JSONL keeps its own offsets, so it is not cleaned; a lone surrogate became a "word" that stopped
    # training (UnicodeEncodeError), and a zero-width space one the tokenizer has no piece for.
    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps({"text": "Idlib \ud83d fell\u200b today", "entities": [
        {"start": 0, "end": 5, "label": "Location"}]}) + "\n")
    [row] = read_tagger_file(f, SCHEMA)
    assert row["tokens"] == ["Idlib", "fell", "today"] and row["tags"] == ["B-Location", "O", "O"]


def test_a_soft_hyphen_inside_a_name_does_not_split_it(tmp_path):
    # Cleaning drops the soft hyphen at inference ("Mos\u00adul" is tagged as "Mosul"); span JSONL, not cleaned,
    # taught "Mos" + "ul" (B-, I-Location) instead, words the tagger never sees.
    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps({"text": "Mos\u00adul fell to Zero\u200bwidth forces.", "entities": [
        {"start": 0, "end": 6, "label": "Location"}]}) + "\n")
    [row] = read_tagger_file(f, SCHEMA)
    assert row["tokens"] == ["Mosul", "fell", "to", "Zerowidth", "forces", "."]
    assert row["tags"] == ["B-Location", "O", "O", "O", "O", "O"]


def test_files_that_are_not_utf8_are_named_with_line_and_column(tmp_path):
    # A Windows-1252 file (0x92: a curly apostrophe) used to end in a UnicodeDecodeError traceback
    from conflictbrief.inference.guards import Lexicon, LexiconError
    from conflictbrief.model.labels import SchemaError
    from conflictbrief.training.config import ConfigError, TaggerConfig, load_config

    conll = tmp_path / "a.conll"
    conll.write_bytes(b"Syrian B-Nationality\nforces O\n\nAleppo\x92s B-Location\n")
    with pytest.raises(DataError, match=r"a\.conll:4: not UTF-8 \(column 7: b'\\x92'\); save the file as UTF-8"):
        read_tagger_file(conll, SCHEMA, "conll")
    pairs = tmp_path / "p.jsonl"
    pairs.write_bytes(b'{"text": "Caf\xe9 bombed.", "brief": "A caf\xe9 was bombed."}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:1: not UTF-8 \(column 14: b'\\xe9'\)"):
        read_brief_file(pairs)
    (tmp_path / "n.source").write_text("A story.\n")
    (tmp_path / "n.target").write_bytes(b"Caf\xe9\n")
    with pytest.raises(DataError, match=r"n\.target:1: not UTF-8"):
        read_brief_file(tmp_path / "n.source")
    config = tmp_path / "c.yaml"
    config.write_bytes(b"epochs: 2\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:2: not UTF-8 \(column 6"):
        load_config(TaggerConfig, config)
    with pytest.raises(SchemaError, match=r"label schema .*c\.yaml:2: not UTF-8"):
        LabelSchema.from_yaml(config)
    with pytest.raises(SchemaError, match="no such file"):
        LabelSchema.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("labels: [\n")
    with pytest.raises(SchemaError, match="not valid YAML"):
        LabelSchema.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(LexiconError, match=r"c\.yaml:2: cannot read the lexicon: not UTF-8"):
        Lexicon.load(config)


def test_compressed_training_and_evaluation_files_are_read(tmp_path, monkeypatch):
    """gzip, bzip2 and xz files of every format are read as their plain twins are, the format told from the name
    without its compression suffix. Before, they stopped with "is gzip-compressed; ... decompress it first" (and
    before that with "not UTF-8 (column 2: b'\\x8b')"). A damaged one is named as such."""
    import bz2
    import gzip
    import lzma

    from conflictbrief.training.mlm import read_texts
    from conflictbrief.training.config import DataFile

    conll = "Idlib B-Location\r\nwas O\r\nshelled O\r\n\r\nAleppo B-Location\r\n".encode()
    spans = json.dumps({"text": "Shelling hit Idlib.", "entities": [{"start": 13, "end": 18, "label": "Location"}]})
    doccano = json.dumps({"text": "Shelling hit Idlib.", "label": [[13, 18, "Location"]]})
    studio = json.dumps([{"id": 1, "data": {"text": "Shelling hit Idlib."}, "annotations": [{"result": [
        {"value": {"start": 13, "end": 18, "labels": ["Location"]}}]}]}])
    pairs = "\n".join(json.dumps({"text": f"Article {i} on the shelling of Idlib.", "brief": f"Brief {i}."})
                      for i in range(3)) + "\n"
    plain = {"train.conll": conll, "s.jsonl": spans.encode(), "d.jsonl": doccano.encode(),
             "ls.json": studio.encode(), "p.jsonl": pairs.encode(), "p.json": pairs.encode(),
             "p.csv": b'text,brief\r\n"Long article, on Idlib.",Brief.\r\n',
             "n.source": b"TITLE=> T. ARTICLE=> Shelling hit Idlib.\n", "n.target": b"TITLE=> H. ARTICLE=> B.\n"}
    for name, data in plain.items():
        (tmp_path / name).write_bytes(data)
    def two_gzip_members(data):  # as `cat a.gz b.gz` makes
        return gzip.compress(data[:9]) + gzip.compress(data[9:])

    for suffix, compress in ((".gz", two_gzip_members), (".bz2", bz2.compress), (".xz", lzma.compress)):
        for name, data in plain.items():
            (tmp_path / (name + suffix)).write_bytes(compress(data))
        for name in ("train.conll", "s.jsonl", "d.jsonl", "ls.json"):
            rows = read_tagger_file(tmp_path / (name + suffix), SCHEMA)
            assert [r["tags"] for r in rows] == [r["tags"] for r in read_tagger_file(tmp_path / name, SCHEMA)], name
        assert [r["id"] for r in read_tagger_file(tmp_path / f"train.conll{suffix}", SCHEMA)] == \
            [f"train.conll{suffix}:1", f"train.conll{suffix}:5"]  # lines counted as in the plain file
        for name in ("p.jsonl", "p.json", "p.csv", "n.source"):
            got = read_brief_file(tmp_path / (name + suffix))
            assert [(p["text"], p["brief"]) for p in got] == [(p["text"], p["brief"]) for p in
                                                              read_brief_file(tmp_path / name)], name
        assert read_texts(DataFile(path=str(tmp_path / f"train.conll{suffix}"), format="conll")) == \
            ["Idlib was shelled", "Aleppo"]
    import sys

    import zstandard

    (tmp_path / "train.conll.zst").write_bytes(zstandard.ZstdCompressor().compress(conll))
    assert [r["tags"] for r in read_tagger_file(tmp_path / "train.conll.zst", SCHEMA)] == \
        [r["tags"] for r in read_tagger_file(tmp_path / "train.conll", SCHEMA)]
    with monkeypatch.context() as m:  # without the zstandard package
        m.setitem(sys.modules, "zstandard", None)
        with pytest.raises(DataError, match=r"train\.conll\.zst: is zstd-compressed; reading Zstandard \(\.zst\) "
                                            "data needs the zstandard package: pip install zstandard"):
            read_tagger_file(tmp_path / "train.conll.zst", SCHEMA)
    (tmp_path / "s.ndjson").write_bytes(spans.encode())  # JSON Lines by another name
    (tmp_path / "p.ndjson").write_bytes(pairs.encode())
    assert read_tagger_file(tmp_path / "s.ndjson", SCHEMA)[0]["tags"] == read_tagger_file(tmp_path / "s.jsonl",
                                                                                          SCHEMA)[0]["tags"]
    assert len(read_brief_file(tmp_path / "p.ndjson")) == 3
    (tmp_path / "n.target").unlink()  # a compressed target beside a plain source is found as well
    assert read_brief_file(tmp_path / "n.source")[0]["brief"] == "B."
    damaged = gzip.compress(conll)[:-12]
    (tmp_path / "cut.conll.gz").write_bytes(damaged)
    with pytest.raises(DataError, match=r"cut\.conll\.gz: is gzip-compressed but cannot be decompressed: it is cut "
                                        "short or damaged"):
        read_tagger_file(tmp_path / "cut.conll.gz", SCHEMA)
    # damaged in the middle, not cut short: zlib.error came through as it was until 2026-12-06
    import zlib

    many = b"".join(b"Idlib B-Location\nwas O\nshelled O\non O\nday O\n%d O\nwith O\n%d O\nrockets O\n\n"
                    % (i, i * 7919 % 1000) for i in range(400))
    middle = len(gzip.compress(many)) // 2
    (tmp_path / "bad.conll.gz").write_bytes(gzip.compress(many)[:middle] + b"\xff" * 40
                                            + gzip.compress(many)[middle + 40:])
    with pytest.raises(zlib.error):
        gzip.decompress((tmp_path / "bad.conll.gz").read_bytes())
    with pytest.raises(DataError, match=r"bad\.conll\.gz: is gzip-compressed but cannot be decompressed: it is cut "
                                        r"short or damaged \(Error -3 while decompressing data"):
        read_tagger_file(tmp_path / "bad.conll.gz", SCHEMA)
    (tmp_path / "x.parquet.gz").write_bytes(gzip.compress(b"PAR1"))
    with pytest.raises(DataError, match="compressed inside already"):
        read_brief_file(tmp_path / "x.parquet.gz")
    (tmp_path / "bzh.conll").write_text("BZh B-Organisation\nsaid O\n\n")  # text that starts like bzip2 is text
    assert read_tagger_file(tmp_path / "bzh.conll", SCHEMA, "conll")
    from conflictbrief.training.config import ConfigError, TaggerConfig, load_config

    (tmp_path / "c.yaml").write_bytes(gzip.compress(b"epochs: 2\n"))  # configs stay plain text, and say so
    with pytest.raises(ConfigError, match=r"c\.yaml: is gzip-compressed; .* \(gunzip -k "):
        load_config(TaggerConfig, tmp_path / "c.yaml")


def test_brief_pairs_from_label_studio_and_doccano_exports(tmp_path, caplog):
    """Summaries written in Label Studio (Text Summarization template: a TextArea) or in a Doccano
    sequence-to-sequence project were "no brief" or "no article text" errors."""
    def area(name, *lines):
        return {"from_name": name, "to_name": "text", "type": "textarea", "value": {"text": list(lines)}}

    tasks = [
        {"id": 7, "data": {"text": "Troops entered Idlib on Monday. Talks stalled."},
         "annotations": [{"was_cancelled": True, "result": [area("answer", "Cancelled.")]},
                         {"result": [area("answer", "Troops entered Idlib.", "Talks stalled."),
                                     {"type": "labels", "value": {"start": 15, "end": 20, "labels": ["Location"]}}]}]},
        {"id": 8, "data": {"text": "Nothing yet."}, "annotations": []},
        {"id": 10, "data": {"text": "Imported, never opened."}},
        {"id": 9, "data": {"article": "Rebels shelled Homs. Two people died."},
         "annotations": [{"result": [area("headline", "Shelling in Homs"), area("summary", "Rebels shelled Homs.")]}]},
    ]
    f = tmp_path / "ls.json"
    f.write_text(json.dumps(tasks))
    with caplog.at_level("WARNING"):
        pairs = read_brief_file(f)
    assert pairs == [
        {"id": f"{f}[task 7]", "text": tasks[0]["data"]["text"], "brief": "Troops entered Idlib.\nTalks stalled.",
         "headline": None},
        {"id": f"{f}[task 9]", "text": "Rebels shelled Homs. Two people died.", "brief": "Rebels shelled Homs.",
         "headline": "Shelling in Homs"}]
    assert "2 task(s) without a brief yet" in caplog.text
    # JSON_MIN (and CSV): the data's fields beside each control's answer, one record per annotation
    m = tmp_path / "min.json"
    m.write_text(json.dumps([
        {"id": 1, "text": "Troops entered Idlib.", "answer": "Troops entered Idlib.", "annotator": 2,
         "annotation_id": 4, "lead_time": 3.5},
        {"id": 1, "text": "Troops entered Idlib.", "answer": "Another annotator.", "annotation_id": 5},
        {"id": 2, "text": "Rebels shelled Homs.", "answer": {"text": ["Rebels", "shelled."]}, "annotation_id": 6}]))
    assert [(p["id"], p["brief"]) for p in read_brief_file(m)] == [
        (f"{m}[task 1]", "Troops entered Idlib."), (f"{m}[task 2]", "Rebels\nshelled.")]
    c = tmp_path / "ls.csv"
    c.write_text("answer,annotation_id,annotator,created_at,id,lead_time,text,updated_at\n"
                 "Talks stalled.,3,1,2026-12-01,5,2.1,Talks stalled in Geneva.,2026-12-01\n")
    assert [(p["text"], p["brief"]) for p in read_brief_file(c)] == [("Talks stalled in Geneva.", "Talks stalled.")]
    two = tmp_path / "two.json"
    two.write_text(json.dumps([{"id": 3, "data": {"text": "A. B."},
                                "annotations": [{"result": [area("first", "A."), area("second", "B.")]}]}]))
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps([{"id": 4, "data": {"text": "A. B."}, "annotations": [{"result": [
        {"from_name": "answer", "type": "textarea", "value": {"text": "A."}}]}]}]))
    assert read_brief_file(odd)[0]["brief"] == "A."  # one string instead of a list of lines
    odd.write_text(json.dumps([{"id": 5, "data": {"text": "A. B."}, "annotations": [{"result": [
        {"from_name": "answer", "type": "textarea", "value": {"text": [1, 2]}}]}]}]))
    with pytest.raises(DataError, match=r"odd.json\[task 5\]: the TextArea 'answer' holds \[1, 2\], not lines"):
        read_brief_file(odd)
    with pytest.raises(DataError, match=r"two.json\[task 3\]: more than one answer \('first', 'second'\) and none "
                                        r"named as the brief"):
        read_brief_file(two)
    # Doccano's sequence-to-sequence export: the responses under 'label'
    d = tmp_path / "doccano.jsonl"
    d.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": 1, "text": "Troops entered Idlib.", "label": ["Troops entered Idlib.", "A second response."],
         "Comments": []},
        {"id": 2, "text": "Not annotated.", "label": []}]))
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert [(p["id"], p["brief"]) for p in read_brief_file(d)] == [(f"{d}:1", "Troops entered Idlib.")]
    assert "1 text(s) with more than one response" in caplog.text and "1 task(s) without a brief" in caplog.text
    none = tmp_path / "none.json"
    none.write_text(json.dumps([tasks[1]]))
    with pytest.raises(DataError, match=r"none.json: no pairs found \(1 task\(s\), none with a brief yet\)"):
        read_brief_file(none)
    with pytest.raises(DataError, match=r"none.json: no examples found \(no task annotated yet"):
        read_tagger_file(none, SCHEMA)  # (it said "empty file?")


def test_brief_pairs_from_tsv_and_excel_workbooks(tmp_path, caplog, monkeypatch):
    """Label Studio's TSV export and a workbook of article/brief columns were "must be .jsonl, .json, .csv...";
    a workbook's notes sheet is passed over, a row without a brief named by its sheet and row."""
    import openpyxl

    t = tmp_path / "p.tsv"
    t.write_text('text\tbrief\nTroops entered Idlib, officials said.\tTroops entered Idlib.\n')
    assert [(p["text"], p["brief"]) for p in read_brief_file(t)] == [("Troops entered Idlib, officials said.",
                                                                     "Troops entered Idlib.")]
    book = openpyxl.Workbook()
    notes = book.active
    notes.title = "Notes"
    notes.append(["Briefs written by the desk, November."])
    pairs = book.create_sheet("Pairs")
    rows = {2: ["id", "article", "summary"],  # an empty first row: the header is the first row that is not empty
            3: [12, "Rebels shelled Homs. Two people died.", "Rebels shelled Homs."],
            5: [13, "Talks stalled in Geneva.", "Talks stalled."]}  # an empty row 4 is passed over
    for n, row in rows.items():
        for column, value in enumerate(row, 1):
            pairs.cell(row=n, column=column, value=value)
    f = tmp_path / "desk.xlsx"
    book.save(f)
    with caplog.at_level("WARNING"):
        got = read_brief_file(f)
    assert [(p["id"], p["brief"]) for p in got] == [(f"{f}[Pairs]:3", "Rebels shelled Homs."),
                                                    (f"{f}[Pairs]:5", "Talks stalled.")]
    assert "sheet(s) 'Notes' passed over" in caplog.text
    pairs.append([14, "Shelling resumed."])
    book.save(f)
    with pytest.raises(DataError, match=r"desk.xlsx\[Pairs\]:6: no brief"):
        read_brief_file(f)
    (tmp_path / "bad.xlsx").write_bytes(b"not a workbook")
    with pytest.raises(DataError, match=r"bad.xlsx: not a readable .xlsx workbook"):
        read_brief_file(tmp_path / "bad.xlsx")
    (tmp_path / "p.xlsx.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"p.xlsx.gz: an Excel workbook is compressed inside already"):
        read_brief_file(tmp_path / "p.xlsx.gz")
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    with pytest.raises(DataError, match=r"desk.xlsx: reading Excel \(.xlsx\) files needs the openpyxl package"):
        read_brief_file(f)


def test_brief_pairs_from_an_excel_97_2003_workbook(tmp_path, caplog, monkeypatch):
    import sys

    import xlwt

    book = xlwt.Workbook()
    book.add_sheet("Notes").write(0, 0, "Briefs written by the desk, November.")
    pairs = book.add_sheet("Pairs")
    for n, row in {1: ["id", "article", "summary"], 2: [12, "Rebels shelled Homs. Two people died.",
                                                        "Rebels shelled Homs."],
                   4: [13, "Talks stalled in Geneva.", "Talks stalled."]}.items():
        for column, value in enumerate(row):
            pairs.write(n, column, value)
    f = tmp_path / "desk.xls"
    book.save(str(f))
    with caplog.at_level("WARNING"):
        got = read_brief_file(f)
    assert [(p["id"], p["text"], p["brief"]) for p in got] == [
        (f"{f}[Pairs]:3", "Rebels shelled Homs. Two people died.", "Rebels shelled Homs."),
        (f"{f}[Pairs]:5", "Talks stalled in Geneva.", "Talks stalled.")]
    assert "sheet(s) 'Notes' passed over" in caplog.text
    (tmp_path / "bad.xls").write_bytes(b"not a workbook")
    with pytest.raises(DataError, match=r"bad.xls: not a readable .xls workbook"):
        read_brief_file(tmp_path / "bad.xls")
    monkeypatch.setitem(sys.modules, "xlrd", None)
    with pytest.raises(DataError, match=r"desk.xls: reading Excel 97-2003 \(.xls\) files needs the xlrd package"):
        read_brief_file(f)
