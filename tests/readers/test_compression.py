"""readers.compression: the one member walker that sniffing and reading share."""

from __future__ import annotations

import gzip
import io

import pytest

from egress_offline.readers.compression import compression_of, decompressed, zstd_module
from tests.helpers import zstd_compress


def walk(data: bytes, compression: str, **options: int) -> tuple[bytes, list[str]]:
    damage: list[str] = []
    text = b"".join(decompressed(io.BytesIO(data), compression, damage.append, **options))  # type: ignore[arg-type]
    return text, damage


def test_the_compression_is_told_from_the_first_bytes() -> None:
    assert compression_of(gzip.compress(b"x")) == "gzip"
    assert compression_of(zstd_compress(b"x")) == "zstd"
    assert compression_of(b'{"a": 1}') == "none"


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_concatenated_members_are_one_text(compression: str) -> None:
    pack = gzip.compress if compression == "gzip" else zstd_compress
    data = pack(b"one\n") + pack(b"two\n") + pack(b"three\n")
    assert walk(data, compression) == (b"one\ntwo\nthree\n", [])
    assert walk(data, compression, read_size=3) == (b"one\ntwo\nthree\n", [])


def test_nul_padding_after_the_last_member_is_not_damage() -> None:
    assert walk(gzip.compress(b"a\n") + b"\x00" * 4096, "gzip") == (b"a\n", [])


def test_bytes_after_the_last_member_are_damage_and_what_precedes_is_kept() -> None:
    member = gzip.compress(b"a\n")
    text, damage = walk(member + b"junk", "gzip")
    assert text == b"a\n"
    assert damage == [f"4 bytes that are not gzip after byte {len(member)}"]


def test_a_cut_member_keeps_what_it_holds_and_says_where_it_ends() -> None:
    body = b"".join(b"line %d\n" % i for i in range(20_000))
    whole = gzip.compress(body)
    text, damage = walk(whole[: len(whole) // 2], "gzip")
    assert body.startswith(text) and 0 < len(text) < len(body)
    assert damage == [f"gzip data ends early at byte {len(whole) // 2} (truncated copy)"]


def test_corrupt_data_is_damage_named_with_where() -> None:
    whole = bytearray(gzip.compress(b"x" * 1000))
    whole[20:30] = b"\xff" * 10
    _, damage = walk(bytes(whole), "gzip")
    assert len(damage) == 1 and damage[0].startswith(
        "gzip data is corrupt in the member at byte 0 "
    )


def _zstd_with_checksum(data: bytes) -> bytes:
    """One zstd frame with its content checksum, as the ``zstd`` command writes it."""
    zstd = zstd_module()
    return bytes(zstd.compress(data, options={zstd.CompressionParameter.checksum_flag: 1}))


def _bad_checksum(member: bytes, compression: str) -> bytes:
    """``member`` with the first byte of its checksum flipped (gzip: the CRC-32 before the
    length at the end; zstd: the frame's last 4 bytes)."""
    at = len(member) - (8 if compression == "gzip" else 4)
    return member[:at] + bytes([member[at] ^ 0xFF]) + member[at + 1 :]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("size", [30, 3_000_000])
def test_a_member_that_fails_its_checksum_keeps_all_its_text_and_the_members_after_it(
    compression: str, size: int
) -> None:
    """Only the checksum is wrong: the whole text decompressed is kept (before, the last
    piece was dropped with the error: all of a small member, and every member after it),
    and the damage says which member, and that its text may differ."""
    pack = gzip.compress if compression == "gzip" else _zstd_with_checksum
    body = b"".join(b'{"n": %d}\n' % i for i in range(size // 10))
    first = _bad_checksum(pack(body), compression)
    data = pack(b"before\n") + first + pack(b"after\n")
    unit = "member" if compression == "gzip" else "frame"
    for options in ({}, {"read_size": 7}):
        text, damage = walk(data, compression, **options)
        assert text == b"before\n" + body + b"after\n"
        assert len(damage) == 1
        assert damage[0].startswith(
            f"the {compression} {unit} at byte {len(pack(b'before' + bytes([10])))} fails its checksum ("
        )
        assert damage[0].endswith(
            "its text is read as it decompressed, but some of it may differ from what was written"
        )


def test_a_member_damaged_inside_keeps_the_text_before_the_damage_and_says_so() -> None:
    """Damage in the compressed data itself: deflate may decode it to other text, found
    only by the checksum, or fail there. Either way the text before the damage is kept
    and the damage is named."""
    body = b"".join(b"line %d\n" % i for i in range(200_000))
    whole = bytearray(gzip.compress(body, compresslevel=1))
    whole[len(whole) // 2 : len(whole) // 2 + 64] = b"\xff" * 64
    text, damage = walk(bytes(whole), "gzip")
    assert text[: len(body) // 4] == body[: len(body) // 4]
    assert len(damage) == 1
    assert damage[0].startswith(("gzip data is corrupt in the member at byte 0 (",
                                 "the gzip member at byte 0 fails its checksum ("))  # fmt: skip


def test_plain_text_is_read_a_block_at_a_time_only_as_far_as_taken() -> None:
    handle = io.BytesIO(b"x" * 100)
    pieces = decompressed(handle, "none", lambda _: None, read_size=10)
    assert next(pieces) == b"x" * 10
    assert handle.tell() == 10


@pytest.mark.parametrize("cut", range(1, 4))
def test_a_member_s_magic_cut_by_the_end_of_a_read_is_not_damage(cut: int) -> None:
    """Members are read a block at a time; the next member's magic number may be cut in
    two by a block's end (gzip's two bytes, zstd's four). That is the next member, not
    bytes that are not gzip."""
    first = zstd_compress(b"one\n")
    data = first + zstd_compress(b"two\n")
    handle = io.BytesIO(data)
    reads = [len(first) + cut, len(data)]

    class Reads(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return handle.read(reads.pop(0)) if reads else b""

    damage: list[str] = []
    text = b"".join(decompressed(Reads(), "zstd", damage.append))
    assert (text, damage) == (b"one\ntwo\n", [])


def test_a_cut_magic_at_the_very_end_is_damage() -> None:
    member = gzip.compress(b"a\n")
    assert walk(member + b"\x1f", "gzip") == (
        b"a\n",
        [f"1 bytes that are not gzip after byte {len(member)}"],
    )


def test_a_cut_after_a_member_that_failed_its_checksum_is_told_first() -> None:
    """One note, the worst first: a later cut (records lost) is not hidden behind the
    checksum of a member read whole."""
    bad = _bad_checksum(gzip.compress(b"a\n" * 100), "gzip")
    body = b"".join(b"line %d\n" % i for i in range(20_000))
    cut = gzip.compress(body)
    cut = cut[: len(cut) // 2]
    text, damage = walk(bad + cut, "gzip")
    assert text.startswith(b"a\n" * 100 + b"line 0\n")
    assert len(damage) == 1
    assert damage[0].startswith(
        f"gzip data ends early at byte {len(bad) + len(cut)} (truncated copy); before it, "
        "the gzip member at byte 0 fails its checksum ("
    )


def test_many_members_that_fail_their_checksums_are_one_note_and_read_in_time() -> None:
    """20,000 tiny members with a bad CRC: every text kept, one note that counts them
    (a note each, and a MiB read again each, before)."""
    member = _bad_checksum(gzip.compress(b'{"a":1}\n'), "gzip")
    text, damage = walk(member * 20_000, "gzip")
    assert text == b'{"a":1}\n' * 20_000
    assert len(damage) == 1
    assert damage[0].startswith(
        "the gzip member at byte 0 (and 19,999 members after it) fails its checksum ("
    )
    assert damage[0].endswith("but some of it may differ from what was written")
