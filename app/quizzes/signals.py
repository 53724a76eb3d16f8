"""What happens to attempts, for other areas to act on without app.quizzes knowing them
(certification subscribes when its blueprint is registered).

Both are sent with the Flask application as sender, inside the transaction that made the
change: a receiver's writes commit or roll back with it.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# An attempt has ended with scores (submitted or timed out). Keyword: ``attempt``.
# The attempt's row is locked by the sending transaction until it commits.
attempt_ended = _signals.signal("attempt-ended")

# Ended attempts were scored again (reference reads changed). Keywords: ``exercise_ids``
# (the exercises whose attempts were re-scored) and ``changes`` (results.VerdictChange of
# each attempt whose pass/fail verdict changed). Sent after the new scores are committed;
# receivers commit their own work and return lines for the person who ran the re-scoring.
attempts_rescored = _signals.signal("attempts-rescored")

# An exercise is about to be deleted. Keyword: ``exercise``. Receivers return a reason the
# deletion must be refused (a sentence for the trainer), or None; nothing is deleted while
# any receiver objects.
exercise_deleting = _signals.signal("exercise-deleting")
