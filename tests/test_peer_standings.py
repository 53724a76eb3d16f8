"""The result page's peer percentile comes from running standings (app/quizzes/standings.py)
and equals the exact computation over the other trainees' latest ended attempts, through
attempts ending, re-scoring (accuracy up, down, to none), abandoned attempts and ties; it
reads a few rows whatever the number of attempts."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select

from app.auth.roles import Role
from app.extensions import db
from app.quizzes.models import (
    ENDED_STATES,
    Attempt,
    AttemptState,
    Exercise,
    PeerAccuracy,
    PeerStanding,
)
from app.quizzes.results import peer_percentile
from app.quizzes.standings import PEERS_NEEDED, rebuild_standings, refresh_standing
from tests.test_scoring_path import statements

# Few distinct values: many ties. None: an attempt without an accuracy (no decided case).
ACCURACIES = (0.0, 0.25, 0.5, 0.6, 2 / 3, 0.75, 1.0, None)


def exact_percentile(attempt: Attempt) -> tuple[float, int] | None:
    """The computation the standings replace: every ended attempt of the exercise loaded,
    each other trainee's latest (by attempt number) compared with this one."""
    mine = ((attempt.metrics or {}).get("metrics") or {}).get("accuracy")
    if mine is None:
        return None
    latest: dict[int, Attempt] = {}
    for other in db.session.scalars(select(Attempt).where(
            Attempt.exercise_id == attempt.exercise_id, Attempt.user_id != attempt.user_id,
            Attempt.state.in_(ENDED_STATES)).order_by(Attempt.number, Attempt.id)):
        latest[other.user_id] = other
    values = [v for a in latest.values()
              if (v := ((a.metrics or {}).get("metrics") or {}).get("accuracy")) is not None]
    if len(values) < PEERS_NEEDED:
        return None
    below = sum(1 for v in values if v < mine) + 0.5 * sum(1 for v in values if v == mine)
    return 100.0 * below / len(values), len(values)


def _exercise(title: str = "Peers") -> Exercise:
    exercise = Exercise(title=title, kind="practice", scheme_key="ds3030", scheme_version=1)
    db.session.add(exercise)
    db.session.flush()
    return exercise


def _score(attempt: Attempt, accuracy: float | None) -> None:
    """What results.finalise stores of an attempt's accuracy, then the standings' refresh."""
    attempt.metrics = {"metrics": {"accuracy": accuracy}}
    attempt.accuracy = accuracy
    db.session.flush()
    refresh_standing(attempt.exercise_id, attempt.user_id)


def _assert_exact(exercise: Exercise) -> None:
    for attempt in db.session.scalars(select(Attempt).where(
            Attempt.exercise_id == exercise.id, Attempt.state.in_(ENDED_STATES))):
        assert peer_percentile(attempt) == exact_percentile(attempt), attempt.id


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_peer_percentile_equals_the_exact_computation_on_random_histories(app, make_user,
                                                                          seed):
    rng = random.Random(seed)
    exercise, other = _exercise(), _exercise("Another exercise")
    trainees = [make_user(Role.TRAINEE_RADIOLOGIST) for _ in range(12)]
    numbers = dict.fromkeys((t.id for t in trainees), 0)
    for step in range(160):
        trainee = rng.choice(trainees)
        ended = db.session.scalars(select(Attempt).where(
            Attempt.user_id == trainee.id, Attempt.exercise_id == exercise.id,
            Attempt.state.in_(ENDED_STATES))).all()
        action = rng.random()
        if ended and action < 0.35:  # re-scored: its accuracy changes (or not)
            _score(rng.choice(ended), rng.choice(ACCURACIES))
        else:
            numbers[trainee.id] += 1
            abandoned = action > 0.9  # a later attempt that never ended counts for nothing
            attempt = Attempt(
                exercise_id=(other if action < 0.45 else exercise).id, user_id=trainee.id,
                number=numbers[trainee.id], case_order=[],
                state=(AttemptState.ABANDONED if abandoned else
                       rng.choice([AttemptState.SUBMITTED, AttemptState.TIMED_OUT])).value)
            db.session.add(attempt)
            db.session.flush()
            if not abandoned:
                _score(attempt, rng.choice(ACCURACIES))
        if step % 20 == 19:
            _assert_exact(exercise)
            _assert_exact(other)
    db.session.commit()
    _assert_exact(exercise)
    # Recounted from the attempts (as the migration fills them), the figures are the same.
    kept = sorted(db.session.execute(select(PeerAccuracy.exercise_id, PeerAccuracy.accuracy,
                                            PeerAccuracy.readers)
                                     .where(PeerAccuracy.readers > 0)).all())
    rebuild_standings()
    assert sorted(db.session.execute(select(PeerAccuracy.exercise_id, PeerAccuracy.accuracy,
                                            PeerAccuracy.readers)).all()) == kept
    _assert_exact(exercise)


def test_peer_percentile_reads_no_attempt(app, make_user):
    exercise = _exercise()
    attempts = []
    for n in range(30):
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        for number in (1, 2):
            attempt = Attempt(exercise_id=exercise.id, user_id=trainee.id, number=number,
                              case_order=[], state=AttemptState.SUBMITTED.value)
            db.session.add(attempt)
            db.session.flush()
            _score(attempt, (n % 7) / 7)
            attempts.append(attempt)
    db.session.commit()
    mine = attempts[-1]
    db.session.refresh(mine)  # loaded, as the result page has it
    with statements() as sent:
        found = peer_percentile(mine)
    assert found == exact_percentile(mine) and found is not None and found[1] == 29
    assert len(sent) == 1 and " attempt" not in sent[0].replace("attempt_id", "")
    # A histogram row per distinct accuracy, a standing per trainee: not per attempt.
    assert db.session.scalar(select(func.count()).select_from(PeerAccuracy)) == 7
    assert db.session.scalar(select(func.count()).select_from(PeerStanding)) == 30
