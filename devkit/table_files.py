"""What the release table's files hold, for the tests and the format probe that grep them for a value.

Parquet pages and Avro blocks are compressed, so a value is searched in what they decode to, not only in
the raw bytes: an erased row must be in no data, delete, manifest or metadata file."""

from __future__ import annotations

from pathlib import Path


def file_contents(path: Path) -> bytes:
    """What a file holds, decompressed: Parquet decoded, Avro blocks inflated, anything else as is."""
    import pyarrow.parquet as pq

    raw = path.read_bytes()
    if path.suffix == ".parquet":
        try:
            return raw + repr(pq.read_table(path).to_pylist()).encode()
        except (OSError, ValueError):  # a file cut short (a writer killed mid-way): its bytes as they are
            return raw
    if path.suffix == ".avro":
        from pyiceberg.avro.file import AvroFile
        from pyiceberg.io.pyarrow import PyArrowFileIO

        parts = [raw]
        with AvroFile[object](PyArrowFileIO().new_input(str(path))) as avro:
            codec = avro.header.compression_codec()
            while True:
                try:
                    avro.decoder.read_int()  # records in the block
                except EOFError:
                    break
                block = avro.decoder.read_bytes()
                parts.append(codec.decompress(block) if codec else block)
                avro.decoder.read(16)  # sync marker
        return b"".join(parts)
    return raw


def files_holding(root: Path, needle: str) -> list[Path]:
    """Every file under ``root`` whose contents (decoded as above) hold ``needle``."""
    return [p for p in sorted(root.rglob("*")) if p.is_file() and needle.encode() in file_contents(p)]
