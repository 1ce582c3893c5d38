import hashlib
import json

import pytest

from trainer.text_data import DatasetError, DatasetIssue, infer_kind, read_text_dataset

ZWJ_FAMILY = "👩\u200d👩\u200d👧\u200d👦"


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def jsonl(*records):
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def test_it_reads_jsonl_dialogue_pairs(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl({"question": "What is 2+2?", "answer": "4"}, {"question": "Hi", "answer": "Hello", "id": 7}))
    data = read_text_dataset(path)
    assert data.kind == "dialogue"
    assert data.pairs == [("What is 2+2?", "4"), ("Hi", "Hello")]
    assert data.rows == 2
    assert data.warnings == []
    assert data.preview(1) == [{"question": "What is 2+2?", "answer": "4"}]


def test_it_turns_multi_turn_dialogues_into_consecutive_pairs(tmp_path):
    path = write(tmp_path, "t.jsonl", jsonl({"turns": ["a", "b", "c", "d"]}, {"turns": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}))
    assert read_text_dataset(path).pairs == [("a", "b"), ("b", "c"), ("c", "d"), ("x", "y")]


def test_it_reads_csv_with_quotes_commas_and_newlines(tmp_path):
    path = write(tmp_path, "d.csv", 'question,answer\n"Salt, or sugar?","Salt.\nAlways ""salt"""\nq2,a2\n')
    data = read_text_dataset(path)
    assert data.kind == "dialogue"
    assert data.pairs == [("Salt, or sugar?", 'Salt.\nAlways "salt"'), ("q2", "a2")]


def test_it_reads_corpus_text_and_jsonl(tmp_path):
    txt = read_text_dataset(write(tmp_path, "c.txt", "first sentence\r\nsecond one\n"))
    assert txt.kind == "corpus"
    assert txt.pairs == [("first sentence", "first sentence"), ("second one", "second one")]
    assert txt.preview() == [{"text": "first sentence"}, {"text": "second one"}]
    js = read_text_dataset(write(tmp_path, "c.jsonl", jsonl({"text": "alpha"}, {"text": "beta"})))
    assert js.kind == "corpus"
    assert js.pairs == [("alpha", "alpha"), ("beta", "beta")]


def test_it_infers_the_kind_from_extension_and_first_line(tmp_path):
    assert infer_kind(tmp_path / "x.safetensors") == "vectors"
    assert infer_kind(tmp_path / "x.npz") == "vectors"
    assert infer_kind(write(tmp_path, "a.csv", "question,answer\n")) == "dialogue"
    assert infer_kind(write(tmp_path, "a.txt", "hello\n")) == "corpus"
    assert infer_kind(write(tmp_path, "b.jsonl", jsonl({"text": "x"}))) == "corpus"
    assert infer_kind(write(tmp_path, "c.jsonl", jsonl({"turns": ["x", "y"]}))) == "dialogue"
    assert infer_kind(write(tmp_path, "data", jsonl({"question": "x", "answer": "y"}))) == "dialogue"


def test_it_keeps_russian_chinese_and_emoji_byte_exact(tmp_path):
    question = f"Как приготовить борщ? 🍲 {ZWJ_FAMILY}"
    answer = "先炒蔬菜，再加汤。👍🏽 Готово!"
    path = write(tmp_path, "u.jsonl", jsonl({"question": question, "answer": answer}))
    csv_path = write(tmp_path, "u.csv", f"question,answer\n{question},\"{answer}\"\n")
    for data in (read_text_dataset(path), read_text_dataset(csv_path)):
        got_q, got_a = data.pairs[0]
        assert got_q.encode("utf-8") == question.encode("utf-8")
        assert got_a.encode("utf-8") == answer.encode("utf-8")


def test_it_tolerates_a_bom(tmp_path):
    path = write(tmp_path, "b.csv", b"\xef\xbb\xbfquestion,answer\nq,a\n")
    assert read_text_dataset(path).pairs == [("q", "a")]


def test_it_reports_a_bad_utf8_byte_with_its_line_and_offset(tmp_path):
    path = write(tmp_path, "bad.txt", b"ok line\nsecond\nthird \xff here\n")
    with pytest.raises(DatasetError) as caught:
        read_text_dataset(path)
    assert caught.value.issues == [DatasetIssue(3, "invalid UTF-8 byte 0xff at byte offset 21 (column 7)")]
    assert "bad.txt" in str(caught.value)


def test_it_collects_several_problems_before_raising(tmp_path):
    content = '{"question": "a"}\n{broken\n{"question": 1, "answer": "x"}\n[1, 2]\n{"question": "q", "answer": "a"}\n'
    with pytest.raises(DatasetError) as caught:
        read_text_dataset(write(tmp_path, "many.jsonl", content))
    issues = caught.value.issues
    assert [issue.line for issue in issues] == [1, 2, 3, 4]
    assert "missing key `answer`" in issues[0].message
    assert "invalid JSON" in issues[1].message
    assert "`question` must be a string" in issues[2].message
    assert "expected a JSON object" in issues[3].message
    assert "line 2: invalid JSON" in str(caught.value)


def test_it_stops_collecting_after_twenty_problems(tmp_path):
    with pytest.raises(DatasetError) as caught:
        read_text_dataset(write(tmp_path, "x.jsonl", "{bad\n" * 100))
    assert len(caught.value.issues) == 21
    assert caught.value.issues[19].line == 20
    assert "stopped after 20" in caught.value.issues[-1].message


def test_it_names_the_line_of_a_csv_row_with_wrong_columns(tmp_path):
    path = write(tmp_path, "w.csv", 'question,answer\n"multi\nline",ok\nq,a,extra\n')
    with pytest.raises(DatasetError) as caught:
        read_text_dataset(path)
    assert caught.value.issues == [DatasetIssue(4, "expected 2 columns like the header, got 3")]


def test_it_refuses_a_csv_without_the_right_header(tmp_path):
    with pytest.raises(DatasetError, match="missing `answer`"):
        read_text_dataset(write(tmp_path, "h.csv", "question,reply\nq,a\n"))


def test_it_refuses_an_empty_file_and_a_file_with_no_usable_rows(tmp_path):
    with pytest.raises(DatasetError, match="empty"):
        read_text_dataset(write(tmp_path, "e.jsonl", b""))
    with pytest.raises(DatasetError, match="no usable rows"):
        read_text_dataset(write(tmp_path, "blank.txt", "\n  \n\n"))
    with pytest.raises(DatasetError, match="no usable rows: the file holds no data rows"):
        read_text_dataset(write(tmp_path, "header_only.csv", "question,answer\n"))


def test_it_refuses_a_binary_file(tmp_path):
    path = write(tmp_path, "model.jsonl", b"PK\x03\x04\x00\x00binary\xff\xfe")
    with pytest.raises(DatasetError, match="binary file") as caught:
        read_text_dataset(path)
    assert caught.value.issues[0].line == 1


def test_it_refuses_files_over_max_bytes_and_max_rows_with_both_numbers(tmp_path):
    path = write(tmp_path, "c.txt", "".join(f"sentence {i}\n" for i in range(50)))
    size = path.stat().st_size
    with pytest.raises(DatasetError, match=f"{size:,} bytes, more than max_bytes = 100"):
        read_text_dataset(path, max_bytes=100)
    with pytest.raises(DatasetError, match="has 50 rows, more than max_rows = 10"):
        read_text_dataset(path, max_rows=10)
    assert read_text_dataset(path, max_rows=50).rows == 50


def test_it_refuses_a_line_longer_than_max_line_bytes(tmp_path):
    path = write(tmp_path, "l.txt", "short\n" + "x" * 500 + "\nshort again\n")
    with pytest.raises(DatasetError) as caught:
        read_text_dataset(path, max_line_bytes=100)
    assert caught.value.issues[-1] == DatasetIssue(2, "line is longer than max_line_bytes = 100 bytes")


def test_it_skips_blank_and_duplicate_rows_with_warnings(tmp_path):
    content = jsonl({"question": "q1", "answer": "a1"}) + "\n" + jsonl({"question": "q1", "answer": "a1"}, {"question": "q2", "answer": " "})
    data = read_text_dataset(write(tmp_path, "w.jsonl", content + jsonl({"question": "q3", "answer": "a3"})))
    assert data.pairs == [("q1", "a1"), ("q3", "a3")]
    assert [str(w) for w in data.warnings] == [
        "line 2: blank line skipped",
        "line 3: duplicate of line 1, row skipped",
        "line 4: empty answer, row skipped",
    ]


def test_it_hashes_the_exact_file_bytes(tmp_path):
    content = b"\xef\xbb\xbfquestion,answer\r\nq,a\r\n"
    path = write(tmp_path, "h.csv", content)
    assert read_text_dataset(path).sha256 == hashlib.sha256(content).hexdigest()


def test_it_refuses_a_dialogue_kind_for_a_plain_text_file(tmp_path):
    with pytest.raises(DatasetError, match="plain-text file is a corpus"):
        read_text_dataset(write(tmp_path, "c.txt", "hello\n"), kind="dialogue")
    with pytest.raises(DatasetError, match="missing key `text`"):
        read_text_dataset(write(tmp_path, "d.jsonl", jsonl({"question": "q", "answer": "a"})), kind="corpus")


def test_it_explains_that_a_json_array_is_not_jsonl(tmp_path):
    path = write(tmp_path, "a.json", '[\n  {"question": "q", "answer": "a"}\n]\n')
    with pytest.raises(DatasetError, match="line 1: this is a JSON array; write one JSON object per line"):
        read_text_dataset(path)


def test_it_reads_the_demo_datasets():
    from pathlib import Path

    data = Path(__file__).resolve().parents[2] / "examples" / "data"
    dialogue = read_text_dataset(data / "demo_dialogue.jsonl")
    assert dialogue.kind == "dialogue" and dialogue.rows >= 200 and dialogue.warnings == []
    assert read_text_dataset(data / "demo_dialogue.csv").rows == 30
    corpus = read_text_dataset(data / "demo_corpus.txt")
    assert corpus.kind == "corpus" and corpus.rows >= 200 and corpus.warnings == []
    texts = " ".join(question + answer for question, answer in dialogue.pairs)
    assert "Как" in texts and "怎样" in texts and "👩\u200d👩\u200d👧\u200d👦" in texts
