"""Text datasets: dialogue pairs and autoencoder corpora, read strictly and explained.

Formats (the extension decides, the first line decides when the extension does not)::

    dialogue  .jsonl  {"question": "...", "answer": "..."}          one pair per line
              .jsonl  {"turns": ["hi", "hello", "how are you?"]}   consecutive turns → pairs
              .csv    header `question,answer` (quoted fields may hold commas and newlines)
    corpus    .txt    one text per line
              .jsonl  {"text": "..."}

The file is read once, line by line, as strict UTF-8: its SHA-256, the size and row limits,
the line length limit, binary content and every encoding or format problem are found in
that pass. Up to ``MAX_ISSUES`` problems are collected, each with its line number, before
``DatasetError`` is raised, so a user fixes a file in one go. Blank and duplicate rows are
skipped and reported as warnings. Text is never altered: any script, emoji and ZWJ
sequence comes back byte for byte (only a leading BOM and the line ending are dropped).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

MAX_ISSUES = 20  # problems collected before giving up on a file
MAX_WARNINGS = 200  # skipped rows listed one by one; the rest are summed up
VECTOR_SUFFIXES = (".safetensors", ".npy", ".npz")
_FORMAT_BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".txt": "txt"}


@dataclass(frozen=True)
class DatasetIssue:
    line: Optional[int]  # 1-based line in the file; None for the whole file
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


class DatasetError(ValueError):
    """A data file that cannot be used, with every problem found (up to ``MAX_ISSUES``)."""

    def __init__(self, issues: list[DatasetIssue], source: Optional[str] = None):
        self.issues = list(issues)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.issues) == 1:
            message = f"{head}{self.issues[0]}"
        else:
            listed = "\n".join(f"  {issue}" for issue in self.issues)
            message = f"{head}{len(self.issues)} problems:\n{listed}"
        super().__init__(message)

    def as_list(self) -> list[dict[str, Any]]:
        return [{"line": issue.line, "message": issue.message} for issue in self.issues]


@dataclass(frozen=True)
class TextDataset:
    kind: str  # "dialogue" | "corpus"
    pairs: list[tuple[str, str]]  # dialogue: (question, answer); corpus: (text, text)
    sha256: str  # hex digest of the file's bytes: identifies the dataset everywhere
    warnings: list[DatasetIssue] = field(default_factory=list)  # skipped blank/duplicate rows

    @property
    def rows(self) -> int:
        return len(self.pairs)

    def preview(self, n: int = 5) -> list[dict[str, str]]:
        if self.kind == "corpus":
            return [{"text": question} for question, _ in self.pairs[:n]]
        return [{"question": question, "answer": answer} for question, answer in self.pairs[:n]]


def infer_kind(path: str | Path) -> str:
    """`vectors`, `dialogue` or `corpus`, from the extension and, for JSONL, the first line."""
    path = Path(path)
    if path.suffix.lower() in VECTOR_SUFFIXES:
        return "vectors"
    fmt = _infer_format(path)
    if fmt == "csv":
        return "dialogue"
    if fmt == "txt":
        return "corpus"
    record = _first_json_record(path)
    if isinstance(record, dict) and "text" in record and "question" not in record and "turns" not in record:
        return "corpus"
    return "dialogue"


def read_text_dataset(
    path: str | Path,
    kind: Optional[str] = None,
    *,
    max_rows: int = 1_000_000,
    max_bytes: int = 512 * 1024 * 1024,
    max_line_bytes: int = 1_000_000,
) -> TextDataset:
    """Read a dialogue or corpus file into pairs, or raise DatasetError listing what is wrong."""
    path = Path(path)
    source = path.name
    if not path.is_file():
        raise DatasetError([DatasetIssue(None, "file not found" if not path.exists() else "not a file")], source)
    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetError([DatasetIssue(None, f"the file is {size:,} bytes, more than max_bytes = {max_bytes:,}")], source)
    if size == 0:
        raise DatasetError([DatasetIssue(None, "the file is empty")], source)
    kind = kind or infer_kind(path)
    fmt = _infer_format(path)
    _check_kind(kind, fmt, source)

    reader = _Reader(path, source, max_line_bytes)
    collector = _Collector(kind, max_rows)
    with path.open("rb") as handle:
        lines = reader.lines(handle)
        if fmt == "csv":
            _parse_csv(lines, collector, reader)
        else:
            _parse_lines(lines, fmt, kind, collector, reader)
    collector.finish(reader, source)
    return TextDataset(kind=kind, pairs=collector.pairs, sha256=reader.sha256.hexdigest(), warnings=collector.warnings)


# --- reading bytes into checked lines ---------------------------------------------------------


class _Reader:
    """Streams a file as (line number, text), hashing it and recording encoding problems."""

    def __init__(self, path: Path, source: str, max_line_bytes: int):
        self.path = path
        self.source = source
        self.max_line_bytes = max_line_bytes
        self.sha256 = hashlib.sha256()
        self.issues: list[DatasetIssue] = []
        self.line_count = 0

    def add(self, line: Optional[int], message: str) -> None:
        self.issues.append(DatasetIssue(line, message))
        if len(self.issues) >= MAX_ISSUES:
            self.issues.append(DatasetIssue(None, f"stopped after {MAX_ISSUES} problems"))
            raise DatasetError(self.issues, self.source)

    def lines(self, handle: Any) -> Iterator[tuple[int, str]]:
        offset = 0
        number = 0
        while True:
            # A bounded read: a file without newlines never lands in memory as one string.
            raw = handle.readline(self.max_line_bytes + 2)
            if not raw:
                return
            number += 1
            self.line_count = number
            self.sha256.update(raw)
            body = raw.rstrip(b"\r\n")
            if len(body) > self.max_line_bytes:
                raise DatasetError(
                    self.issues
                    + [DatasetIssue(number, f"line is longer than max_line_bytes = {self.max_line_bytes:,} bytes")],
                    self.source,
                )
            if b"\x00" in raw:
                at = offset + raw.index(b"\x00")
                raise DatasetError(
                    [DatasetIssue(number, f"NUL byte at byte offset {at}: this looks like a binary file, not text")],
                    self.source,
                )
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
                offset += 3
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                bad = raw[error.start : error.start + 1].hex()
                self.add(number, f"invalid UTF-8 byte 0x{bad} at byte offset {offset + error.start} (column {error.start + 1})")
                text = None
            offset += len(raw)
            if text is not None:
                yield number, text


# --- turning lines into pairs ----------------------------------------------------------------


class _Collector:
    """Keeps pairs up to max_rows, skips blank and duplicate rows with a warning each."""

    def __init__(self, kind: str, max_rows: int):
        self.kind = kind
        self.max_rows = max_rows
        self.pairs: list[tuple[str, str]] = []
        self.warnings: list[DatasetIssue] = []
        self.records = 0  # non-blank records seen, kept or not
        self.skipped = 0
        self._seen: dict[tuple[str, str], int] = {}

    @property
    def over_limit(self) -> bool:
        return self.records > self.max_rows

    def count_record(self) -> bool:
        """Count a record; False once over max_rows (then it is only counted, not parsed)."""
        self.records += 1
        return not self.over_limit

    def add(self, line: int, question: str, answer: str) -> None:
        if not question.strip() or not answer.strip():
            what = "text" if self.kind == "corpus" else ("question" if not question.strip() else "answer")
            return self.warn(line, f"empty {what}, row skipped")
        pair = (question, answer)
        first = self._seen.get(pair)
        if first is not None:
            return self.warn(line, f"duplicate of line {first}, row skipped")
        self._seen[pair] = line
        self.pairs.append(pair)

    def warn(self, line: int, message: str) -> None:
        self.skipped += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(DatasetIssue(line, message))

    def finish(self, reader: _Reader, source: str) -> None:
        if self.over_limit:
            reader.issues.append(
                DatasetIssue(None, f"the file has {self.records:,} rows, more than max_rows = {self.max_rows:,}")
            )
        if reader.issues:
            raise DatasetError(reader.issues, source)
        if self.skipped > len(self.warnings):
            self.warnings.append(DatasetIssue(None, f"{self.skipped - len(self.warnings):,} more rows skipped"))
        self._seen.clear()
        if not self.pairs:
            why = "every row is blank or a duplicate" if self.skipped else "the file holds no data rows"
            raise DatasetError([DatasetIssue(None, f"no usable rows: {why}")], source)


def _parse_lines(lines: Iterator[tuple[int, str]], fmt: str, kind: str, out: _Collector, reader: _Reader) -> None:
    for number, text in lines:
        if not text.strip():
            out.warn(number, "blank line skipped")
            continue
        if not out.count_record():
            continue
        if fmt == "txt":
            line = text.rstrip("\r\n")
            out.add(number, line, line)
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            if number == 1 and text.strip() == "[":
                return reader.add(1, "this is a JSON array; write one JSON object per line (JSONL) instead")
            reader.add(number, f"invalid JSON: {error.msg} (column {error.colno})")
            continue
        if not isinstance(record, dict):
            reader.add(number, f"expected a JSON object, got {_json_type(record)}")
        elif kind == "corpus":
            text_value = _string_field(record, "text", number, reader)
            if text_value is not None:
                out.add(number, text_value, text_value)
        elif "turns" in record:
            _add_turns(record["turns"], number, out, reader)
        else:
            question = _string_field(record, "question", number, reader)
            answer = _string_field(record, "answer", number, reader)
            if question is not None and answer is not None:
                out.add(number, question, answer)


def _add_turns(turns: Any, number: int, out: _Collector, reader: _Reader) -> None:
    if not isinstance(turns, list) or len(turns) < 2:
        return reader.add(number, "`turns` must be a list of at least two turns")
    texts: list[str] = []
    for index, turn in enumerate(turns):
        # A turn is a string or a chat message {"role": ..., "content": ...} / {"text": ...}.
        if isinstance(turn, dict):
            turn = turn.get("content", turn.get("text"))
        if not isinstance(turn, str):
            return reader.add(number, f"key `turns[{index}]` must be a string (or an object with `content`), got {_json_type(turn)}")
        texts.append(turn)
    for question, answer in zip(texts, texts[1:]):
        out.add(number, question, answer)


def _parse_csv(lines: Iterator[tuple[int, str]], out: _Collector, reader: _Reader) -> None:
    numbers: list[int] = []

    def texts() -> Iterator[str]:
        for number, text in lines:
            numbers.append(number)
            yield text

    rows = csv.reader(texts(), strict=True)
    columns: Optional[tuple[int, int]] = None
    width = 0
    while True:
        start = len(numbers) + 1  # a record starts on the line after the last one consumed
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as error:
            reader.add(numbers[-1] if numbers else start, f"invalid CSV: {error}")
            break  # the reader cannot resynchronise after a broken quote
        line = numbers[start - 1] if start - 1 < len(numbers) else start
        if columns is None:
            columns, width = _csv_header(row, line, reader)
            if columns is None:
                return
            continue
        if not any(cell.strip() for cell in row):
            out.warn(line, "blank row skipped")
            continue
        if not out.count_record():
            continue
        if len(row) != width:
            reader.add(line, f"expected {width} columns like the header, got {len(row)}")
            continue
        out.add(line, row[columns[0]], row[columns[1]])
    if columns is None and not reader.issues:
        reader.add(None, "the file is empty")


def _csv_header(row: list[str], line: int, reader: _Reader) -> tuple[Optional[tuple[int, int]], int]:
    names = [cell.strip().lower() for cell in row]
    missing = [name for name in ("question", "answer") if name not in names]
    if missing:
        shown = ",".join(row)[:80]
        reader.add(line, f"the CSV header must name the columns `question,answer`; missing {', '.join(f'`{m}`' for m in missing)} (got `{shown}`)")
        return None, 0
    return (names.index("question"), names.index("answer")), len(row)


def _string_field(record: dict, key: str, number: int, reader: _Reader) -> Optional[str]:
    if key not in record:
        known = ", ".join(f"`{name}`" for name in list(record)[:5]) or "none"
        reader.add(number, f"missing key `{key}` (keys found: {known})")
        return None
    value = record[key]
    if not isinstance(value, str):
        reader.add(number, f"key `{key}` must be a string, got {_json_type(value)}")
        return None
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# --- kinds and formats ------------------------------------------------------------------------


def _infer_format(path: Path) -> str:
    """`jsonl`, `csv` or `txt`: by extension, otherwise by the first non-blank line."""
    fmt = _FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt:
        return fmt
    first = _first_line(path)
    if first.lstrip().startswith("{"):
        return "jsonl"
    if [cell.strip().lower() for cell in first.split(",")][:2] in (["question", "answer"], ["answer", "question"]):
        return "csv"
    return "txt"


def _check_kind(kind: str, fmt: str, source: str) -> None:
    if kind == "vectors":
        raise DatasetError([DatasetIssue(None, "this is a vector file, not a text dataset")], source)
    if kind not in ("dialogue", "corpus"):
        raise DatasetError([DatasetIssue(None, f"unknown kind `{kind}`: use `dialogue` or `corpus`")], source)
    if kind == "dialogue" and fmt == "txt":
        raise DatasetError(
            [DatasetIssue(None, "a plain-text file is a corpus (one text per line); dialogue data need .jsonl or .csv")],
            source,
        )
    if kind == "corpus" and fmt == "csv":
        raise DatasetError([DatasetIssue(None, "a CSV file holds dialogue pairs; a corpus is .txt or .jsonl with `text`")], source)


def _first_line(path: Path, limit: int = 65_536) -> str:
    try:
        with path.open("rb") as handle:
            for _ in range(1000):
                raw = handle.readline(limit)
                if not raw:
                    break
                if raw.strip():
                    return raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    except OSError:
        pass
    return ""


def _first_json_record(path: Path) -> Any:
    try:
        return json.loads(_first_line(path, limit=1_000_000))
    except ValueError:
        return None
