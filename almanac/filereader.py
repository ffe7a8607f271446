"""Bounded reading of a user's bar file: a CSV or Parquet file (a path, or an upload's bytes)
into a pandas frame, refusing before it is parsed anything that would cost too much.

A user's file is untrusted input: a few megabytes can claim millions of columns, hold one
endless line, or (Parquet) decompress into gigabytes. So every cost is bounded first, each
by a field of :class:`almanac.settings.Limits`, and each refusal is one line naming the
limit's environment variable (``Limits.var(name)``):

- ``import_bytes``: the file's size, from its length, before anything is read;
- ``columns``: a CSV's header line or a Parquet file's footer, before any row is read;
- ``line_bytes``: every CSV line (pandas would otherwise buffer one huge line whole);
  the header is read with at most ``line_bytes`` + 1 bytes;
- ``parquet_footer_bytes``: the size a Parquet footer claims, before it is parsed;
- ``rows``: a Parquet file's row count from its footer, a CSV's after it is parsed;
- ``expansion``: a Parquet file's estimated in-memory size against its size on disk
  (files under :data:`EXPANSION_FLOOR` in memory are never refused as bombs).

A CSV is scanned once in chunks of :data:`SCAN_CHUNK` bytes for over-long lines and
C0 control characters (binary data or the wrong encoding; tab, CR and LF only as
separators), about 0.15 s per 100 MB, before pandas reads it. A first data row with more
fields than the header is refused (pandas would shift every column). Only then is the
file parsed (pandas for CSV, pyarrow with page checksums for Parquet), :data:`CHUNK_ROWS`
rows at a time (:meth:`_Reader.chunks`), so the importer validates a chunk and keeps only
its numbers; a corrupt or unreadable file is refused with one line, before any refusal of
the values (the importer raises those once the whole file is read).

What the columns mean and which values are valid is :mod:`almanac.importer`'s business;
this module must not import it (the importer imports this one).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from almanac.errors import DataError
from almanac.settings import Limits, get_limits

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
COMPRESSED_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zip": "zip"}
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
#: what a damaged gzip or zip stream raises while it is read
_COMPRESSION_ERRORS = (gzip.BadGzipFile, zipfile.BadZipFile, zlib.error, EOFError)
PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
SCAN_CHUNK = 4 << 20  # bytes per read of the CSV scan
CHUNK_ROWS = 1 << 20  # rows per chunk the importer validates at a time
EXPANSION_FLOOR = 64 * 2**20  # a Parquet file that reads into less than this is never refused as a bomb
#: C0 control characters other than tab, LF and CR
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 13))
_CONTROL_RE = re.compile(b"[" + re.escape(_CONTROL) + b"]")
_CONTROL_TEXT = "[" + re.escape(_CONTROL.decode()) + "]"


class _Failures:
    """The refusals found so far, each under a key that orders them as a whole-file check
    would have met them: (check, column or rule). Chunks come in order, so the first refusal
    recorded under a key is the first failing row of that check in the file."""

    def __init__(self):
        self.found: dict[tuple[int, int], DataError] = {}

    def add(self, key: tuple[int, int], error: DataError) -> None:
        self.found.setdefault(key, error)

    def raise_first(self, before: int = 99) -> None:
        """Raise the first refusal of a check numbered below ``before``, if any."""
        keys = [k for k in self.found if k[0] < before]
        if keys:
            raise self.found[min(keys)]


@dataclass(frozen=True)
class Layout:
    """What a vendor's file layout leaves open, settled by the user (the import's flags);
    None = detect, and refuse when the file is ambiguous.

    ``delimiter``: ``,``, ``;`` or ``\t`` (``--delimiter``); ``decimal``: ``.`` or ``,``
    (``--decimal``); ``epoch``: ``s`` or ``ms`` for numeric times (``--epoch``);
    ``date_order``: ``dmy`` or ``mdy`` for dates such as 03/04/2024 (``--date-order``)."""

    delimiter: str | None = None
    decimal: str | None = None
    epoch: str | None = None
    date_order: str | None = None


def _size(n: int) -> str:
    """``n`` bytes for a message: ``190 MB``, ``64 KB``, ``4 GB``."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.{0 if n % scale == 0 or n >= 10 * scale else 1}f} {unit}"
    return f"{n} bytes"


class _Reader:
    """Reads a user's file (a path, or an upload's bytes) into a frame of its columns as written.

    Every cost is bounded before the file is parsed: size, columns, CSV line length,
    Parquet footer size, rows and expansion (see the module docstring). :meth:`fail` builds
    the one-line refusal that names the file (and a row and column): the importer uses it
    for its own refusals too. After :meth:`read`, ``kind`` is ``"csv"`` or ``"parquet"``.
    """

    def __init__(self, source: Path | bytes, display: str, limits: Limits | None = None,
                 layout: Layout | None = None):
        self.layout = layout or Layout()
        self.data = source if isinstance(source, (bytes, bytearray, memoryview)) else None
        self.path = None if self.data is not None else Path(source)
        self.name = display
        self.limits = limits or get_limits()
        self.kind = "csv"
        self.eol = 10  # the byte that ends a CSV line: LF, or CR for a file with old Mac line endings
        self.body_at = 0
        self.sep = self.layout.delimiter or ","  # the CSV field separator (detected from the header)
        self.compression: str | None = None  # "gzip" or "zip": the CSV is read through the decompressor
        self.member = ""  # the zip member read
        self.inner = display  # the name of the file inside the compression (or the file's own)

    def fail(self, problem: str, row: int | None = None, column: str | None = None) -> DataError:
        where = "".join([f", row {row}" if row is not None else "",
                         f", column '{column}'" if column is not None else ""])
        return DataError(f"{self.name}{where}: {problem}")

    @contextmanager
    def _open_raw(self):
        if self.data is not None:
            yield io.BytesIO(self.data)
        else:
            with open(self.path, "rb") as fh:
                yield fh

    @contextmanager
    def _open(self):
        """The file's (decompressed) bytes as a stream: a gzip or zip member is decompressed
        as it is read, never held whole."""
        with self._open_raw() as raw:
            if self.compression == "gzip":
                with gzip.GzipFile(fileobj=raw) as fh:
                    yield fh
            elif self.compression == "zip":
                with zipfile.ZipFile(raw) as zf, zf.open(self.member) as fh:
                    yield fh
            else:
                yield raw

    def _unpack(self, magic: bytes, suffix: str) -> str:
        """Detect gzip or zip (by magic bytes or suffix): the suffix of the file inside. A zip
        must hold exactly one file; a compressed Parquet file is refused (Parquet is compressed)."""
        kind = ("gzip" if magic[:2] == b"\x1f\x8b" else "zip" if magic == b"PK\x03\x04"
                else COMPRESSED_SUFFIXES.get(suffix))
        if kind is None:
            return suffix
        self.compression = kind
        if kind == "gzip":
            stem = Path(self.name).stem if suffix in COMPRESSED_SUFFIXES else self.name
        else:
            try:
                with self._open_raw() as raw, zipfile.ZipFile(raw) as zf:
                    files = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise self.fail(f"not a readable zip file ({str(exc)[:120]}); zip the CSV file again") from None
            if len(files) != 1:
                raise self.fail(f"the zip file holds {len(files)} files ({', '.join(i.filename for i in files[:4])}"
                                f"{', ...' if len(files) > 4 else ''}): zip exactly one CSV file")
            if files[0].flag_bits & 0x1:
                raise self.fail("the zip file is encrypted: zip the CSV file without a password")
            self.member = stem = files[0].filename
        self.inner = Path(stem).name
        inner = Path(stem).suffix.lower()
        if inner in PARQUET_SUFFIXES:
            raise self.fail(f"a {kind}-compressed Parquet file: import the .parquet file itself (Parquet is "
                            "compressed already)")
        return inner if inner in CSV_SUFFIXES else ".csv"

    def _bad_compression(self, exc: Exception) -> DataError:
        return self.fail(f"not a readable {self.compression} file ({str(exc)[:120] or type(exc).__name__}); "
                         "compress the CSV file again")

    def _nbytes(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size

    def read(self) -> pd.DataFrame:
        """The whole file as one frame (:meth:`chunks` concatenated)."""
        parts = list(self.chunks())
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    def chunks(self, rows: int | None = None):
        """The file's rows as frames of at most ``rows`` (:data:`CHUNK_ROWS`) rows, in order,
        with the same columns and a RangeIndex counting from the file's first row.

        A file that cannot be read at all, or whose rows are over the limit, is refused
        only once every chunk was parsed, as if the file had been read whole: a parse
        error anywhere comes first, then the row limit, then an empty file."""
        rows = rows or CHUNK_ROWS
        if self.data is None and not self.path.is_file():
            raise self.fail("file not found: check the path")
        size = self._nbytes()
        if size == 0:
            raise self.fail("the file is empty: export the bars again")
        limit = self.limits.import_bytes
        if size > limit:
            raise self.fail(f"the file is {_size(size)}, over the {_size(limit)} import limit "
                            f"({Limits.var('import_bytes')}): split it by date range, or raise the limit")
        suffix = Path(self.name if self.data is not None else self.path).suffix.lower()
        with self._open_raw() as fh:
            magic = fh.read(4)
        suffix = self._unpack(magic, suffix)
        if self.compression:
            return self._read_csv(rows)
        if suffix in PARQUET_SUFFIXES or (suffix not in CSV_SUFFIXES and magic == b"PAR1"):
            self.kind = "parquet"
            return self._read_parquet(size, rows)
        if suffix in CSV_SUFFIXES:
            return self._read_csv(rows)
        raise self.fail(f"unsupported file type {suffix or '(none)'!r}: import a .csv, .tsv or .parquet file "
                        "(or one gzip- or zip-compressed CSV)")

    # -- Parquet -------------------------------------------------------------------
    def _bad_parquet(self, detail: str) -> DataError:
        return self.fail(f"not a readable Parquet file (truncated, corrupt or another format: {detail[:160]}); "
                         "re-export it as Parquet or CSV")

    def _read_parquet(self, size: int, rows: int):
        with self._open() as fh:
            fh.seek(max(size - 8, 0))
            tail = fh.read(8)
        if size < 12 or tail[4:] != b"PAR1":
            raise self._bad_parquet("no Parquet footer at the end")
        footer, limit = int.from_bytes(tail[:4], "little"), self.limits.parquet_footer_bytes
        if footer > size - 12:
            raise self._bad_parquet(f"its footer claims {footer} bytes of a {size}-byte file")
        if footer > limit:
            raise self.fail(f"its metadata is {_size(footer)}, over the {_size(limit)} limit "
                            f"({Limits.var('parquet_footer_bytes')}): keep only the time and price columns, "
                            "write fewer row groups, or raise the limit")
        try:
            with self._open() as fh:
                pf = pq.ParquetFile(fh, page_checksum_verification=True)
                ncols, limit = pf.metadata.num_columns, self.limits.columns
                if ncols > limit:
                    raise self.fail(f"the file has {ncols:,} columns, over the limit of {limit} "
                                    f"({Limits.var('columns')}): keep only the time and price columns, "
                                    "or raise the limit")
                self._check_rows(pf.metadata.num_rows)
                self._check_expansion(pf.metadata.num_rows * ncols * 8, size)
                schema = pf.schema_arrow
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - corrupt files raise Arrow, OS, JSON, Unicode, Key errors...
            raise self._bad_parquet(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        return self._parquet_chunks(schema, rows)

    def _parquet_chunks(self, schema, rows: int):
        done = 0
        try:
            with self._open() as fh:
                pf = pq.ParquetFile(fh, page_checksum_verification=True)
                for batch in pf.iter_batches(batch_size=rows):
                    if batch.num_rows:
                        frame = pa.Table.from_batches([batch], schema=schema).to_pandas()
                        frame.index = pd.RangeIndex(done, done + len(frame))
                        done += len(frame)
                        yield frame
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - corrupt files raise Arrow, OS, JSON, Unicode, Key errors...
            raise self._bad_parquet(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        if done == 0:
            raise self.fail("the file has no rows: export the bars again")

    def _check_rows(self, rows: int) -> None:
        limit = self.limits.rows
        if rows > limit:
            raise self.fail(f"the file has {rows:,} rows, over the limit of {limit:,} ({Limits.var('rows')}): "
                            "split it by date range, or raise the limit")

    def _check_expansion(self, estimate: int, size: int) -> None:
        """Refuse a Parquet file that would grow in memory far more than bar data compresses
        (a few MB of constant values can claim tens of millions of rows)."""
        limit = self.limits.expansion
        if estimate > EXPANSION_FLOOR and estimate > limit * size:
            raise self.fail(f"the file's {_size(size)} would take {_size(estimate)} in memory, over {limit} times "
                            f"its size ({Limits.var('expansion')}); bars do not compress that well: re-export "
                            "them, or raise the limit")

    # -- CSV -----------------------------------------------------------------------
    def _fields(self, line: bytes) -> list[str]:
        """The fields of one CSV line (at most ``line_bytes`` long, so this is cheap)."""
        text = line.rstrip(b"\r").decode("utf-8", errors="replace")
        try:
            return next(csv.reader([text], skipinitialspace=True, delimiter=self.sep), [])
        except csv.Error:
            return text.split(self.sep)

    def _detect_sep(self, line: bytes, strict: bool = True) -> None:
        """The field separator from the header line: the one of comma, semicolon and tab it
        holds (comma for a one-column file); a header holding several is refused unless
        ``--delimiter`` names one."""
        if self.layout.delimiter:
            if self.layout.delimiter not in DELIMITERS:
                raise self.fail(f"--delimiter {self.layout.delimiter!r} is not a separator: use ',', ';' or tab")
            self.sep = self.layout.delimiter
            return
        text = line.decode("utf-8", errors="replace")
        found = [d for d in DELIMITERS if d in text]
        if len(found) > 1 and strict:
            names = " and ".join(f"{DELIMITERS[d]}s" for d in found)
            raise self.fail(f"the header holds {names}, so the separator is ambiguous: pass --delimiter "
                            f"({', '.join(repr(d) if d != chr(9) else 'tab' for d in found)})")
        self.sep = found[0] if len(found) == 1 else ","

    def _check_header(self) -> list[str]:
        """Read at most ``line_bytes`` + 1 bytes: refuse too many columns or a too-long first line."""
        lim = self.limits
        with self._open() as fh:
            head = fh.read(lim.line_bytes + 1)
        end, cr = head.find(b"\n"), head.find(b"\r")
        if cr >= 0 and (end < 0 or cr < end - 1):  # lines end with a bare CR
            self.eol, end = 13, cr
        complete = end >= 0 or len(head) <= lim.line_bytes
        line = head[:end] if end >= 0 else head[:lim.line_bytes]
        self._detect_sep(line.rstrip(b"\r"), strict=complete)  # an endless header is refused as such below
        header = self._fields(line)
        if len(header) > lim.columns:
            count = f"{len(header):,}" if complete else f"more than {len(header) - 1:,}"
            raise self.fail(f"the header has {count} columns, over the limit of {lim.columns} "
                            f"({Limits.var('columns')}): keep only the time and price columns, or raise the limit")
        if not complete:
            raise self._long_line(1)
        self.body_at = end + 1  # where the first data row starts
        return header

    def _check_first_row(self, start: int, columns: int) -> None:
        """Refuse a first data row with more fields than the header names (pandas would
        silently take the extra leading fields as an index and shift every column)."""
        with self._open() as fh:
            fh.seek(start)
            window = fh.read(self.limits.line_bytes + 1)
        lines = window.split(bytes([self.eol]))
        if len(window) > self.limits.line_bytes:  # the last piece may be cut short
            lines.pop()
        for line in lines:
            if line.strip(b"\r\t "):
                fields = len(self._fields(line))
                if fields > columns:
                    raise self.fail(f"has {fields} fields but the header names {columns} columns: remove the extra "
                                    "separators (a trailing comma?) or name every column", row=1)
                return

    def _long_line(self, line: int) -> DataError:
        limit = self.limits.line_bytes
        what = "the header line" if line == 1 else f"line {line}"
        return self.fail(f"{what} is longer than {_size(limit)} ({Limits.var('line_bytes')}): "
                         "is the file really CSV with one bar per line? Fix it, or raise the limit",
                         row=line - 1 if line > 1 else None)

    def _scan_csv(self, header: list[str]) -> None:
        """One chunked pass over the bytes: refuse over-long lines and control characters.

        A line longer than L bytes holds a whole aligned block of (L + 2) // 2 bytes with
        no line end, so each chunk is cut into such blocks and only blocks without a line
        end (none, in an ordinary file) are measured exactly. Control characters are found
        with ``bytes.translate``. About 0.15 s per 100 MB, whatever the lines look like;
        line numbers are counted only for the message.
        """
        limit, eol = self.limits.line_bytes, bytes([self.eol])
        block = max(1, (limit + 2) // 2)
        last_nl, off = -1, 0  # absolute offset of the last line end seen; of this chunk
        cap = self._unpacked_cap()
        with self._open() as fh:
            while chunk := fh.read(SCAN_CHUNK):
                if off + len(chunk) > cap:
                    raise self._too_unpacked(cap)
                first, last = chunk.find(eol), chunk.rfind(eol)
                if off + (first if first >= 0 else len(chunk)) - last_nl - 1 > limit:
                    raise self._long_line(self._line_of(last_nl + 1))  # the line that runs into this chunk
                if first >= 0:
                    self._scan_lines(chunk, first, last, off, block)
                if len(chunk.translate(None, _CONTROL)) != len(chunk):
                    pos = _CONTROL_RE.search(chunk).start()
                    k = chunk.rfind(eol, 0, pos)
                    start = off + k if k >= 0 else last_nl
                    if off + pos - start - 1 > limit:
                        raise self._long_line(self._line_of(start + 1))
                    self._control_at(start + 1, off + pos, header)
                if last >= 0:
                    last_nl = off + last
                off += len(chunk)
        if off - last_nl - 1 > limit:
            raise self._long_line(self._line_of(last_nl + 1))

    def _scan_lines(self, chunk: bytes, first: int, last: int, off: int, block: int) -> None:
        """Refuse a line longer than the limit between the chunk's first and last line ends."""
        n = (last + 1 - first) // block
        if n == 0:
            return
        blocks = np.frombuffer(chunk, dtype=np.uint8, count=n * block, offset=first).reshape(n, block)
        eol = bytes([self.eol])
        for k in np.flatnonzero(~(blocks == self.eol).any(axis=1)):  # blocks inside one line
            at = first + int(k) * block
            prev, nxt = chunk.rfind(eol, 0, at), chunk.find(eol, at + block)
            if nxt - prev - 1 > self.limits.line_bytes:
                raise self._long_line(self._line_of(off + prev + 1))

    def _line_of(self, pos: int) -> int:
        """The line number (from 1) of byte ``pos``: line ends before it are counted on refusal only."""
        eol, count, done = bytes([self.eol]), 1, 0
        with self._open() as fh:
            while done < pos and (chunk := fh.read(min(SCAN_CHUNK, pos - done))):
                count += chunk.count(eol)
                done += len(chunk)
        return count

    def _control_at(self, line_start: int, pos: int, header: list[str]) -> None:
        """Refuse the control character at byte ``pos`` (its line starts at ``line_start``)."""
        with self._open() as fh:
            fh.seek(line_start)
            before = fh.read(pos - line_start)
            char = fh.read(1)
        shown = f"\\x{char[0]:02x}"
        line = self._line_of(line_start)
        if line == 1:
            raise self.fail(f"not a readable CSV file (control character {shown} in the header: binary data or "
                            "not UTF-8 text); save it as a UTF-8 CSV file")
        index = len(self._fields(before + b"x")) - 1
        column = header[index] if index < len(header) else None
        raise self.fail(f"contains the control character {shown}; remove it (only tab, CR and LF may "
                        "separate values)", row=line - 1, column=column)

    def _unpacked_cap(self) -> int:
        """The most a compressed file may decompress to: the import limit, and (beyond
        :data:`EXPANSION_FLOOR`) ``expansion`` times its compressed size. None: no cap."""
        if not self.compression:
            return 1 << 62
        return min(self.limits.import_bytes, max(EXPANSION_FLOOR, self.limits.expansion * self._nbytes()))

    def _too_unpacked(self, cap: int) -> DataError:
        var = Limits.var("import_bytes") if cap == self.limits.import_bytes else Limits.var("expansion")
        return self.fail(f"the {self.compression} file decompresses to more than {_size(cap)} ({var}): "
                         "split it by date range, or raise the limit")

    def _read_csv(self, rows: int):
        try:
            header = self._check_header()
            self._scan_csv(header)
            self._check_first_row(self.body_at, len(header))
        except _COMPRESSION_ERRORS as exc:
            raise self._bad_compression(exc) from None
        return self._csv_chunks(rows)

    def _csv_chunks(self, rows: int):
        done, over = 0, False
        try:
            # numbers are inferred by the fast parser; a column with any non-number stays
            # text and is checked cell by cell later, so its first bad row is named
            with self._open() as fh:
                with pd.read_csv(fh, sep=self.sep, skipinitialspace=True, keep_default_na=False, na_values=[],
                                 dtype={0: str}, low_memory=False, chunksize=rows) as reader:
                    for frame in reader:
                        done += len(frame)
                        over = over or done > self.limits.rows
                        if len(frame) and not over:  # over the limit: parse on, refuse at the end
                            yield frame
        except pd.errors.EmptyDataError:
            raise self.fail("the file is empty: export the bars again") from None
        except _COMPRESSION_ERRORS as exc:
            raise self._bad_compression(exc) from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            detail = str(exc).strip().splitlines()[-1][:160]
            m = re.search(r"line (\d+)", detail)
            row = int(m.group(1)) - 1 if m else None
            raise self.fail(f"not a readable CSV file ({detail}); check the row is complete", row=row) from None
        if done == 0:
            raise self.fail("the file has a header but no rows: export the bars again")
        self._check_rows(done)
