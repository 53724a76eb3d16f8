"""Sessions end after 30 minutes without activity and 12 hours after sign-in, with a
browser-session cookie; "remember this device" makes the cookie persistent (7 days) and
spares trainee-only accounts the idle end; a trainee with a timed exam open is never signed
out mid-exam. Time is moved with freezegun."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import UserSession
from app.auth.roles import Role
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt
from tests.conftest import PASSWORD, csrf_token, login, sign_out
from tests.forms import submit_form
from tests.test_attempts import cases, exam_cases, post_start, practice, save_url  # noqa: F401
from tests.test_audit_log import rows

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
IDLE_SENTENCE = "signed out after 30 minutes without activity"


def sign_in(client, user, *, remember: bool = False, next: str | None = None):
    page = "/auth/login" + (f"?next={next}" if next else "")
    fields = {"username": user.username, "password": PASSWORD}
    if remember:
        fields["remember"] = "y"
    response = submit_form(client, page, button="Sign in", fields=fields)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def session_cookie(response) -> str:
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("cxr_session=")]
    return cookie


def signed_in(client) -> bool:
    return client.get("/training/").status_code == 200


@pytest.fixture
def frozen():
    with freeze_time(T0) as clock:
        yield clock


def test_thirty_minutes_idle_lead_to_sign_in_with_the_reason_and_the_way_back(
        client, make_user, frozen):
    user = make_user()
    sign_in(client, user)
    frozen.tick(timedelta(minutes=31))
    away = client.get("/training/")
    assert away.status_code == 302
    target = urlsplit(away.headers["Location"])
    assert target.path == "/auth/login"
    assert parse_qs(target.query)["next"] == ["/training/"]
    page = client.get(away.headers["Location"]).get_data(as_text=True)
    assert IDLE_SENTENCE in page
    row = db.session.scalars(select(UserSession)).one()
    assert row.ended_at is not None  # ended on the server, not merely forgotten
    back = submit_form(client, away.headers["Location"], button="Sign in",
                       fields={"username": user.username, "password": PASSWORD})
    assert back.headers["Location"] == "/training/"


def test_activity_keeps_the_session_and_29_idle_minutes_are_not_enough(client, make_user, frozen):
    sign_in(client, make_user())
    for _ in range(8):  # four hours of a request every 29 minutes
        frozen.tick(timedelta(minutes=29))
        assert signed_in(client)


def test_twelve_hours_after_sign_in_the_session_ends_even_when_active(client, make_user, frozen):
    sign_in(client, make_user())
    for _ in range(24):
        frozen.tick(timedelta(minutes=29))
        assert signed_in(client)
    frozen.tick(timedelta(minutes=29))  # 12 h 5 min after sign-in
    assert not signed_in(client)


def test_json_requests_after_the_idle_end_get_401_with_the_reason(client, make_user, frozen):
    sign_in(client, make_user())
    frozen.tick(timedelta(minutes=31))
    response = client.get("/training/", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert IDLE_SENTENCE in response.get_data(as_text=True)


def test_without_remember_the_cookie_is_a_browser_session_cookie(client, make_user, frozen):
    response = sign_in(client, make_user())
    cookie = session_cookie(response).lower()
    assert "expires=" not in cookie and "max-age" not in cookie
    assert "httponly" in cookie


def test_a_remembered_trainee_keeps_the_sign_in_across_idle_time_up_to_seven_days(
        client, make_user, frozen):
    response = sign_in(client, make_user(Role.TRAINEE_RADIOGRAPHER), remember=True)
    cookie = session_cookie(response)
    assert "Expires=" in cookie
    expires = datetime.strptime(cookie.split("Expires=")[1].split(";")[0],
                                "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert expires - T0 == timedelta(days=7)
    frozen.tick(timedelta(hours=20))
    assert signed_in(client)
    frozen.tick(timedelta(days=6, hours=5))
    assert not signed_in(client)


@pytest.mark.parametrize("role", [Role.TRAINER, Role.PROGRAMME_LEAD, Role.ADMIN])
def test_privileged_roles_keep_the_idle_and_12_hour_limits_on_a_remembered_device(
        client, make_user, frozen, role):
    # Through the second factor these roles sign in with; any signed-in page will do.
    login(client, make_user(role).username, remember=True)
    home = "/auth/password"
    frozen.tick(timedelta(minutes=29))
    assert client.get(home).status_code == 200
    frozen.tick(timedelta(minutes=31))
    away = client.get(home)
    assert away.status_code == 302 and "/auth/login" in away.headers["Location"]
    assert IDLE_SENTENCE in client.get(away.headers["Location"]).get_data(as_text=True)


def test_a_trainee_gaining_a_privileged_role_loses_the_remembered_exemption(
        client, make_user, frozen):
    from app.auth.services import update_user

    user = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(client, user, remember=True)
    update_user(user, roles=[Role.TRAINEE_RADIOLOGIST, Role.TRAINER], clinic=user.clinic,
                lead_countries=[], lead_all_countries=False)
    frozen.tick(timedelta(minutes=31))
    assert not signed_in(client)


@pytest.fixture
def long_exam(exam_cases):  # noqa: F811
    return create_exercise(title="Long exam", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in exam_cases], actor=None,
                           time_limit_minutes=180, max_attempts=2, cooldown_hours=24)


def test_a_trainee_in_a_timed_exam_is_never_signed_out_mid_exam(client, make_user, frozen,
                                                               long_exam):
    sign_in(client, make_user(Role.TRAINEE_RADIOLOGIST))
    started = post_start(client, long_exam)
    assert started.status_code == 302
    attempt = db.session.scalars(select(Attempt)).one()
    assert attempt.deadline_at is not None
    token = csrf_token(client, started.headers["Location"])
    # 45 minutes on one case without a request (a lost connection, a long look): the save
    # when the page comes back is accepted, and so is one near the end of the 3 hours.
    for minutes in (45, 110):
        frozen.tick(timedelta(minutes=minutes))
        saved = client.post(save_url(attempt.id, 1),
                            json={"answers": {"overall": "normal"}, "marks": []},
                            headers={"X-CSRFToken": token})
        assert saved.status_code == 200, saved.get_data(as_text=True)


def test_a_timed_exam_outlives_the_12_hour_limit_until_its_deadline(client, make_user, frozen,
                                                                   long_exam):
    sign_in(client, make_user(Role.TRAINEE_RADIOLOGIST))
    for _ in range(23):  # 11 h 7 min of activity
        frozen.tick(timedelta(minutes=29))
        assert signed_in(client)
    started = post_start(client, long_exam)
    attempt = db.session.scalars(select(Attempt)).one()
    token = csrf_token(client, started.headers["Location"])
    frozen.tick(timedelta(hours=2))  # 13 h 7 min after sign-in, within the 3-hour exam
    saved = client.post(save_url(attempt.id, 1),
                        json={"answers": {"overall": "normal"}, "marks": []},
                        headers={"X-CSRFToken": token})
    assert saved.status_code == 200
    frozen.tick(timedelta(hours=2))  # past the exam's deadline: the usual limits again
    assert not signed_in(client)


def test_an_open_practice_page_stays_signed_in_through_its_autosave_heartbeat(
        client, make_user, frozen, practice):  # noqa: F811
    sign_in(client, make_user(Role.TRAINEE_RADIOLOGIST))
    started = post_start(client, practice)
    attempt = db.session.scalars(select(Attempt)).one()
    token = csrf_token(client, started.headers["Location"])
    for _ in range(12):  # an hour of the page's 15-second saves, sampled every 5 minutes
        frozen.tick(timedelta(minutes=5))
        saved = client.post(save_url(attempt.id, 1),
                            json={"answers": {"overall": "normal"}, "marks": []},
                            headers={"X-CSRFToken": token})
        assert saved.status_code == 200
    frozen.tick(timedelta(minutes=31))  # the page was closed: no exam protects practice
    assert not signed_in(client)


def _session_events() -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "session.ended")))


def test_the_idle_end_is_logged_once_for_the_user(client, make_user, frozen):
    user = make_user()
    sign_in(client, user)
    frozen.tick(timedelta(minutes=31))
    assert not signed_in(client)
    for _ in range(3):  # later requests with the same cookie find the session already ended
        frozen.tick(timedelta(minutes=5))
        assert not signed_in(client)
    [event] = _session_events()
    assert event.actor_id == user.id
    assert (event.object_type, event.object_id) == ("user", str(user.id))
    assert event.detail == {"reason": "idle"}
    assert event.occurred_at == T0 + timedelta(minutes=31)


def test_the_12_hour_end_is_logged_as_expired(client, make_user, frozen):
    user = make_user()
    sign_in(client, user)
    for _ in range(25):  # active all along, 12 h 5 min after sign-in
        frozen.tick(timedelta(minutes=29))
        signed_in(client)
    [event] = _session_events()
    assert event.actor_id == user.id and event.detail == {"reason": "expired"}


def test_no_session_end_is_logged_while_active_in_an_exam_or_after_sign_out(
        client, make_user, frozen, long_exam):
    sign_in(client, make_user(Role.TRAINEE_RADIOLOGIST))
    started = post_start(client, long_exam)
    frozen.tick(timedelta(minutes=45))  # idle, but in the exam
    assert client.get(started.headers["Location"]).status_code == 200
    sign_out(client, "/training/")
    frozen.tick(timedelta(hours=13))
    assert not signed_in(client)
    assert _session_events() == []


def test_the_idle_end_reads_as_a_sentence_in_the_audit_log(client, make_user, frozen):
    reader = make_user(username="wanjiru", full_name="Dr Wanjiru")
    admin = make_user(Role.ADMIN, username="boss")
    sign_in(client, reader)
    frozen.tick(timedelta(minutes=31))
    client.get("/training/")
    login(client, admin.username)
    table = rows(client.get("/admin/audit").get_data(as_text=True))
    [ended] = [row for row in table if row["What"] == "Session ended by time"]
    assert ended["Who"] == "Dr Wanjiru (wanjiru)"
    assert ended["Details"] == "Signed out by the portal after a time without activity."


def test_of_two_requests_racing_on_an_idle_session_only_one_logs_its_end(
        app, client, make_user, frozen, monkeypatch):
    from app.auth import sessions

    user = make_user()
    sign_in(client, user)
    frozen.tick(timedelta(minutes=31))

    def other_request_ends_it_first(user_id, now):
        # Another request of the same browser got there between this one's read of the
        # session and its update: it ended the session and logged that.
        with db.engine.begin() as conn:
            conn.execute(UserSession.__table__.update().values(ended_at=now))
        return False

    monkeypatch.setattr(sessions, "_KEEP_SIGNED_IN",
                        [*sessions._KEEP_SIGNED_IN, other_request_ends_it_first])
    assert not signed_in(client)
    assert _session_events() == []  # this request found it ended: not logged twice
    assert db.session.scalars(select(UserSession)).one().ended_at == T0 + timedelta(minutes=31)
