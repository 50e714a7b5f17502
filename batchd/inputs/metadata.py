"""Samples CSV/TSV import: one row per sample, validated completely before anything is stored.

Every problem a user can fix is reported with the file name and the physical line where the
row starts, and all (up to MAX_PROBLEMS) problems come back in one message so a spreadsheet
can be fixed in one go rather than one error per import attempt.

Sample names end up in AWS job names, S3 keys and local paths, so they are held to a small
safe alphabet here, at import time, instead of failing later mid-workflow.
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import re
from dataclasses import dataclass

from batchd.errors import InvalidInput
from batchd.inputs.validation import MAX_PROBLEMS, Problems
from batchd.text import MAX_NAME, clip, shorten

__all__ = ["MAX_PROBLEMS", "Metadata", "Sample", "parse_metadata"]
SAMPLE_NAME_MAX = 128
SAMPLE_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
SAMPLE_NAME_RULES = ("letters, digits, '.', '_' and '-' (at most 128 characters; "
                     "sample names become part of AWS job names and S3 paths)")

# The csv module's default (128 KiB) rejects legitimately large fields such as long
# sequences or JSON blobs in a metadata column. Beyond 1 MiB a value is of no use to a job
# (AWS takes 30 KiB of parameters per job, a path is at most 4 KiB) and only costs memory in
# every sample's row, so it is refused with its line and column.
MAX_FIELD = 1 << 20
csv.field_size_limit(MAX_FIELD)
# Ten thousand columns are read in linear time (tests/unit/test_metadata.py); a table much
# wider is a transposed or binary file, not sample metadata, and each of its columns would be
# copied into every sample's row.
MAX_COLUMNS = 16_384


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    file_name: str
    line: int                   # physical line where the sample's row starts (1 = header)
    metadata: dict[str, str]    # every column of the row, including the sample and file columns


@dataclass(frozen=True, slots=True)
class Metadata:
    columns: list[str]
    samples: list[Sample]



DECODE_SLICE = 1 << 20     # bytes decoded per step: the GIL is let go in between

def decode_table(raw: bytes, filename: str) -> str:
    """UTF-8 bytes -> text, a slice at a time so the event loop's thread gets the GIL in
    between; an invalid byte is named by line and offset, as batchctl names it."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts = []
    for start in range(0, len(raw), DECODE_SLICE):
        try:
            parts.append(decoder.decode(raw[start:start + DECODE_SLICE]))
        except UnicodeDecodeError as exc:
            offset = start + exc.start
            line = raw.count(b"\n", 0, offset) + 1
            raise InvalidInput(f"{shorten(filename)}: line {line} is not valid UTF-8 (byte "
                               f"offset {offset}); save the file as UTF-8") from None
    try:
        parts.append(decoder.decode(b"", final=True))
    except UnicodeDecodeError:
        raise InvalidInput(f"{shorten(filename)}: the file ends in the middle of a UTF-8 "
                           "character; save the file as UTF-8") from None
    return "".join(parts)


def _decode(data: str | bytes, filename: str) -> str:
    if isinstance(data, str):
        return data[1:] if data.startswith("\ufeff") else data
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + bom
        line = data.count(b"\n", 0, offset) + 1
        byte = data[offset:offset + 1].hex()
        raise InvalidInput(
            f"{filename} line {line}: byte 0x{byte} at byte offset {offset} is not valid UTF-8; "
            "save the file as UTF-8 (in Excel: Save As > 'CSV UTF-8')",
            file=filename, line=line, byte_offset=offset) from None


def _sniff_delimiter(text: str, filename: str) -> str:
    if filename.lower().endswith((".tsv", ".tab")):
        return "\t"
    end = text.find("\n")
    header = text if end == -1 else text[:end]  # no copy of a huge file
    return "\t" if "\t" in header and "," not in header else ","


def _shorten(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _name_problem(value: str, column: str) -> str | None:
    if SAMPLE_NAME_RE.fullmatch(value) and value not in (".", ".."):
        return None
    if not value:
        return f"{column} is empty; every row needs a sample name"
    if len(value) > SAMPLE_NAME_MAX:
        return (f"{column} {_shorten(value)} is {len(value)} characters long; sample names "
                f"may be at most {SAMPLE_NAME_MAX} characters")
    bad = sorted({c for c in value if not re.fullmatch(r"[A-Za-z0-9._-]", c)})
    if not bad:  # "." or ".."
        return f"{column} {value!r} is not a usable name (it is a path component); rename it"
    shown = ", ".join(repr(c) for c in bad[:10])
    return (f"{column} {_shorten(value)} contains {shown}; sample names may only use "
            f"{SAMPLE_NAME_RULES}")


def _header(row: list[str], line: int, sample_col: str, file_col: str,
            delimiter: str, problems: Problems) -> list[str] | None:
    """Validate the header; None means the rows cannot be checked against it."""
    if not any(cell.strip() for cell in row):
        problems.note(f"line {line}: the header row is empty; the first line must name the "
                     f"columns, e.g. {sample_col}{delimiter}{file_col}".replace("\t", "<TAB>"))
        return None
    if len(row) > MAX_COLUMNS:
        problems.note(f"line {line}: the header has {len(row):,} columns; batchd accepts at "
                     f"most {MAX_COLUMNS:,}: remove the columns no workflow uses (is the table "
                     "transposed, one sample per column?)")
        return None
    columns = [cell.strip() for cell in row]
    ok = True
    first_at: dict[str, int] = {}
    for position, name in enumerate(columns, start=1):
        if not name:
            hint = ("remove the trailing delimiter" if position == len(columns)
                    else "give the column a name")
            problems.note(f"line {line}: column {position} of the header has no name; {hint}")
            ok = False
        elif len(name) > MAX_NAME:
            problems.note(f"line {line}: column {position} of the header, {clip(name, 60)}, is "
                          f"{len(name):,} characters long; column names are at most "
                          f"{MAX_NAME} (they are the {{name}} fields of definitions)")
            ok = False
        elif name in first_at:
            problems.note(f"line {line}: column name {clip(name)} appears twice (columns "
                         f"{first_at[name]} and {position}); column names must be unique")
            ok = False
        else:
            first_at[name] = position
    named = [c for c in columns if c]
    found = ", ".join(clip(c, 60) for c in named[:20]) or "(none)"
    if len(named) > 20:
        found += f" and {len(named) - 20:,} more"
    for wanted, flag in ((sample_col, "--sample-col"), (file_col, "--file-col")):
        if wanted not in first_at:
            hint = ""
            if len(columns) == 1 and any(sep in columns[0] for sep in ";|\t,"):
                hint = (" (the whole header was read as one column: is the file separated by "
                        "something other than "
                        f"{'tabs' if delimiter == chr(9) else 'commas'}?)")
            problems.note(f"line {line}: there is no {clip(wanted)} column{hint}; the columns "
                         f"found are {found}; rename a column to {clip(wanted)} or choose the "
                         f"column with {flag} NAME")
            ok = False
    return columns if ok else None


class _Table:
    """Walks the csv records keeping track of the physical line where each record starts: the
    line after the previous record ended, which stays right when quoted fields span lines."""

    def __init__(self, reader, problems: Problems, sample_col: str, file_col: str) -> None:
        self.reader = reader
        self.problems = problems
        self.sample_col = sample_col
        self.file_col = file_col
        self.end = 0  # physical line where the last record ended

    def _unreadable(self, exc: csv.Error) -> None:
        if "field larger than field limit" in str(exc):
            self.problems.note(f"line {self.end + 1}: a value is longer than {MAX_FIELD:,} "
                              "characters; no job can use a value that long: put the data "
                              "in a file and give the file's name in the table (or an "
                              "unclosed quote runs on: check the quoting)")
        else:
            self.problems.note(f"line {self.end + 1}: cannot read the row ({exc}); check the "
                              "quoting: a value containing quotes must be quoted, with its "
                              "quotes doubled (\"\")")
        self.end = self.reader.line_num

    def records(self):
        while True:
            try:
                row = next(self.reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self._unreadable(exc)
                continue
            line, self.end = self.end + 1, self.reader.line_num
            yield line, row

    def samples(self, columns: list[str]) -> list[Sample]:
        # The hot loop of a million-row import: the common, valid row takes the short path
        # and anything unusual is diagnosed in _check.
        reader, problems = self.reader, self.problems
        width = len(columns)
        sample_at = columns.index(self.sample_col)
        file_at = columns.index(self.file_col)
        valid_name = SAMPLE_NAME_RE.fullmatch
        first_line: dict[str, int] = {}
        samples: list[Sample] = []
        append = samples.append
        while True:
            try:
                for row in reader:
                    line, self.end = self.end + 1, reader.line_num
                    if len(row) == width:
                        name = row[sample_at]
                        if (valid_name(name) and row[file_at] and name not in first_line
                                and name != "." and name != ".."):
                            first_line[name] = line
                            if not problems.count:
                                append(Sample(name, row[file_at], line,
                                              dict(zip(columns, row, strict=True))))
                            continue
                    self._check(line, row, width, sample_at, file_at, first_line)
                return samples
            except csv.Error as exc:
                self._unreadable(exc)

    def _check(self, line: int, row: list[str], width: int, sample_at: int, file_at: int,
               first_line: dict[str, int]) -> None:
        # A blank or all-empty line (spreadsheets export trailing ",,,," rows) is not a
        # sample; anything else with the wrong width is a mistake.
        if not any(row):
            return
        add = self.problems.note
        if len(row) != width:
            add(f"line {line}: expected {width} fields (like the header), got {len(row)}; "
                "quote values that contain the delimiter or add the missing fields")
            return
        name = row[sample_at]
        problem = _name_problem(name, self.sample_col)
        if problem:
            add(f"line {line}: {problem}")
        elif name in first_line:
            add(f"line {line}: sample name {clip(name)} is also on line {first_line[name]}; "
                "sample names must be unique")
        else:
            first_line[name] = line
        if not row[file_at]:
            add(f"line {line}: {self.file_col} is empty; every row needs a file name")


def parse_metadata(data: str | bytes, *, filename: str, sample_col: str = "sample_name",
                   file_col: str = "file_name", delimiter: str | None = None) -> Metadata:
    """Parse and fully validate a samples table; raises InvalidInput listing every problem."""
    shown = shorten(filename)  # the name as quoted back in messages
    text = _decode(data, shown)
    if not text.strip():
        raise InvalidInput(f"{shown} is empty; it needs a header line naming the columns "
                           f"(including {sample_col} and {file_col}) and one row per sample",
                           file=shown)
    nul = text.find("\0")
    if nul != -1:
        # csv reads NUL as text, and a NUL that reaches a job's arguments fails it at start.
        line = text.count("\n", 0, nul) + 1
        raise InvalidInput(f"{shown} line {line}: contains a NUL byte (character "
                           f"{nul - text.rfind(chr(10), 0, nul)} of the line); this is not a "
                           "text table (UTF-16 or a spreadsheet's own format?): export it as "
                           "'CSV UTF-8'", file=shown, line=line)
    delimiter = delimiter or _sniff_delimiter(text, filename)
    # Problems are kept as "line N: ..." (what the API returns as details) and the file name
    # is put in front of each only in the message.
    problems = Problems(shown, lead=f"{shown} ", advice="; fix them all and import again")
    # newline="" hands csv the raw line endings, so quoted fields may contain newlines and
    # CRLF files parse the same as LF ones. strict=True turns an unclosed quote into an error
    # instead of silently swallowing the rest of the file into one field.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    table = _Table(reader, problems, sample_col, file_col)
    columns = None
    for line, row in table.records():
        columns = _header(row, line, sample_col, file_col, delimiter, problems)
        break
    if columns is None or problems.count:
        problems.raise_if_any()
        raise InvalidInput(f"{shown} has no header line", file=shown)
    # Pausing the cyclic GC while a million small dicts are created (none of them can form
    # cycles) takes about a third off the import time.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        samples = table.samples(columns)
    finally:
        if was_enabled:
            gc.enable()
    problems.raise_if_any()
    if not samples:
        raise InvalidInput(f"{shown} has a header but no samples; add one row per sample "
                           "below the header", file=shown)
    return Metadata(columns=columns, samples=samples)
