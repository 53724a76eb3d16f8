"""A real Orthanc PACS for the tests: Debian's ``orthanc`` with the ``orthanc-dicomweb`` plugin,
started on 127.0.0.1 with a throw-away configuration and storage, and loaded over its REST API.

Skipped where Orthanc is not installed, or failing when CXR_ACADEMY_REQUIRE_ALL=1 (as in CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from pydicom.uid import CTImageStorage

from tests.dicom_factory import PHI, cr_dataset, to_bytes
from tests.realservers import free_port, missing

ORTHANC = os.environ.get("CXR_ACADEMY_ORTHANC", "/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
PACS_USER = "pacs-reader"
PACS_PASSWORD = "orthanc-test-Secret-5f3k"
PACS_AE = "TESTPACS"
# The AE title the portal calls from: registered with Orthanc as a modality, as a PACS
# administrator registers any system allowed to query and retrieve.
PORTAL_AE = "CXRACADEMY"
SHARED_DICOM = Path(__file__).resolve().parents[2] / "shared" / "cxr" / "dicom"
RG1_STUDY = "1.3.6.1.4.1.5962.1.2.9.20040826185059.5457"
PHI_PATIENT_ID = PHI["PatientID"]
DX_PATIENT_ID = "DIMSE-PAT-4417Q"


@dataclass(frozen=True)
class Orthanc:
    http_port: int
    dicom_port: int
    storage: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def upload(self, data: bytes) -> dict[str, str]:
        """Store one DICOM file (REST API); Orthanc's answer names the new instance."""
        response = requests.post(f"{self.url}/instances", data=data,
                                 auth=(PACS_USER, PACS_PASSWORD), timeout=30)
        response.raise_for_status()
        return dict(response.json())


def _config(http_port: int, dicom_port: int, storage: Path, portal_port: int) -> dict[str, object]:
    return {
        "Name": "CXR Academy test PACS",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": PACS_AE,
        # Only this machine may talk to it (Orthanc answers other addresses with 403).
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {PACS_USER: PACS_PASSWORD},
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "DicomModalities": {PORTAL_AE: [PORTAL_AE, "127.0.0.1", portal_port]},
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": False,
        "StableAge": 1,
        "HttpDescribeErrors": True,
        "SaveJobs": False,
        "LogExportedResources": False,
        "KeepAlive": True,
    }


@contextmanager
def orthanc_server() -> Iterator[Orthanc]:
    if not (os.path.exists(ORTHANC) or shutil.which(ORTHANC)):
        missing("Orthanc not installed (Debian packages orthanc, orthanc-dicomweb)")
    if not os.path.exists(DICOMWEB_PLUGIN):
        missing(f"the Orthanc DICOMweb plugin is not installed ({DICOMWEB_PLUGIN})")
    workdir = Path(tempfile.mkdtemp(prefix="cxr-orthanc-"))
    storage = workdir / "storage"
    storage.mkdir()
    http_port, dicom_port, portal_port = free_port(), free_port(), free_port()
    config = workdir / "orthanc.json"
    config.write_text(json.dumps(_config(http_port, dicom_port, storage, portal_port)))
    log = (workdir / "orthanc.log").open("wb")
    process = subprocess.Popen([ORTHANC, "--no-jobs", str(config)], stdout=log,
                               stderr=subprocess.STDOUT, cwd=workdir)
    server = Orthanc(http_port, dicom_port, storage)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError("Orthanc exited at start:\n"
                                   + (workdir / "orthanc.log").read_text(errors="replace")[-3000:])
            try:
                response = requests.get(f"{server.url}/system", auth=(PACS_USER, PACS_PASSWORD),
                                        timeout=2)
                if response.ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Orthanc did not answer within 60 s")
            time.sleep(0.2)
        plugins = requests.get(f"{server.url}/plugins", auth=(PACS_USER, PACS_PASSWORD),
                               timeout=5).json()
        assert "dicom-web" in plugins, f"the DICOMweb plugin did not load: {plugins}"
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def load_test_studies(server: Orthanc) -> dict[str, str]:
    """Load the shared CXR files (RG1 among them; read in place, never copied), a CR study
    with planted identifiers, a DX study and a CT study; the study UIDs by name."""
    if not SHARED_DICOM.is_dir():
        missing(f"real CXR DICOM files not found at {SHARED_DICOM}")
    for path in sorted(SHARED_DICOM.iterdir()):
        server.upload(path.read_bytes())
    studies: dict[str, str] = {"rg1": RG1_STUDY}
    phi = cr_dataset(seed=11, phi=True)
    phi.StudyDate = "20210405"
    dx = cr_dataset(96, 80, modality="DX", seed=12, PatientID=DX_PATIENT_ID,
                    StudyDescription="Chest PA for teaching", StudyDate="20220110",
                    AccessionNumber="ACC-DX-1")
    ct = cr_dataset(modality="CT", seed=13, PatientID="CT-PAT-1", StudyDate="20220111",
                    StudyDescription="CT chest", SOPClassUID=CTImageStorage)
    ct.file_meta.MediaStorageSOPClassUID = CTImageStorage
    for name, ds in (("phi", phi), ("dx", dx), ("ct", ct)):
        server.upload(to_bytes(ds))
        studies[name] = str(ds.StudyInstanceUID)
    return studies
