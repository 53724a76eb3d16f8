"""De-identification refusals and PACS failures in the reader's language: the sentence is
translated, the DICOM names and technical details in it are kept as they are and marked
translate="no"; the stored (and API) text stays English."""

from __future__ import annotations

import io

import pydicom
import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from app.auth.roles import Role
from app.extensions import db
from app.jobs.models import JobItem
from app.pacs.models import PacsEndpoint
from tests.conftest import login
from tests.forms import submit_form
from tests.realservers import free_port
from tests.test_i18n_library import speaks
from tests.test_ingest import SHARED_DICOM

REAL_CR = SHARED_DICOM / "RG1_UNCR.dcm"


def _refusal(page) -> BeautifulSoup:
    soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    reason = soup.select_one('[data-testid="file-result"] .reason')
    assert reason is not None, page.get_data(as_text=True)
    return reason


def _without_names(element: BeautifulSoup) -> str:
    """The element's text with what is marked translate="no" taken out."""
    copy = BeautifulSoup(str(element), "html.parser")
    for kept in copy.select('[translate="no"]'):
        kept.replace_with("«»")
    return " ".join(copy.get_text().split())


def _real_cr_with(**changes: object) -> bytes:
    if not REAL_CR.is_file():
        pytest.fail(f"real CXR DICOM file not found at {REAL_CR}")
    ds = pydicom.dcmread(REAL_CR)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


@pytest.mark.parametrize(("changes", "english", "french", "names"), [
    ({"SOPClassUID": "1.2.3.4.5"},
     "SOPClassUID (0008,0016) is not a registered DICOM SOP Class",
     "«» n'est pas une classe SOP DICOM enregistrée",
     ["SOPClassUID (0008,0016)"]),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1.1", "Modality": "DX", "RescaleSlope": "0"},
     "RescaleSlope (0028,1053) must hold one number other than zero",
     "«» doit contenir un nombre autre que zéro",
     ["RescaleSlope (0028,1053)"]),
])
def test_a_french_trainer_reads_a_de_identification_refusal_in_french(
        client, login_as, changes, english, french, names):
    trainer = speaks(login_as(Role.TRAINER), "fr")
    data = _real_cr_with(**changes)
    report = submit_form(client, "/cases/upload", button="Importer", follow_redirects=True,
                         fields={"files": [(io.BytesIO(data), "chest.dcm")]})
    assert report.status_code == 200
    reason = _refusal(report)
    assert _without_names(reason) == french
    assert [n.get_text() for n in reason.select('[translate="no"]')] == names
    # Stored as written, in English: the API and the logs read it so.
    assert db.session.scalars(select(JobItem.reason)).one() == english
    # The job page (opened again later) says the same.
    job_id = db.session.scalars(select(JobItem.job_id)).one()
    again = client.get(f"/jobs/{job_id}")
    assert _without_names(_refusal(again)) == french
    assert trainer.language == "fr"


@pytest.mark.parametrize(("kind", "fields", "spanish", "detail"), [
    ("dimse", {"host": "127.0.0.1", "called_ae": "PACS", "calling_ae": "CXRACADEMY"},
     "La conexión falló: no se pudo contactar con el PACS en «»:{port} (conexión rechazada, "
     "sin respuesta o asociación interrumpida).", ["127.0.0.1"]),
    ("dicomweb", {"url": "http://127.0.0.1:{port}/dicom-web"},
     "La conexión falló: no se pudo contactar con el PACS (conexión rechazada o sin ruta): "
     "compruebe la URL y que el PACS esté en funcionamiento.", None),
])
def test_a_failed_pacs_connection_test_is_said_in_spanish(client, make_user, kind, fields,
                                                          spanish, detail):
    admin = speaks(make_user(Role.ADMIN), "es")
    login(client, admin.username)
    port = free_port()  # nothing listens there: the connection is refused
    given = {name: value.format(port=port) for name, value in fields.items()}
    if kind == "dimse":
        given["port"] = str(port)
    added = submit_form(client, "/pacs/endpoints", button="Añadir el punto de acceso",
                        fields={"name": "Cerrado", "kind": kind, **given},
                        follow_redirects=True)
    assert added.status_code == 200, added.get_data(as_text=True)
    endpoint = db.session.scalars(select(PacsEndpoint)).one()
    tested = submit_form(client, f"/pacs/endpoints/{endpoint.id}", button="Probar la conexión")
    assert tested.status_code == 502
    soup = BeautifulSoup(tested.get_data(as_text=True), "html.parser")
    result = soup.select_one('[data-testid="connection-result"]')
    assert _without_names(result) == spanish.format(port=port)
    if detail is not None:  # the host is a name; the port, a number, needs no mark
        assert [n.get_text() for n in result.select('[translate="no"]')] == detail
