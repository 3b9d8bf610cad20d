"""ranges: addresses and blocks as Elasticsearch's CIDR_MATCH sees them."""

from __future__ import annotations

import pytest

from egress_offline.errors import UsageError
from egress_offline.ranges import SEED_CIDRS, classify, parse_cidr, parse_ip

MAPPED = 0xFFFF << 32


def test_the_seed_list_is_the_query_s_26_blocks_as_written() -> None:
    assert len(SEED_CIDRS) == 26
    assert SEED_CIDRS[0] == "10.0.0.0/8" and SEED_CIDRS[-3:] == ("::1", "FE80::/10", "FF00::/8")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10.1.2.3", MAPPED | 0x0A010203),
        ("::ffff:10.1.2.3", MAPPED | 0x0A010203),  # the same address
        ("::10.1.2.3", 0x0A010203),  # IPv6, not IPv4
        ("::1", 1),
        ("fe80::1%eth0", None),  # a zone id is not a valid ip value
        ("10.1.2", None),
        ("", None),
    ],
)
def test_addresses_are_128_bit_values(text: str, value: int | None) -> None:
    assert parse_ip(text) == value


def test_blocks_and_single_addresses() -> None:
    block = parse_cidr("10.0.0.0/8")
    assert (block.value, block.prefix) == (MAPPED | 0x0A000000, 104)
    assert block.contains(MAPPED | 0x0AFFFFFF) and not block.contains(MAPPED | 0x0B000000)
    single = parse_cidr(" ::1 ")
    assert (single.text, single.prefix) == ("::1", 128)
    host_bits = parse_cidr("10.1.2.3/8")  # host bits set: the block they name
    assert host_bits.value == block.value


def test_a_bad_block_names_where_it_came_from() -> None:
    with pytest.raises(UsageError) as raised:
        parse_cidr("10.0.0.0/33", origin="ranges.txt:4")
    assert str(raised.value).startswith("ranges.txt:4: '10.0.0.0/33' is not a CIDR block or ip")
    assert "write it like 10.0.0.0/8, 2001:db8::/32 or 192.0.2.1" in str(raised.value)


def test_each_distinct_address_is_classified_once() -> None:
    blocks = tuple(parse_cidr(c) for c in SEED_CIDRS)
    table = classify(["8.8.8.8", "10.0.0.1", "::ffff:10.0.0.1", "junk", "fc00::1"], blocks)
    assert table.rows() == [
        ("8.8.8.8", format(MAPPED | 0x08080808, "032x"), False),
        ("10.0.0.1", format(MAPPED | 0x0A000001, "032x"), True),
        ("::ffff:10.0.0.1", format(MAPPED | 0x0A000001, "032x"), True),
        ("junk", None, None),
        ("fc00::1", format(0xFC00 << 112 | 1, "032x"), False),  # public under the seed list
    ]
