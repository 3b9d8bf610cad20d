"""Addresses and CIDR blocks, matched as Elasticsearch's ``CIDR_MATCH`` matches them.

Elasticsearch stores every ip as 16 bytes, an IPv4 address as its IPv4-mapped IPv6 form
(``::ffff:a.b.c.d``), so ``::ffff:10.1.2.3`` *is* ``10.1.2.3`` and matches ``10.0.0.0/8``,
while ``::10.1.2.3`` is an IPv6 address. Matching is done here on 128-bit integers in that
space. Only distinct addresses are ever classified, one Python call each.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from egress_offline.errors import UsageError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["SEED_CIDRS", "CidrBlock", "classify", "parse_cidr", "parse_ip"]

#: The 26 non-public ranges of the seed query, exactly as written there.
SEED_CIDRS: Final = (
    "10.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.0.0/29",
    "192.0.0.8/32",
    "192.0.0.9/32",
    "192.0.0.10/32",
    "192.0.0.170/32",
    "192.0.0.171/32",
    "192.0.2.0/24",
    "192.31.196.0/24",
    "192.52.193.0/24",
    "192.168.0.0/16",
    "192.88.99.0/24",
    "224.0.0.0/4",
    "100.64.0.0/10",
    "192.175.48.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "240.0.0.0/4",
    "::1",
    "FE80::/10",
    "FF00::/8",
)

_V4_MAPPED: Final = 0xFFFF << 32


@dataclass(frozen=True)
class CidrBlock:
    """One block in the 128-bit space: ``text`` as given, ``value``/``prefix`` normalised."""

    text: str
    value: int
    prefix: int

    def contains(self, address: int) -> bool:
        shift = 128 - self.prefix
        return address >> shift == self.value >> shift


def parse_ip(text: str) -> int | None:
    """The 128-bit value of an ip string as Elasticsearch indexes it, or None if malformed."""
    if "%" in text:  # zone ids are not valid ip field values
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 4:
        return _V4_MAPPED | int(address)
    return int(address)


def parse_cidr(text: str, *, origin: str = "--exclude-cidr") -> CidrBlock:
    """Parse a block like ``10.0.0.0/8`` or a single address like ``::1``.

    Raises UsageError naming ``origin`` (the option, or ``file:line``) when malformed.
    """
    raw = text.strip()
    try:
        network = ipaddress.ip_network(raw, strict=False)
    except ValueError as exc:
        raise UsageError(
            f"{origin}: {text!r} is not a CIDR block or ip address ({exc}); "
            "write it like 10.0.0.0/8, 2001:db8::/32 or 192.0.2.1"
        ) from None
    value = int(network.network_address)
    prefix = network.prefixlen
    if network.version == 4:
        value |= _V4_MAPPED
        prefix += 96
    return CidrBlock(text=raw, value=value, prefix=prefix)


def classify(addresses: Iterable[str], blocks: tuple[CidrBlock, ...]) -> pl.DataFrame:
    """Map each distinct address text to ``ip_valid`` and ``ip_excluded`` (in any block).

    Malformed addresses are invalid: Fleet's templates set ``ignore_malformed``, so the
    cluster sees them as null and ``not CIDR_MATCH(null, ...)`` drops the row.
    """
    import polars as pl  # noqa: PLC0415 - the matcher itself needs no Polars

    texts: list[str] = []
    canon: list[str | None] = []
    excluded: list[bool | None] = []
    for text in addresses:
        value = parse_ip(text)
        texts.append(text)
        if value is None:
            canon.append(None)
            excluded.append(None)
        else:
            canon.append(format(value, "032x"))
            excluded.append(any(block.contains(value) for block in blocks))
    return pl.DataFrame(
        {"ip_text": texts, "ip_canon": canon, "ip_excluded": excluded},
        schema={"ip_text": pl.String, "ip_canon": pl.String, "ip_excluded": pl.Boolean},
    )
