"""Render time of the programme's QC figures, by hand:

    .venv/bin/python bench/qc_figures.py [--runs 5] [--reads-per-reader 30]

Not a test, no database: synthetic QC reads of 2,000 readers in 95 clinics (a few readers
well off target, so the funnel names some), drawn as the funnel plot per clinic and per
reader, and a CUSUM chart of one reader's 5,000 reads. Each figure is timed from the reads
(the series, then the PNG drawn afresh: the PNG cache bypassed), alternating with the
certification figure of the same 95 clinics' 2,000 readers' exam scores (the peer: the
dashboard's figure a lead already waits for). Prints the median of N runs of each and, on
the last line, the slowest QC figure's ratio to the peer.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask
from flask_babel import Babel

from app.certification import figures as certification
from app.qc import figures as qc
from app.qc.measures import QC_GRADES, QcRead

CLINICS, READERS, CUSUM_READS = 95, 2000, 5000
TARGET = 0.05


def synthetic_reads(rng: random.Random, per_reader: int) -> list[QcRead]:
    reads = []
    order = 0
    minor = [g for g in QC_GRADES if g != "3b"]
    for reader in range(READERS):
        rate = TARGET * (4 if rng.random() < 0.02 else 1)
        for k in range(max(1, int(rng.gauss(per_reader, per_reader / 3)))):
            order += 1
            grade = "3b" if rng.random() < rate else rng.choice(minor)
            reads.append(QcRead(reader, reader % CLINICS, "KE",
                                date(2025, 1, 1) + timedelta(days=k), True, True, grade,
                                order))
    return reads


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reads-per-reader", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(17)
    reads = synthetic_reads(rng, args.reads_per_reader)
    one_reader = [QcRead(1, 1, "KE", date(2020, 1, 1) + timedelta(days=k // 3), True, True,
                         "3b" if rng.random() < TARGET else "1", k)
                  for k in range(CUSUM_READS)]
    clinic_labels = {c: f"KE · Clinic {c:03d}" for c in range(CLINICS)}
    reader_labels = {r: f"Reader {r:04d}" for r in range(READERS)}
    scores = tuple(
        (clinic_labels[c],
         tuple(rng.random() for _ in range(READERS // CLINICS)),
         tuple(rng.random() for _ in range(READERS // CLINICS)))
        for c in range(CLINICS))

    app = Flask(__name__)
    Babel(app)
    figures: dict[str, Callable[[], object]] = {
        "peer: certification figure, 95 clinics": lambda: certification._png.__wrapped__(
            scores, "Programme", "en"),
        "funnel per clinic (95)": lambda: qc._funnel_png.__wrapped__(
            qc.funnel_series(reads, "clinic", TARGET, clinic_labels, "Programme"), "en"),
        "funnel per reader (2,000)": lambda: qc._funnel_png.__wrapped__(
            qc.funnel_series(reads, "reader", TARGET, reader_labels, "Programme"), "en"),
        "CUSUM of 5,000 reads": lambda: qc._cusum_png.__wrapped__(
            qc.cusum_series(one_reader, TARGET, "Reader"), "en"),
    }
    times: dict[str, list[float]] = {name: [] for name in figures}
    with app.test_request_context():
        for work in figures.values():  # imports, fonts, the CUSUM design: not timed
            work()
        for _ in range(args.runs):
            for name, work in figures.items():
                times[name].append(timed(work))
    print(f"{len(reads):,} QC reads of {READERS:,} readers in {CLINICS} clinics; "
          f"median of {args.runs} runs")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"  {name}: {value:.0f} ms")
    peer = medians.pop("peer: certification figure, 95 clinics")
    slowest = max(medians, key=lambda k: medians[k])
    print(f"slowest QC figure ({slowest}) {medians[slowest]:.0f} ms = "
          f"{medians[slowest] / peer:.2f}x the certification figure's {peer:.0f} ms")


if __name__ == "__main__":
    main()
