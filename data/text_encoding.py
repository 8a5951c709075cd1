"""Reading a CSV file's first bytes and row: which encoding it is in (UTF-8, else GB18030,
else refused naming the fault) and whether its header names each field once."""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import IO

from geo.errors import InvalidInput

#: Bytes read at a time while deciding a file's encoding (the whole file is checked).
SNIFF_BYTES = 1 << 20


def csv_encoding(binary: IO[bytes], name: str) -> str:
    """``utf-8-sig`` when the whole file decodes as UTF-8, else ``gb18030``. The whole file
    is checked, in pieces of :data:`SNIFF_BYTES`: a GB18030 export often starts with ASCII
    rows, its first Chinese text far into the file. Bytes that are neither refuse the file,
    naming the line and byte where GB18030 fails. The file is left at its start."""
    if first_fault(binary, "utf-8") is None:
        return "utf-8-sig"
    fault = first_fault(binary, "gb18030")
    if fault is None:
        return "gb18030"
    offset, bad = fault
    line = binary.read(offset).count(b"\n") + 1
    binary.seek(0)
    raise InvalidInput(
        f"cannot read {name!r}: the bytes {bad.hex(' ')} at line {line} (byte "
        f"{offset + 1}) are neither UTF-8 nor GB18030", field="file", value=name,
        valid="a CSV file in UTF-8 or GB18030 (GBK): save it again in one of them")


def first_fault(binary: IO[bytes], codec: str) -> tuple[int, bytes] | None:
    """The offset and bytes of the first sequence ``codec`` cannot decode in ``binary``
    (None: none); the file is left at its start."""
    decoder = codecs.getincrementaldecoder(codec)()
    fed = 0
    piece = b""
    binary.seek(0)
    try:
        while piece := binary.read(SNIFF_BYTES):
            decoder.decode(piece, final=False)
            fed += len(piece)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:  # positions are in the decoder's pending + piece
        pending = len(exc.object) - len(piece)
        return fed - pending + exc.start, exc.object[exc.start:exc.end]
    finally:
        binary.seek(0)
    return None


def check_header(fields: Sequence[str], name: str) -> None:
    """Refuse (naming the file) a CSV header that is empty or names a field twice."""
    if not any(fields):
        raise InvalidInput(f"{name!r} has an empty header row", field="file", value=name,
                           valid="a CSV file whose first row names the fields")
    seen: set[str] = set()
    for f in fields:
        if f in seen:
            raise InvalidInput(f"{name!r} names the field {f!r} twice in its header",
                               field="file", value=f, valid="distinct field names")
        seen.add(f)
