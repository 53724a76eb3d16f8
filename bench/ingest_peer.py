"""The peer of bench_ingest.py: Orthanc 1.10 (Debian) with its GDCM plugin, as a centre runs
it for CR/DX. A file is ingested by POST /instances and rendered once by GET
/instances/<id>/rendered?width=1024."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.orthanc import PACS_PASSWORD, PACS_USER

# Orthanc renders JPEG 2000 only with its GDCM plugin (Debian package orthanc-gdcm), as a
# centre's Orthanc for CR/DX does.
GDCM_PLUGIN = "/usr/share/orthanc/plugins/libOrthancGdcm.so"
AUTH = (PACS_USER, PACS_PASSWORD)


def with_gdcm(config: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def configured(*args: Any) -> dict[str, Any]:
        found = config(*args)
        found["Plugins"] = [*found["Plugins"], GDCM_PLUGIN]
        return found

    return configured


def orthanc_pid(server: Any) -> int:
    marker = str(server.storage.parent)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_text():
                    return int(proc.name)
            except OSError:
                continue
    raise RuntimeError("Orthanc's process not found")


def orthanc_ingest(server: Any, data: bytes) -> str:
    """Upload + first 1024-px rendering; the instance's id."""
    answer = requests.post(f"{server.url}/instances", data=data, auth=AUTH, timeout=120)
    answer.raise_for_status()
    instance = answer.json()["ID"]
    rendered = requests.get(f"{server.url}/instances/{instance}/rendered",
                            params={"width": 1024}, auth=AUTH, timeout=120)
    rendered.raise_for_status()
    return str(instance)


def orthanc_forget(server: Any, instance: str) -> None:
    requests.delete(f"{server.url}/instances/{instance}", auth=AUTH, timeout=60)
