"""Seeded generator of realistic Elastic Endpoint network exports of any size.

    python benchmarks/generate.py --size 1GB --out benchmarks/data [--formats ndjson,gz,zst,parquet]

Each line is shaped like Elastic's sample network event (nested objects, ``event.category``
as a one-element list, 7-digit fractional timestamps, geo/as/Ext sub-objects, 1-3 KB): about
45% ``disconnect_received``, Windows/Linux/macOS hosts, private and public IPv4 and IPv6
destinations (IPv4-mapped too), 48 hours of events in time order, and planted exfiltration
(a few Windows processes sending well over 1 GiB to one public destination in the last 8
hours). Lines are assembled from pre-serialised fragments, so generation is fast; the same
seed and size give the same bytes. A ``<name>.meta.json`` beside the data records the export
time (``now``) and the planted groups.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import random
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EXPORT_END = datetime(2026, 11, 20, 16, 0, 0, tzinfo=UTC)
SPAN = timedelta(hours=48)
GiB = 1024**3
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?$", re.IGNORECASE)

PUBLIC_V4 = [
    f"{a}.{b}.{c}.{d}"
    for a, b, c, d in [
        (142, 250, 185, 78),
        (13, 107, 42, 14),
        (151, 101, 1, 140),
        (104, 16, 132, 229),
        (52, 96, 165, 18),
        (185, 199, 108, 153),
        (34, 117, 59, 81),
        (20, 42, 65, 92),
        (172, 217, 22, 14),
        (31, 13, 71, 36),
        (157, 240, 22, 35),
        (23, 52, 174, 104),
    ]
]
PUBLIC_V6 = ["2606:4700::6810:84e5", "2a00:1450:4001:82b::200e", "2620:1ec:c11::200"]
PRIVATE = [
    "10.20.0.5",
    "10.1.4.22",
    "192.168.1.20",
    "172.16.4.10",
    "169.254.10.3",
    "fe80::1c2b:3aff:fe4d:5e6f",
    "::1",
    "::ffff:10.0.5.9",
    "::ffff:192.168.0.8",
]
MAPPED_PUBLIC = ["::ffff:45.77.12.9", "::ffff:8.8.4.4"]
ORGS = [
    "GOOGLE",
    "MICROSOFT-CORP-MSN-AS-BLOCK",
    "FASTLY",
    "CLOUDFLARENET",
    "AMAZON-02",
    "AKAMAI-AS",
    "FACEBOOK",
]
ACTIONS = (
    ["disconnect_received"] * 45
    + ["connection_attempted"] * 30
    + ["connection_accepted"] * 15
    + ["lookup_result"] * 10
)
PROGRAMS = {
    "windows": [r"C:\Program Files\Google\Chrome\Application\chrome.exe",
                r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
                r"C:\Windows\System32\svchost.exe", r"C:\Program Files\Slack\slack.exe",
                r"C:\Program Files\Microsoft OneDrive\OneDrive.exe",
                r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"],
    "linux": ["/usr/sbin/sshd", "/usr/bin/python3.11", "/usr/lib/apt/methods/https",
              "/usr/bin/curl"],
    "macos": ["/Applications/Safari.app/Contents/MacOS/Safari",
              "/Applications/Slack.app/Contents/MacOS/Slack", "/usr/bin/curl"],
}  # fmt: skip
OS_BLOCKS = {
    "windows": {"name": "Windows", "family": "windows", "type": "windows", "platform": "windows",
                "version": "1809 (10.0.17763.2686)", "kernel": "1809 (10.0.17763.2686)",
                "full": "Windows Server 2019 Datacenter 1809 (10.0.17763.2686)",
                "Ext": {"variant": "Windows Server 2019 Datacenter"}},
    "linux": {"name": "Ubuntu", "family": "ubuntu", "type": "linux", "platform": "ubuntu",
              "version": "22.04.3", "kernel": "6.5.0-1016-gcp", "full": "Ubuntu 22.04.3"},
    "macos": {"name": "macOS", "family": "macos", "type": "macos", "platform": "macos",
              "version": "14.1", "kernel": "23.1.0", "full": "macOS 14.1"},
}  # fmt: skip


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Fleet:
    """Hosts and processes, each pre-serialised once."""

    def __init__(self, rng: random.Random) -> None:
        self.hosts: list[tuple[str, str, str, str]] = []  # (family, host frag, agent frag, user)
        self.processes: list[list[tuple[str, str]]] = []  # per host: (entity id, process frag)
        families = ["windows"] * 11 + ["linux"] * 5 + ["macos"] * 4
        for i, family in enumerate(families * 3):
            name = f"{family[:3].upper()}-{i:03d}"
            agent_id = f"{rng.getrandbits(32):08x}-0ec9-4961-805e-8ed2fc4c043b"
            host = {"hostname": name, "os": OS_BLOCKS[family],
                    "ip": [f"10.201.{i}.32", "fe80::f8e6:a511:69ea:27c4", "127.0.0.1", "::1"],
                    "name": name, "id": f"{rng.getrandbits(64):016x}",
                    "mac": ["00-00-5E-00-53-23"], "architecture": "x86_64"}  # fmt: skip
            agent = {"id": agent_id, "type": "endpoint", "version": "8.15.3"}
            user = "SYSTEM" if rng.random() < 0.3 else f"user{i:03d}"
            self.hosts.append((family, _dumps(host), _dumps(agent), user))
            procs = []
            for pid, exe in enumerate(PROGRAMS[family], start=1000 + 10 * i):
                entity = base64.b64encode(f"{agent_id}-{pid}-13293549109.7359497".encode()).decode()
                name_only = exe.replace("\\", "/").rsplit("/", 1)[-1]
                proc = {"Ext": {"ancestry": [entity], "code_signature": [
                            {"trusted": True, "subject_name": "Microsoft Windows",
                             "exists": True, "status": "trusted"}]},
                        "parent": {"entity_id": entity[:-4] + "MA=="}, "name": name_only,
                        "pid": pid, "entity_id": entity, "executable": exe}  # fmt: skip
                procs.append((entity, _dumps(proc)))
            self.processes.append(procs)


def _destination(ip: str, rng: random.Random) -> tuple[str, str]:
    """(destination JSON without bytes, a trailing comma included), address."""
    address = ip if rng.random() < 0.7 else f"h{rng.randint(1, 999)}.example.net"
    dest: dict[str, Any] = {}
    public = ip in PUBLIC_V4 or ip in PUBLIC_V6 or ip in MAPPED_PUBLIC
    if public:
        dest["geo"] = {"continent_name": "North America", "country_iso_code": "US",
                       "country_name": "United States",
                       "location": {"lon": -97.822, "lat": 37.751}}  # fmt: skip
        dest["as"] = {"number": rng.randint(1000, 60000),
                      "organization": {"name": rng.choice(ORGS)}}  # fmt: skip
    dest["address"] = address
    dest["port"] = rng.choice([443, 443, 443, 80, 8443, 53])
    dest["ip"] = ip
    return _dumps(dest)[:-1] + ',"bytes":', address


def generate(path: Path, size: int, *, seed: int = 7, sparse: int = 0) -> dict[str, Any]:
    """Write about ``size`` bytes of NDJSON to ``path``; return the metadata. With
    ``sparse``, only one in ``sparse`` of the events that would be ``disconnect_received``
    is (the others are ``connection_accepted``), the planted ones aside: an export where
    the hunt keeps a few rows of each batch."""
    rng = random.Random(seed)
    fleet = Fleet(rng)
    dests = [_destination(ip, rng) for ip in PUBLIC_V4 + PUBLIC_V6 + MAPPED_PUBLIC + PRIVATE
             for _ in range(3)]  # fmt: skip
    windows = [i for i, h in enumerate(fleet.hosts) if h[0] == "windows"]
    planted = [(rng.choice(windows), 5), (rng.choice(windows), 3), (rng.choice(windows), 0)]
    planted_dest = [_destination(ip, rng) for ip in ("185.220.101.7", "::ffff:45.77.12.9",
                                                     "2a05:d014:e00::17")]  # fmt: skip
    events = max(1, size // 1950)  # about the mean line length
    start = EXPORT_END - SPAN
    last8 = EXPORT_END - timedelta(hours=8)
    planted_every = max(1, events // 3000)
    written = 0
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        lines: list[str] = []
        while written < size:
            ts = start + SPAN * (written / size)  # time follows the bytes: 48 h in all
            count += 1
            seq = count
            stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond:06d}{seq % 10}Z"
            if ts > last8 and count % planted_every == 0:
                which = count // planted_every % 3
                host_i, proc_i = planted[which]
                dest_frag, _ = planted_dest[which]
                action = "disconnect_received"
                sent = rng.randint(2_000_000, 6_000_000) * max(1, 3000 // 400)
            else:
                host_i = rng.randrange(len(fleet.hosts))
                proc_i = rng.randrange(len(fleet.processes[host_i]))
                dest_frag, _ = rng.choice(dests)
                action = rng.choice(ACTIONS)
                if sparse and action == "disconnect_received" and rng.randrange(sparse):
                    action = "connection_accepted"
                sent = rng.randint(0, 250_000)
            _family, host_frag, agent_frag, user = fleet.hosts[host_i]
            _entity, proc_frag = fleet.processes[host_i][proc_i]
            kind = "end" if action == "disconnect_received" else "start"
            line = (
                f'{{"agent":{agent_frag},"process":{proc_frag},'
                f'"destination":{dest_frag}{rng.randint(100, 90000)}}},'
                f'"source":{{"address":"10.201.0.32","port":{rng.randint(49152, 65535)},'
                f'"bytes":{sent},"ip":"10.201.0.32"}},"message":"Endpoint network event",'
                f'"network":{{"transport":"tcp","type":"ipv4","direction":"egress"}},'
                f'"@timestamp":"{stamp}","ecs":{{"version":"8.10.0"}},'
                f'"data_stream":{{"namespace":"default","type":"logs",'
                f'"dataset":"endpoint.events.network"}},"host":{host_frag},'
                f'"event":{{"agent_id_status":"verified","sequence":{seq},'
                f'"ingested":"{stamp[:19]}Z","created":"{stamp}","kind":"event",'
                f'"module":"endpoint","action":"{action}","id":"MYfZG5h8j1qej16H+{seq:08d}",'
                f'"category":["network"],"type":["{kind}"],"dataset":"endpoint.events.network"}},'
                f'"user":{{"domain":"NT AUTHORITY","name":"{user}","id":"S-1-5-18"}}}}\n'
            )
            lines.append(line)
            written += len(line)
            if len(lines) >= 4096:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))
    return {"now": EXPORT_END.isoformat().replace("+00:00", "Z"), "events": count,
            "bytes": written, "seed": seed, "sparse": sparse}  # fmt: skip


def parse_size(text: str) -> int:
    match = _SIZE.match(text.strip())
    if not match:
        raise SystemExit(f"--size: {text!r} is not a size such as 250MB or 1GB")
    number, unit = match.groups()
    return int(
        float(number) * {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}[(unit or "b").lower()]
    )


def write_formats(plain: Path, formats: set[str]) -> dict[str, Path]:
    """The NDJSON file in every requested format, made once and reused."""
    made = {"ndjson": plain}
    if "gz" in formats:
        target = plain.with_suffix(".ndjson.gz")
        if not target.exists():
            if shutil.which("gzip"):
                with target.open("wb") as out:
                    subprocess.run(["gzip", "-c", "-6", str(plain)], stdout=out, check=True)
            else:
                with plain.open("rb") as src, gzip.open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        made["gz"] = target
    if "zst" in formats:
        from egress_offline.readers.compression import zstd_module  # noqa: PLC0415

        target = plain.with_suffix(".ndjson.zst")
        if not target.exists():
            with plain.open("rb") as src, zstd_module().open(target, "wb", level=3) as out:
                shutil.copyfileobj(src, out, 1 << 20)
        made["zst"] = target
    if "parquet" in formats:
        import polars as pl  # noqa: PLC0415

        target = plain.with_suffix(".parquet")
        if not target.exists():
            schema = pl.read_ndjson(plain, n_rows=2000, infer_schema_length=2000).schema
            pl.scan_ndjson(plain, schema=schema).sink_parquet(target, row_group_size=100_000)
        made["parquet"] = target
    return made


def ensure(
    directory: Path, size_text: str, formats: set[str], seed: int = 7, sparse: int = 0
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Generate (or reuse) the export of ``size_text`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    size = parse_size(size_text)
    kind = f"-sparse{sparse}" if sparse else ""
    plain = directory / f"endpoint-{size_text.lower()}-s{seed}{kind}.ndjson"
    meta_path = plain.with_suffix(".meta.json")
    if plain.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
    else:
        meta = generate(plain, size, seed=seed, sparse=sparse)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return write_formats(plain, formats), meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="250MB")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--formats", default="ndjson,gz,zst,parquet")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--sparse", type=int, default=0, metavar="N",
        help="only one in N of the disconnect_received events (the planted ones aside)",
    )  # fmt: skip
    args = parser.parse_args()
    made, meta = ensure(
        args.out, args.size, set(args.formats.split(",")), args.seed, sparse=args.sparse
    )
    for kind, path in made.items():
        print(f"{kind:8} {path} ({path.stat().st_size:,} bytes)")
    print(f"events {meta['events']:,}, now {meta['now']}")


if __name__ == "__main__":
    main()
