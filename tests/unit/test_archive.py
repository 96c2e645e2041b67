"""Reading a batched upload's tar archive as it streams in (lamina_server.api.archive), and the
SDK's writing of one (lamina._tar): what tar tools write reads back, what cannot be read is an
ArchiveError."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import AsyncIterator

import pytest

from lamina import InvalidArgumentError, _tar
from lamina_server.api.archive import ArchiveError, _header, members

pytestmark = pytest.mark.anyio


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(data: bytes, chunk: int = 7) -> list[tuple[str, str, bytes, str | None]]:
    found = []
    async for member in members(_chunks(data, chunk), max_header=64 * 1024):
        body = b"".join([piece async for piece in member.data()])
        assert len(body) == member.size
        found.append((member.path, member.kind, body, member.attributes))
    return found


def written(tar_format: int, *entries: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as tar:
        folder = tarfile.TarInfo("dir")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("dir/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "x" * (200 if tar_format != tarfile.USTAR_FORMAT else 50)
        tar.addfile(link)
    return buffer.getvalue()


LONG = "deep/" * 30 + "file.bin"  # past ustar's 100-byte name


@pytest.mark.parametrize("tar_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("chunk", [1, 7, 512, 65536])
async def test_what_tar_writes_reads_back(tar_format: int, chunk: int) -> None:
    entries = [("a.txt", b"alpha"), (LONG, bytes(range(256)) * 5), ("empty", b"")]
    if tar_format == tarfile.PAX_FORMAT:
        entries.append(("ünïcode/ß.txt", b"wide"))
    found = await read_all(written(tar_format, *entries), chunk)
    assert found[0][:2] == ("dir", "directory")
    assert [(path, body) for path, kind, body, _ in found if kind == "file"] == entries
    assert found[-1][:2] == ("dir/link", "other")


async def test_ustar_and_the_sdks_members() -> None:
    ustar = written(tarfile.USTAR_FORMAT, ("a/b", b"x" * 1000))
    assert [(p, k) for p, k, _, _ in await read_all(ustar)] == [
        ("dir", "directory"),
        ("a/b", "file"),
        ("dir/link", "other"),
    ]
    attributes = _tar.attributes("text/csv", {"K": "v\u00e9"})
    assert attributes is not None and _tar.attributes(None, None) is None
    body = b"".join(
        [
            _tar.member("plain", b"1"),
            _tar.member("with\x00nul", b"22", attributes),
            _tar.member(LONG, b"333"),
            _tar.END,
        ]
    )
    found = await read_all(body)
    assert [(p, b, a) for p, _, b, a in found] == [
        ("plain", b"1", None),
        ("with\x00nul", b"22", attributes),
        (LONG, b"333", None),
    ]
    assert json.loads(attributes) == {"content_type": "text/csv", "metadata": {"K": "v\u00e9"}}
    # The standard library reads what the SDK writes.
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert [m.name for m in tar] == ["plain", "with\x00nul", LONG]


def _tarfile_member(path: str, data: bytes, attributes: str | None) -> bytes:
    info = tarfile.TarInfo(path)
    info.size, info.mode = len(data), 0o644
    records = {"path": path} if "\x00" in path else {}
    if attributes is not None:
        records[_tar.ATTRIBUTES_RECORD] = attributes
    info.pax_headers = records
    header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
    return header + data + bytes(-len(data) % 512)


@pytest.mark.parametrize(
    "path",
    ["a/b.txt", "d/" + "x" * 98, "d/" + "x" * 99, LONG, "é/ü.bin", "with\x00nul", "a\x00é"],
)
@pytest.mark.parametrize("size", [0, 1, 512, 5000])
@pytest.mark.parametrize("attributes", [None, '{"metadata":{"k":"' + "v" * 600 + '"}}'])
def test_the_sdks_members_are_the_bytes_tarfile_writes(
    path: str, size: int, attributes: str | None
) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert _tar.member(path, data, attributes) == _tarfile_member(path, data, attributes)


def test_a_path_that_is_not_utf8_is_refused_as_an_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="not valid UTF-8"):
        _tar.member("bad\udc80name", b"x")


async def test_an_archive_may_end_without_its_zero_blocks() -> None:
    whole = _tar.member("a", b"x") + _tar.member("b", b"y")
    assert [p for p, *_ in await read_all(whole)] == ["a", "b"]
    assert await read_all(b"") == []


def _negative_size() -> bytes:
    """A member whose size is a negative base-256 number (its checksum right)."""
    header = bytearray(_tar.member("a", b"")[:512])
    header[124:136] = b"\xff" * 12
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\x00 ".encode()
    return bytes(header) + bytes(1024)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not a tar archive" * 40, "bad tar header"),
        (_tar.member("a", b"x" * 600)[:700], "ends inside a member"),
        (_tar.member("a", b"x" * 600)[: 512 + 610], "padding"),
        (_tar.member("a", b"x")[:300], "inside a header"),
        (_tar.member("nul\x00", b"", None)[:1024] + bytes(1024), "before its member"),
        (_negative_size(), "negative size"),
    ],
)
async def test_what_cannot_be_read(body: bytes, problem: str) -> None:
    with pytest.raises(ArchiveError, match=problem):
        await read_all(body)


async def test_malformed_pax_records_and_oversized_headers() -> None:
    def pax(records: bytes) -> bytes:
        info = tarfile.TarInfo("././@PaxHeader")
        info.type = tarfile.XHDTYPE
        info.size = len(records)
        header = info.tobuf(tarfile.USTAR_FORMAT)
        return header + records + bytes(-len(records) % 512) + _tar.member("a", b"x")

    for records in (b"5 path=x\n", b"abc path=x\n", b"12 pathx12345", b"9 size=no\n"):
        with pytest.raises(ArchiveError):
            await read_all(pax(records))
    assert (await read_all(pax(b"13 path=long\n")))[0][0] == "long"
    with pytest.raises(ArchiveError, match="limit"):
        async for _ in members(_chunks(pax(b"x" * 70_000), 4096), max_header=64 * 1024):
            pass


def _headers() -> list[bytes]:
    """Header blocks of every shape tar tools write, and spoilt ones."""
    blocks = []
    names = ["a.txt", "dir/", "x" * 100, "p" * 60 + "/" + "n" * 90, "ünïcode/ß.txt", ""]
    types = [tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE]
    for tar_format in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        for name in names:
            for type_ in types:
                for size in (0, 4096, 8**11 + 5):
                    info = tarfile.TarInfo(name)
                    info.type = type_
                    info.size = size
                    info.uname = "ünï"
                    try:
                        whole = info.tobuf(tar_format, "utf-8", "strict")
                    except ValueError:  # what ustar cannot hold
                        continue
                    blocks += [whole[i : i + 512] for i in range(0, len(whole), 512)]
    spoilt = []
    for block in blocks[:40]:
        spoilt.append(block[:148] + b"0000001\x00" + block[156:])  # a wrong checksum
        spoilt.append(block[:124] + b"9" * 12 + block[136:])  # a size that is not octal
        spoilt.append(b"\xff\xfe" + block[2:])  # a name that is not UTF-8
    signed = []
    for block in blocks:
        if any(byte & 0x80 for byte in block):  # the signed checksum some tars write
            total = sum(b - 256 if b & 0x80 else b for b in block[:148] + block[156:]) + 256
            signed.append(block[:148] + f"{total & 0o7777777:07o}\x00".encode() + block[156:])
    return blocks + spoilt + signed


def test_a_header_reads_as_tarfile_reads_it() -> None:
    blocks = _headers()
    assert len(blocks) > 300
    read = refused = 0
    for block in blocks:
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
        except (tarfile.HeaderError, UnicodeDecodeError):
            with pytest.raises(ValueError):
                _header(block)
            refused += 1
            continue
        assert _header(block) == (info.name, info.size, info.type), block[:100]
        read += 1
    assert read > 200 and refused >= 120
