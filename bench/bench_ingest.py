"""Ingest against Orthanc, by hand (not a test):

    .venv/bin/python bench/bench_ingest.py [--repeat 3] [--batch 200] [--cli-repeat 3]
                                           [--skip-batch] [--skip-cli] [--skip-big]

Each file goes through the real import path (app.cases.ingest.import_files: read, sandboxed
parse, de-identification, every derivative, storage, database); Orthanc 1.10 (Debian) gets
the same file by POST /instances and renders it once by GET /instances/<id>/rendered
?width=1024. Peers alternate A B A B in one run. Prints:

- decoders: CPU per decoder and transfer syntax for RG1 (what pixels.PREFERRED_PLUGINS
  chose from), and where one import's CPU goes (RG1 uncompressed and J2K lossless);
- CPU per image (process CPU, not wall): ours = this process (storing) + the sandbox's
  server and its children; Orthanc = its process, from /proc/<pid>/stat;
- peak memory for a 3000 x 3000 16-bit image: the sandboxed child, the process tree,
  Orthanc's process;
- a batch of N RG1-sized files (distinct pixels and UIDs): files/s on one core and on
  both (INGEST_WORKERS), Orthanc's upload + render rate (one client, file after file), peak
  RSS per child and of the tree, in the first and second half of the batch;
- ``cxr-academy cases import one.dcm`` wall time and CPU (whole process, fresh instance, queue
  "immediate" so that the command parses the file itself) against Orthanc's upload wall.

The last line gives the ratios against Orthanc and the targets.
"""

from __future__ import annotations

import argparse
import copy
import io
import multiprocessing.forkserver
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pydicom
import requests
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import get_decoder
from pydicom.uid import JPEGLosslessSV1, JPEGLSLossless, RLELossless, generate_uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.orthanc
from app import create_app
from app.cases import pixels
from app.cases.ingest import ImportOptions, Source, import_files, sources_from_paths
from app.cases.models import Case, CaseImage
from app.cases.processing import ProcessOptions, process_dicom
from app.cases.sandbox import start_server
from app.extensions import db
from tests.dicom_factory import cr_dataset, to_bytes
from tests.orthanc import orthanc_server

sys.path.insert(0, str(ROOT / "bench"))
from ingest_peer import (
    AUTH,
    GDCM_PLUGIN,
    orthanc_forget,
    orthanc_ingest,
    orthanc_pid,
    with_gdcm,
)

FILES = ("RG1_UNCR.dcm", "RG1_J2KR.dcm")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- /proc readings


def cpu_of(pid: int, *, children: bool = False) -> float:
    """utime + stime (and the reaped children's, if asked) of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICKS


def rss_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


def hwm_of(pid: int) -> int:
    """VmHWM: the process's peak resident memory so far."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def private_of(pid: int) -> int:
    """Private_Clean + Private_Dirty: what the process does not share with the sandbox's
    server (its preloaded modules are shared, copy on write)."""
    try:
        total = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
        return total
    except (FileNotFoundError, ProcessLookupError):
        return 0


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found += [int(t) for t in text]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def forkserver_pid() -> int:
    server = multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]
    pid = server._forkserver_pid
    assert pid is not None, "the sandbox's server is not running"
    return int(pid)


def importing_cpu() -> float:
    """This process, all threads: the importing process (and this benchmark's watch)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def ours_cpu() -> float:
    """This process (all threads) + the sandbox's server and its reaped children."""
    return importing_cpu() + cpu_of(forkserver_pid(), children=True)


class MemoryWatch:
    """Samples every few ms: peak VmHWM of any sandboxed child, peak RSS of the tree (this
    process + the sandbox's server + its children), per half of the watch (set ``half``)."""

    def __init__(self, every: float = 0.01) -> None:
        self.every = every
        self.cpu = 0.0  # this watch's own CPU (its thread's), not the import's
        # Peaks per slot: the part of the run being watched (set ``half``).
        self.child_peak: dict[Any, int] = defaultdict(int)
        self.child_private: dict[Any, int] = defaultdict(int)
        self.tree_peak: dict[Any, int] = defaultdict(int)
        self.main_peak: dict[Any, int] = defaultdict(int)
        self.half: Any = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me, server = os.getpid(), forkserver_pid()
        # Every 10 ms by default: VmHWM keeps a child's peak until it exits; reading /proc
        # more often would take the importing process's CPU (and its GIL) from the import it
        # measures. A batch's children live ~250 ms each: 50 ms sees each of them.
        while not self._stop.wait(self.every):
            kids = children_of(server)
            child = max((hwm_of(k) for k in kids), default=0)
            private = max((private_of(k) for k in kids), default=0)
            main = rss_of(me)
            tree = main + rss_of(server) + sum(rss_of(k) for k in kids)
            half = self.half
            self.child_peak[half] = max(self.child_peak[half], child)
            self.child_private[half] = max(self.child_private[half], private)
            self.main_peak[half] = max(self.main_peak[half], main)
            self.tree_peak[half] = max(self.tree_peak[half], tree)
            self.cpu = time.thread_time()

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def mb(n: float) -> str:
    return f"{n / 1024**2:.0f} MB"


# ---------------------------------------------------------------- the two peers


@contextmanager
def portal() -> Iterator[Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    app = create_app({"INSTANCE_PATH": str(folder), "TESTING": True,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'db.sqlite3'}",
                      "IMAGE_STORAGE_PATH": str(folder / "images"),
                      "JOB_QUEUE_URL": "immediate", "DEID_SECRET": "bench-secret-" * 3})
    start_server()
    with app.app_context():
        db.create_all()
        try:
            yield app
        finally:
            db.session.remove()
            shutil.rmtree(folder, ignore_errors=True)


def empty_library(app: Any) -> None:
    db.session.query(CaseImage).delete()
    db.session.query(Case).delete()
    db.session.commit()
    shutil.rmtree(app.config["IMAGE_STORAGE_PATH"], ignore_errors=True)


def ours_import(items: list[Any]) -> list[str]:
    summary = import_files(items, actor=None, options=ImportOptions(source="bench"))
    return [r.status for r in summary.results]


# ---------------------------------------------------------------- sections


def rg1_in(syntax: Any) -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    if syntax == JPEGLosslessSV1:
        ds.PixelData = encapsulate([imagecodecs.ljpeg_encode(ds.pixel_array,
                                                             bitspersample=int(ds.BitsStored))])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
    else:
        plugin = {JPEGLSLossless: "pyjpegls", RLELossless: "pylibjpeg"}[syntax]
        ds.compress(syntax, encoding_plugin=plugin, generate_instance_uid=False)
    return ds


def best_cpu(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times) * 1000


def decoders(repeat: int) -> None:
    print("Decoders, RG1, CPU ms (best of", repeat, "); * = the one pixels.py uses")
    sets = {"JPEG 2000 lossless": pydicom.dcmread(get_testdata_file("RG1_J2KR.dcm")),
            **{s.name.split(" Image")[0]: rg1_in(s)
               for s in (JPEGLSLossless, RLELossless, JPEGLosslessSV1)}}
    codecs = {"JPEG 2000 lossless": imagecodecs.jpeg2k_decode,
              JPEGLSLossless.name.split(" Image")[0]: imagecodecs.jpegls_decode,
              JPEGLosslessSV1.name.split(" Image")[0]: imagecodecs.ljpeg_decode}
    for label, ds in sets.items():
        syntax = ds.file_meta.TransferSyntaxUID
        decoder = get_decoder(syntax)
        chosen = pixels.PREFERRED_PLUGINS.get(syntax)
        row = []
        for plugin in decoder.available_plugins:
            ms = best_cpu(lambda p=plugin, d=decoder, x=ds: d.as_array(  # type: ignore[misc]
                x, decoding_plugin=p, **pixels.RAW_DECODING), repeat)
            row.append(f"{plugin}{'*' if plugin == chosen else ''} {ms:.0f}")
        if label in codecs:
            frame = next(generate_frames(ds.PixelData, number_of_frames=1))
            ms = best_cpu(lambda f=frame, c=codecs[label]: c(f), repeat)  # type: ignore[misc]
            star = "*" if syntax in pixels.IMAGECODECS_SYNTAXES else ""
            row.append(f"imagecodecs{star} {ms:.0f}")
        print(f"  {label:<42} " + ", ".join(row))


SPLIT = ("_read", "_decode_elements", "decoded_pixels", "pixel_hash", "deidentify",
         "make_derivatives", "_pipeline", "_params", "_render", "_fit", "_jpeg", "_png16",
         "keep_declared_image", "save_as")


def cpu_split(repeat: int) -> None:
    import cProfile
    import pstats

    options = ProcessOptions(secret=b"s" * 32)
    for name in FILES:
        data = Path(get_testdata_file(name)).read_bytes()
        total = best_cpu(lambda d=data: process_dicom(d, options), repeat)  # type: ignore[misc]
        profile = cProfile.Profile()
        profile.runcall(process_dicom, data, options)
        stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        parts = {}
        for (path, _, function), value in stats.items():
            if function in SPLIT and ("/app/" in path or function == "save_as"):
                parts[function] = parts.get(function, 0) + value[3] * 1000
        shown = ", ".join(f"{k} {parts[k]:.0f}" for k in SPLIT if parts.get(k, 0) >= 1)
        print(f"  {name}: {total:.0f} ms CPU in-process (profiled, ms: {shown})")


def renamed(name: str) -> bytes:
    """The file with new study, series and instance UIDs; its Pixel Data untouched."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def per_image(app: Any, server: Any, orthanc: int, repeat: int) -> dict[str, float]:
    print(f"\nCPU per image, ms (A B A B, {repeat} rounds; median)")
    ratios = {}
    for name in FILES:
        ours, theirs = [], []
        data = renamed(name)
        empty_library(app)  # a warm-up of each, untimed (Orthanc loads its plugins' codecs)
        ours_import([Source(name, lambda d=data: d)])
        orthanc_forget(server, orthanc_ingest(server, data))
        for _ in range(repeat):
            # New UIDs each round: Orthanc keeps what it decoded of an instance by its id,
            # even past the instance's deletion, and a known id would be rendered from that.
            data = renamed(name)
            empty_library(app)
            before = ours_cpu()
            assert ours_import([Source(name, lambda d=data: d)]) == ["imported"]
            ours.append((ours_cpu() - before) * 1000)
            before = cpu_of(orthanc)
            instance = orthanc_ingest(server, data)
            theirs.append((cpu_of(orthanc) - before) * 1000)
            orthanc_forget(server, instance)
        a, b = statistics.median(ours), statistics.median(theirs)
        ratios[name] = a / b
        print(f"  {name:<14} ours {a:6.0f}  Orthanc upload + render {b:6.0f}  = {a / b:.2f}x"
              f"   (ours {[round(x) for x in ours]}, Orthanc {[round(x) for x in theirs]})")
    return ratios


def big_image(app: Any, server: Any, orthanc: int) -> tuple[int, int]:
    ds = cr_dataset(8, 8, bits_stored=16, seed=3)
    ds.Rows = ds.Columns = 3000
    rng = np.random.default_rng(3)
    ds.PixelData = rng.integers(0, 2**16, (3000, 3000), dtype=np.uint16).tobytes()
    data = to_bytes(ds)
    empty_library(app)
    with MemoryWatch() as watch:
        assert ours_import([Source("big", lambda: data)]) == ["imported"]
    instance = orthanc_ingest(server, data)
    theirs = hwm_of(orthanc)
    orthanc_forget(server, instance)
    print(f"\n3000 x 3000 16-bit image: sandboxed child peak RSS {mb(watch.child_peak[0])} "
          f"(private {mb(watch.child_private[0])}), tree peak {mb(watch.tree_peak[0])} "
          f"(importing process {mb(watch.main_peak[0])}, which also holds this benchmark); "
          f"Orthanc's process peak (VmHWM) {mb(theirs)}")
    return watch.child_peak[0], watch.tree_peak[0]


def write_batch(folder: Path, count: int) -> list[Path]:
    """RG1 with distinct pixels (one value changed) and UIDs: one case each."""
    base = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    paths = []
    for n in range(count):
        ds = copy.deepcopy(base)
        pixels_of = ds.pixel_array.copy()
        pixels_of[0, :4] = [n & 0xFF, n >> 8, 7, 11]
        ds.PixelData = pixels_of.tobytes()
        ds.StudyInstanceUID = ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        paths.append(folder / f"{n:04d}.dcm")
        paths[-1].write_bytes(out.getvalue())
    return paths


def batch(app: Any, server: Any, count: int) -> dict[str, float]:
    """One core and both alternate by quarters of the batch (A B A B): a machine whose load
    changes meanwhile slows both alike. Memory is compared between the halves."""
    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        paths = write_batch(folder, count)
        print(f"\nBatch of {count} RG1-sized files (uncompressed, distinct pixels and UIDs), "
              "one core and both alternating by quarters")
        items = list(sources_from_paths([folder]))
        quarter = max(count // 4, 1)
        parts = [items[:quarter], items[quarter:2 * quarter], items[2 * quarter:3 * quarter],
                 items[3 * quarter:]]
        seconds = {1: 0.0, 2: 0.0}
        # CPU of the importing process and of the children, per setting: with one child the
        # importing process already stores on the other core, so two children can be at
        # most 2 x children / (children + importing) times as fast on two cores.
        parent_cpu = {1: 0.0, 2: 0.0}
        children_cpu = {1: 0.0, 2: 0.0}
        with MemoryWatch(every=0.05) as watch:
            for n, part in enumerate(parts * 2):
                # Quarters 0-3 with one core taking 0 and 2, then 0-3 again with the roles
                # swapped: each setting imports every file once.
                workers = 1 + int(n % 2 != n // 4)
                app.config["INGEST_WORKERS"] = workers
                watch.half = (workers, 0 if n % 4 < 2 else 1)
                started = time.monotonic()
                parent0 = importing_cpu() - watch.cpu
                children0 = cpu_of(forkserver_pid(), children=True)
                statuses = ours_import(part)
                seconds[workers] += time.monotonic() - started
                parent_cpu[workers] += importing_cpu() - watch.cpu - parent0
                children_cpu[workers] += cpu_of(forkserver_pid(), children=True) - children0
                assert statuses == ["imported"] * len(part), set(statuses)
                if n % 4 == 3:
                    empty_library(app)
        rates: dict[str, float] = {}
        for workers in (1, 2):
            first, second = (workers, 0), (workers, 1)
            rates[f"ours{workers}"] = count / seconds[workers]
            print(f"  ours, {workers} core{'s' if workers > 1 else ''}: "
                  f"{rates[f'ours{workers}']:5.2f} files/s; peak child "
                  f"{mb(watch.child_peak[first])} / {mb(watch.child_peak[second])} (private "
                  f"{mb(watch.child_private[first])} / {mb(watch.child_private[second])}), "
                  f"importing process {mb(watch.main_peak[first])} / "
                  f"{mb(watch.main_peak[second])}, tree {mb(watch.tree_peak[first])} / "
                  f"{mb(watch.tree_peak[second])} (first / second half); CPU per file: "
                  f"importing process {parent_cpu[workers] / count * 1000:.0f} ms, children "
                  f"{children_cpu[workers] / count * 1000:.0f} ms")
        child, parent = children_cpu[2] / count, parent_cpu[2] / count
        rates["bound"] = 2 * child / (child + parent)
        print(f"  two cores can give at most 2 x children / (children + importing) = "
              f"{rates['bound']:.2f}x one core (CPU, robust to load)")
        started = time.monotonic()
        instances = [orthanc_ingest(server, path.read_bytes()) for path in paths]
        orthanc_seconds = time.monotonic() - started
        rates["orthanc"] = count / orthanc_seconds
        print(f"  Orthanc upload + render, one client: {rates['orthanc']:5.2f} files/s")
        for instance in instances:
            orthanc_forget(server, instance)
        return rates
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def cli_wall(server: Any, repeat: int) -> tuple[float, float]:
    rg1 = get_testdata_file("RG1_UNCR.dcm")
    data = Path(rg1).read_bytes()
    command = [str(Path(sys.executable).with_name("cxr-academy")), "cases", "import", rg1]
    ours, theirs, cpu = [], [], []
    print(f"\n`cxr-academy cases import RG1_UNCR.dcm`, whole process, wall s ({repeat} rounds)")
    for _ in range(repeat):
        folder = Path(tempfile.mkdtemp(prefix="bench-cli-"))
        env = {**os.environ, "CXR_ACADEMY_INSTANCE_PATH": str(folder),
               "CXR_ACADEMY_JOB_QUEUE_URL": "immediate", "PYTHONPATH": str(ROOT)}
        subprocess.run([command[0], "db", "upgrade"], env=env, check=True,
                       capture_output=True)
        started = time.monotonic()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, env=env, check=True, capture_output=True)
        ours.append(time.monotonic() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # The command and its reaped children (the sandbox's children, not its server,
        # which loads on the other core meanwhile and is not waited for).
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        shutil.rmtree(folder, ignore_errors=True)
        started = time.monotonic()
        answer = requests.post(f"{server.url}/instances", data=data, auth=AUTH, timeout=60)
        theirs.append(time.monotonic() - started)
        orthanc_forget(server, answer.json()["ID"])
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"  ours {a:.2f} s {[round(x, 2) for x in ours]} (CPU of the command "
          f"{statistics.median(cpu):.2f} s {[round(x, 2) for x in cpu]}); Orthanc upload "
          f"{b * 1000:.0f} ms = {a / b:.0f}x")
    return a, b, statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--cli-repeat", type=int, default=3)
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--cli-only", action="store_true",
                        help="only the cases import command against Orthanc's upload")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores")
    if not Path(GDCM_PLUGIN).exists():
        raise SystemExit(f"Orthanc's GDCM plugin is needed to render JPEG 2000: {GDCM_PLUGIN}")
    tests.orthanc._config = with_gdcm(tests.orthanc._config)  # type: ignore[assignment]
    if not args.cli_only:
        decoders(args.repeat)
        print("Where one import's CPU goes (in-process, no sandbox)")
        cpu_split(args.repeat)
    last: list[str] = []
    with portal() as app, orthanc_server() as server:
        orthanc = orthanc_pid(server)
        app.config["INGEST_WORKERS"] = 1
        if not args.skip_big and not args.cli_only:
            child, _tree = big_image(app, server, orthanc)
            last.append(f"3000x3000 child peak {mb(child)} (target <=150 MB)")
        if not args.cli_only:
            ratios = per_image(app, server, orthanc, args.repeat)
            last.insert(0, "CPU/image vs Orthanc upload+render: "
                        + ", ".join(f"{k.split('_')[1].split('.')[0]} {v:.2f}x" for k, v in
                                    ratios.items()) + " (target <=1.0x)")
        if not args.skip_batch and not args.cli_only:
            rates = batch(app, server, args.batch)
            last.append(f"batch 2 cores {rates['ours2'] / rates['ours1']:.2f}x one core "
                        f"(CPU bound {rates['bound']:.2f}x; target >=1.8x), "
                        f"{rates['ours2'] / rates['orthanc']:.2f}x Orthanc's rate "
                        "(target >=1.0x)")
        if not args.skip_cli:
            ours, theirs, cpu = cli_wall(server, args.cli_repeat)
            last.append(f"cases import one file {ours:.2f} s (CPU {cpu:.2f} s) = "
                        f"{ours / theirs:.0f}x Orthanc's upload (target <=2 s)")
    print(f"load average {os.getloadavg()}")
    print("; ".join(last))


if __name__ == "__main__":
    main()
