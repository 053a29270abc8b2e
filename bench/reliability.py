"""Reliability under concurrency and kill -9, on SQLite and PostgreSQL (docs/reliability.md).

    nice -n 19 .venv/bin/python bench/reliability.py                   # SQLite (a temp file)
    SRM_TEST_PG_URL=postgresql+psycopg://srm@127.0.0.1:54330/srm_test \\
        nice -n 19 .venv/bin/python bench/reliability.py               # ... and PostgreSQL

PostgreSQL runs when ``--pg-url``, ``$SRM_BENCH_PG_URL`` or ``$SRM_TEST_PG_URL`` names a server
whose role may CREATE DATABASE; each part gets a fresh database there, dropped afterwards.

1. **Concurrent label writes.** ``--processes`` processes start together and each makes
   ``--writes`` label writes through ``srm.store``, as the Annotate page does: read the pair's
   state, think for 0-5 ms, then ``record_label`` with the event id it saw, in one
   transaction, on one of ``--pairs`` pairs (few, so that writes collide). With accounts on
   (the default; ``--no-accounts`` for names without accounts) every two processes share one
   account, as one annotator in two tabs, each signing in first (``authenticate``): votes of
   different annotators never refuse each other, a tab behind its twin is refused. Every
   write ends *accepted* (committed), *refused as stale* (``StaleWriteError``: the same
   annotator's other tab wrote first), a
   *lock error* (SQLite's "database is locked", a PostgreSQL serialization failure or
   deadlock) or another error. Afterwards the store is read back: *lost* counts accepted
   writes whose event is not there, *phantom* events the store holds that no writer saw
   accepted, and the label log is replayed (``verify_label_log``).
2. **kill -9 of an import.** ``srm -v import`` of ``--import-pairs`` pairs runs once to time
   how long writing them to the store takes once the file is parsed (its "loaded N pairs" log
   line), then ``--kills`` times into a fresh dataset, each killed with SIGKILL at 10% to 80%
   of that time after the file is parsed (on PostgreSQL the report says how many kills found
   the import inside its transaction). After each kill the dataset must hold none of the
   pairs or all of them, SQLite's ``PRAGMA integrity_check`` must say ok, and importing again
   must complete.
3. **kill -9 of a score job.** ``srm score --job N`` of ``--score-pairs`` pairs with a tiny
   random model is killed with SIGKILL once the store holds some of its scores. The saved
   scores must be whole chunks (``srm.jobs.SCORE_CHUNK`` pairs per transaction), each a
   complete record; the job is then looked at as ``srm jobs`` does, and a new job must score
   every pair.
4. **Huge punctuation.** ``srm.segment.segment`` of ``--huge-chars`` (100,000) characters of
   each adversarial pattern (``"!!! "`` repeated took 12 s at 16,000 characters and four times
   as long at twice the length), and of twice as many: the time, and the ratio, about 2 when
   segmenting is linear.
5. **Slow clients.** ``srm serve`` with a tiny random model under a 1,024-descriptor limit
   (``ulimit -n``): ``--slow-clients`` (1,100) connections that send part of a request's
   headers and stop, then one request of ``--huge-chars`` characters of ``"!!! "``; meanwhile
   ``/health`` is asked every 0.2 s on a new connection (it once stopped answering, and the
   accept loop logged 51 MB of tracebacks in 5 s). Then a request of 64 such responses, and
   SIGTERM a second after it starts: how long the server takes to exit (once over 45 s).

6. **Signed-out uploads.** The app as ``make app`` starts it (``webapp/launch.py``), with
   passwords set, on a free loopback port; a client that mints its own XSRF token opens a
   websocket session, never signs in, asks for an upload address and PUTs a file there
   (``tests/upload_client.py``), ``--upload-puts`` (5) times, ``--upload-mb`` (60) MB each
   (five 190 MB PUTs once took the app from 488 MB to 1,440 MB, held while the socket stayed
   open). The status codes, the app's RSS (``VmRSS``) before the first PUT and after the last
   with the socket still open, and the seconds each PUT took to be refused.
   ``--upload-control`` repeats it against the app started without the guard, as before the
   fix (plain ``streamlit run``, whose script would install it only once a page runs, which
   this client never asks for; ``--server.maxUploadSize 200``, Streamlit's default).

    nice -n 19 .venv/bin/python bench/reliability.py --parts labels          # part 1 alone
    nice -n 19 .venv/bin/python bench/reliability.py --parts segment,serve   # parts 4 and 5
    nice -n 19 .venv/bin/python bench/reliability.py --parts upload          # part 6
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from store import synthetic_pairs
from stores import store_backends

from srm.data import write_jsonl
from srm.store import (
    LABELS,
    Dataset,
    LabelEvent,
    Score,
    StaleWriteError,
    TrainingJob,
    add_user,
    authenticate,
    count_pairs,
    import_pairs,
    label_state,
    list_pairs,
    make_engine,
    make_sessionmaker,
    open_store,
    record_label,
    register_model,
    verify_label_log,
)

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- label writes
def label_writer(
    url: str,
    worker: int,
    writes: int,
    pair_ids: list[int],
    start: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue,
    accounts: bool = True,
) -> None:
    """One annotator's tab: ``writes`` label writes; puts (counts, notes of accepted)."""
    engine = make_engine(url)
    reads = make_sessionmaker(engine, read_only=True)
    sessions = make_sessionmaker(engine)
    rng = random.Random(worker)
    counts: Counter[str] = Counter()
    accepted: list[str] = []
    name = annotator_name(worker, accounts)
    if accounts:
        with sessions.begin() as session:
            authenticate(session, name, ACCOUNT_PASSWORD)
    start.wait()
    for k in range(writes):
        pair_id = rng.choice(pair_ids)
        with reads() as session:
            seen = label_state(session, pair_id).event_id
        time.sleep(rng.uniform(0, 0.005))  # the annotator reads the pair
        note = f"w{worker}-{k}"
        try:
            with sessions.begin() as session:
                record_label(
                    session,
                    pair_id,
                    name,
                    rng.choice(LABELS),
                    expected_event_id=seen,
                    note=note,
                )
        except StaleWriteError:
            counts["stale"] += 1
        except DBAPIError as err:
            text = str(err.orig).lower()
            locked = ("locked", "could not serialize", "deadlock")
            counts["lock" if any(word in text for word in locked) else "other"] += 1
        else:
            counts["accepted"] += 1
            accepted.append(note)
    engine.dispose()
    results.put((counts, accepted))


ACCOUNT_PASSWORD = "a bench annotator's password"


def annotator_name(worker: int, accounts: bool) -> str:
    """With accounts, two processes per account (one annotator's two tabs)."""
    return f"annotator-{worker // 2}" if accounts else f"annotator-{worker}"


def concurrent_label_writes(
    url: str, processes: int, writes: int, n_pairs: int, accounts: bool = True
) -> None:
    engine = open_store(url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        import_pairs(session, "labels", synthetic_pairs(n_pairs))
        if accounts:
            for name in sorted({annotator_name(w, True) for w in range(processes)}):
                add_user(session, name, "annotator", ACCOUNT_PASSWORD)
    with sessions() as session:
        pair_ids = [p.id for p in list_pairs(session, "labels", limit=n_pairs)]
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(processes), spawn.Queue()
    workers = [
        spawn.Process(
            target=label_writer, args=(url, i, writes, pair_ids, start, results, accounts)
        )
        for i in range(processes)
    ]
    began = time.perf_counter()
    for w in workers:
        w.start()
    counts: Counter[str] = Counter()
    accepted: set[str] = set()
    for _ in workers:
        worker_counts, notes = results.get()
        counts.update(worker_counts)
        accepted.update(notes)
    for w in workers:
        w.join()
    seconds = time.perf_counter() - began
    with sessions() as session:
        stored = set(session.scalars(select(LabelEvent.note)))
        problems = verify_label_log(session)
    engine.dispose()
    who = f"{(processes + 1) // 2} accounts, 2 tabs each" if accounts else "no accounts"
    print(
        f"  label writes, {processes} processes x {writes} on {n_pairs} pairs, {who} "
        f"({seconds:.0f} s):"
        f" accepted {counts['accepted']}, refused as stale {counts['stale']}, "
        f"lost {len(accepted - stored)}, phantom {len(stored - accepted)}, "
        f"lock errors {counts['lock']}, other errors {counts['other']}; "
        f"label log replay: {len(problems)} problems",
        flush=True,
    )


# ----------------------------------------------------------------------------- kill -9
def srm(*args: str, stderr: int = subprocess.DEVNULL) -> subprocess.Popen:
    """``python -m srm.cli ARGS`` in a process of its own, stdout discarded."""
    return subprocess.Popen(
        [PYTHON, "-m", "srm.cli", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )


def start_import(path: Path, url: str, dataset: str) -> tuple[subprocess.Popen, float]:
    """Start ``srm -v import`` and return once the file is parsed (its "loaded N preference
    pairs" log line), with the time: what follows is the write to the store."""
    process = srm(
        "-v", "import", str(path), "--db", url, "--dataset", dataset, stderr=subprocess.PIPE
    )
    for line in process.stderr:
        if "preference pairs from" in line:
            parsed = time.perf_counter()
            # Keep reading what it logs next (SQL at -v), or a full pipe would stall it.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, parsed
    raise SystemExit(f"srm import exited ({process.wait()}) without loading {path}")


def kill9(process: subprocess.Popen) -> bool:
    """SIGKILL ``process``; False when it had finished already."""
    if process.poll() is not None:
        return False
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return True


def dataset_pairs(url: str, name: str) -> tuple[bool, int]:
    """Whether the dataset row exists, and how many pairs it holds."""
    engine = make_engine(url)
    with make_sessionmaker(engine, read_only=True)() as session:
        exists = session.scalar(select(func.count()).where(Dataset.name == name)) > 0
        n = count_pairs(session, name) if exists else 0
    engine.dispose()
    return exists, n


def open_transactions(url: str) -> int:
    """PostgreSQL: how many other sessions of this database are inside a transaction (0 on
    SQLite, which cannot tell)."""
    if not url.startswith("postgresql"):
        return 0
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        ).scalar()
    engine.dispose()
    return n


def sqlite_integrity(url: str) -> str | None:
    if not url.startswith("sqlite"):
        return None
    engine = make_engine(url)
    with engine.connect() as conn:
        result = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
    engine.dispose()
    return result


def kill_imports(url: str, n_pairs: int, kills: int, tmp: Path) -> None:
    open_store(url).dispose()
    path = tmp / "import.jsonl"
    write_jsonl(synthetic_pairs(n_pairs, seed=1), path)
    process, parsed = start_import(path, url, "timed")
    if process.wait() != 0:
        raise SystemExit("the timing import failed; run it by hand to see why")
    writing = time.perf_counter() - parsed  # the store phase, plus the process's exit
    outcomes: Counter[str] = Counter()
    integrity = set()
    for k in range(kills):
        name = f"killed-{k}"
        process, _ = start_import(path, url, name)
        time.sleep(writing * (0.1 + 0.7 * k / max(kills - 1, 1)))
        if open_transactions(url):
            outcomes["killed inside its transaction"] += 1
        killed = kill9(process)
        exists, n = dataset_pairs(url, name)
        if not killed:
            outcomes["finished before the kill"] += 1
        elif n == 0:
            outcomes["nothing imported" + (" (but a dataset row)" if exists else "")] += 1
        elif n == n_pairs:
            outcomes["all imported"] += 1
        else:
            outcomes[f"PARTIAL ({n} pairs)"] += 1
        integrity.add(sqlite_integrity(url))
        again = srm("import", str(path), "--db", url, "--dataset", name).wait()
        complete = again == 0 and dataset_pairs(url, name)[1] == n_pairs
        outcomes["then a re-import completed" if complete else "then a re-import FAILED"] += 1
    shown = ", ".join(f"{what} {n}" for what, n in sorted(outcomes.items()))
    checked = (
        f"; SQLite integrity_check: {', '.join(sorted(integrity))}" if None not in integrity else ""
    )
    print(
        f"  kill -9 of srm import ({n_pairs:,} pairs; writing them takes {writing:.1f} s after "
        f"the file is parsed), {kills} times at 10-80% of that: {shown}{checked}",
        flush=True,
    )


def tiny_model(tmp: Path) -> Path:
    from srm.checkpoint import save
    from srm.config import ModelConfig
    from srm.model import SentenceRewardModel

    path = tmp / "tiny-model"
    if not path.exists():
        save(SentenceRewardModel.create(ModelConfig(backbone="tiny", d=16), seed=0), path)
    return path


def kill_score_job(url: str, n_pairs: int, tmp: Path) -> None:
    from srm.jobs import SCORE_CHUNK, create_score_job, reap_dead_jobs

    engine = open_store(url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        import_pairs(session, "scored", synthetic_pairs(n_pairs, seed=2))
        model_id = register_model(session, "tiny", str(tiny_model(tmp))).id
        job_id = create_score_job(session, dataset="scored", model_id=model_id).id

    def saved() -> list[Score]:
        with make_sessionmaker(engine, read_only=True)() as session:
            return list(session.scalars(select(Score).where(Score.model_id == model_id)))

    process = srm("score", "--job", str(job_id), "--db", url)
    while process.poll() is None and not saved():
        time.sleep(0.05)
    time.sleep(random.Random(0).uniform(0, 1))  # somewhere in the middle of a chunk
    killed = kill9(process)
    scores = saved()
    whole = [s for s in scores if _complete(s.chosen_detail) and _complete(s.rejected_detail)]
    with sessions() as session:
        status = session.get(TrainingJob, job_id).status
    with sessions.begin() as session:
        reap_dead_jobs(session)
    with sessions() as session:
        reaped = session.get(TrainingJob, job_id).status
    with sessions.begin() as session:
        again = create_score_job(session, dataset="scored", model_id=model_id).id
    finished = srm("score", "--job", str(again), "--db", url).wait() == 0
    after = len(saved())
    engine.dispose()
    print(
        f"  kill -9 of srm score --job ({n_pairs:,} pairs, {SCORE_CHUNK} per transaction): "
        + (
            f"killed with {len(scores):,} pairs scored (whole chunks: "
            f"{'yes' if len(scores) % SCORE_CHUNK == 0 else 'NO'}), "
            f"{len(scores) - len(whole)} incomplete records; "
            if killed
            else "FINISHED before the kill (raise --score-pairs); "
        )
        + f"job status after the kill: {status}, after srm jobs reaps it: {reaped}; a new job "
        f"{'succeeded' if finished else 'FAILED'} and the store holds {after:,} scores",
        flush=True,
    )


def _complete(detail: dict) -> bool:
    keys = {"score", "prompt_reward", "prompt_weight", "sentences"}
    return isinstance(detail, dict) and keys <= detail.keys()


# ------------------------------------------------------------------------- huge punctuation
HUGE_PATTERNS = {
    '"!!! " repeated': lambda n: "!!! " * (n // 4),
    '"! " repeated': lambda n: "! " * (n // 2),
    '"!? " repeated': lambda n: "!? " * (n // 3),
    '"。-" repeated (CJK cuts in one token)': lambda n: "。-" * (n // 2),
    "a newline run in one sentence": lambda n: "a" + "\n" * (n - 2) + "b",
    "a table row, then spaces": lambda n: "a|b\n|---" + " " * (n - 10) + "x",
    '"，" run, then a space (split points)': lambda n: "，" * (n - 2) + " a",
    "one flag sequence": lambda n: "\U0001f1e6" * n,
}


def huge_punctuation(chars: int) -> None:
    from srm.segment import segment, split_points

    segment("Warm up. Load Punkt.")
    print(f"  segmenting {chars:,} characters, and twice as many:", flush=True)
    for name, make in HUGE_PATTERNS.items():
        seconds = []
        for n in (chars, 2 * chars):
            text = make(n)
            began = time.perf_counter()
            spans = segment(text)
            if "split points" in name:
                split_points(text)
            seconds.append(time.perf_counter() - began)
        print(
            f"    {name}: {seconds[0]:.2f} s, {seconds[1]:.2f} s at {2 * chars:,} "
            f"(x{seconds[1] / max(seconds[0], 1e-9):.1f}; {len(spans):,} spans)",
            flush=True,
        )


# ------------------------------------------------------------------------------ slow clients
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, log: Path, open_files: int) -> tuple[subprocess.Popen, str]:
    """``srm serve`` on a free loopback port under ``ulimit -n open_files``, once it answers."""
    import httpx

    port = free_port()

    def limit() -> None:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (open_files, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )

    out = log.open("w")
    process = subprocess.Popen(
        [PYTHON, "-m", "srm.cli", "serve", "--model", str(model), "--port", str(port)],
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=limit,
    )
    out.close()
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        if process.poll() is not None:
            raise SystemExit(f"srm serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"srm serve never answered: {log.read_text()}")


def health_latencies(url: str, while_alive: threading.Thread, at_least: float) -> list[float]:
    """Seconds each /health took (a new connection each), every 0.2 s while ``while_alive``
    runs and for ``at_least`` seconds; a failure counts as infinity."""
    import httpx

    latencies = []
    began = time.perf_counter()
    while while_alive.is_alive() or time.perf_counter() - began < at_least:
        asked = time.perf_counter()
        try:
            ok = httpx.get(f"{url}/health", timeout=10).status_code == 200
        except httpx.HTTPError:
            ok = False
        latencies.append(time.perf_counter() - asked if ok else float("inf"))
        time.sleep(0.2)
    return latencies


def slow_clients(clients: int, chars: int, tmp: Path) -> None:
    import httpx

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < clients + 100:  # this process holds the slow connections
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, clients + 1000), hard))
    log = tmp / "serve.log"
    process, url = start_server(tiny_model(tmp), log, open_files=1024)
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    held = []
    refused = 0
    for _ in range(clients):
        try:
            connection = socket.create_connection((host, port), timeout=10)
            connection.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            held.append(connection)
        except OSError:
            refused += 1
    answer: dict[str, object] = {}

    def huge_request() -> None:
        began = time.perf_counter()
        body = {"prompt": "Hi", "responses": ["!!! " * (chars // 4)]}
        response = httpx.post(f"{url}/score", json=body, timeout=900)
        answer["status"], answer["seconds"] = response.status_code, time.perf_counter() - began

    request = threading.Thread(target=huge_request)
    request.start()
    latencies = health_latencies(url, request, at_least=5)
    request.join()
    closed = sum(1 for c in held if _closed_by_server(c))
    for connection in held:
        connection.close()

    heavy = threading.Thread(
        target=lambda: _quietly(
            lambda: httpx.post(
                f"{url}/score",
                json={"prompt": "Hi", "responses": ["!!! " * (chars // 4)] * 64},
                timeout=900,
            )
        ),
        daemon=True,
    )
    heavy.start()
    time.sleep(1)
    stopped = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=300)
        exit_seconds = f"{time.perf_counter() - stopped:.1f} s"
    except subprocess.TimeoutExpired:
        process.kill()
        exit_seconds = "over 300 s (killed)"
    text = log.read_text(errors="replace")
    finite = sorted(x for x in latencies if x != float("inf"))
    failures = len(latencies) - len(finite)
    print(
        f"  srm serve at ulimit -n 1024, {clients:,} slow connections ({refused} refused by the "
        f"kernel, {closed:,} closed by the server by the end), then one {chars:,}-character "
        f'"!!! " request: it answered {answer.get("status")} in '
        f"{answer.get('seconds', float('nan')):.1f} s; /health asked {len(latencies)} times "
        f"meanwhile: {failures} failed, median {statistics.median(finite) * 1000:.0f} ms, "
        f"slowest {finite[-1] * 1000:.0f} ms, over 1 s {sum(x > 1 for x in latencies)}; "
        f"server log {len(text):,} bytes, {text.count('Traceback')} tracebacks; SIGTERM "
        f"1 s into a request of 64 such responses: exited in {exit_seconds}",
        flush=True,
    )


def _closed_by_server(connection: socket.socket) -> bool:
    connection.settimeout(0.01)
    try:
        return connection.recv(1024) is not None
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def _quietly(call) -> None:
    try:
        call()
    except Exception:  # the server stops under it: that is the point
        pass


# --------------------------------------------------------------------------- signed-out uploads
APP_PASSWORD, APP_ADMIN_PASSWORD = "an annotator's long secret", "an admin's long secret"
REFUSAL = "an upload from a session that has not signed in was refused"  # webapp/auth.py logs it


def start_app(log: Path, guarded: bool = True) -> tuple[subprocess.Popen, str]:
    """The app as ``make app`` starts it (``webapp/launch.py``), with passwords set, on a free
    loopback port and an empty SQLite store, once ``/_stcore/health`` answers; not
    ``guarded``: plain ``streamlit run`` with Streamlit's 200 MB upload cap (before the fix)."""
    import httpx

    port = free_port()
    start = ["webapp/launch.py"] if guarded else ["-m", "streamlit"]
    uncapped = [] if guarded else ["--server.maxUploadSize", "200"]
    out = log.open("w")
    process = subprocess.Popen(
        [PYTHON, *start, "run", "webapp/streamlit_app.py"]
        + ["--server.address", "127.0.0.1", "--server.port", str(port), *uncapped],
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "SRM_APP_PASSWORD": APP_PASSWORD,
            "SRM_ADMIN_PASSWORD": APP_ADMIN_PASSWORD,
            "SRM_DB_URL": f"sqlite:///{log.with_suffix('.db')}",
            "HF_HUB_OFFLINE": "1",
        },
    )
    out.close()
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        if process.poll() is not None:
            raise SystemExit(f"the app exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/_stcore/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"the app never answered: {log.read_text()}")


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid`` (``VmRSS`` in ``/proc/PID/status``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for process {pid}")


def signed_out_uploads(puts: int, megabytes: float, tmp: Path, guarded: bool = True) -> None:
    import asyncio

    sys.path.insert(0, str(REPO))  # the client the tests use
    from tests.upload_client import MB, signed_out_session

    log = tmp / ("app.log" if guarded else "app-unguarded.log")
    process, url = start_app(log, guarded)
    body = b"x" * int(megabytes * MB)

    async def attack() -> tuple[list[int], list[float], float, float]:
        statuses, seconds = [], []
        async with signed_out_session(url) as session:
            await session.upload_address()  # the session exists before the memory is read
            before = rss_mb(process.pid)
            for k in range(puts):
                address = await session.upload_address(f"big-{k}.jsonl")
                began = time.perf_counter()
                statuses.append(await session.put(address, body, f"big-{k}.jsonl"))
                seconds.append(time.perf_counter() - began)
            await asyncio.sleep(1)
            after = rss_mb(process.pid)  # the socket still open
        return statuses, seconds, before, after

    try:
        statuses, seconds, before, after = asyncio.run(attack())
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    refusals = log.read_text(errors="replace").count(REFUSAL)
    app = "webapp/launch.py" if guarded else "UNGUARDED: plain streamlit run, 200 MB cap"
    print(
        f"  the app ({app}; passwords set), one signed-out websocket session, "
        f"{puts} PUTs of {megabytes:g} MB: status {', '.join(map(str, statuses))}; each took "
        f"{', '.join(f'{s:.2f}' for s in seconds)} s; the app's RSS {before:.0f} MB before the "
        f"first, {after:.0f} MB after the last with the socket still open "
        f"({after - before:+.0f} MB); the app logged {refusals} refusals of a signed-out "
        "session",
        flush=True,
    )


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default=None, help="PostgreSQL server URL (CREATE DATABASE)")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--writes", type=int, default=250, help="label writes per process")
    parser.add_argument("--pairs", type=int, default=20, help="pairs the writes go to")
    parser.add_argument(
        "--no-accounts", action="store_true", help="label writes by names without accounts"
    )
    parser.add_argument("--import-pairs", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=5, help="imports to kill per store")
    parser.add_argument("--score-pairs", type=int, default=2_000)
    parser.add_argument(
        "--parts",
        default="store,segment,serve,upload",
        help="comma-separated: store (parts 1-3, per store), labels (part 1 alone), segment (4), "
        "serve (5), upload (6)",
    )
    parser.add_argument("--huge-chars", type=int, default=100_000)
    parser.add_argument("--slow-clients", type=int, default=1_100)
    parser.add_argument("--upload-puts", type=int, default=5, help="signed-out PUTs")
    parser.add_argument("--upload-mb", type=float, default=60, help="MB (2**20 bytes) per PUT")
    parser.add_argument(
        "--upload-control", action="store_true", help="upload: also against an unguarded app"
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    pg_url = args.pg_url or os.environ.get("SRM_BENCH_PG_URL") or os.environ.get("SRM_TEST_PG_URL")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; parts {args.parts}"
        + (
            f"; {args.processes} processes x {args.writes} label writes, {args.kills} import "
            "kills, 1 score-job kill per store"
            if "store" in parts
            else ""
        ),
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="srm-reliability-") as tmp:
        os.environ["SRM_RUNS_DIR"] = str(Path(tmp) / "runs")  # job logs stay in tmp
        stores = parts & {"store", "labels"}
        for _, url in store_backends(pg_url, "srm_reliability") if stores else []:
            concurrent_label_writes(
                url, args.processes, args.writes, args.pairs, accounts=not args.no_accounts
            )
            if "store" in parts:
                kill_imports(url, args.import_pairs, args.kills, Path(tmp))
                kill_score_job(url, args.score_pairs, Path(tmp))
        if "segment" in parts:
            huge_punctuation(args.huge_chars)
        if "serve" in parts:
            slow_clients(args.slow_clients, args.huge_chars, Path(tmp))
        if "upload" in parts:
            signed_out_uploads(args.upload_puts, args.upload_mb, Path(tmp))
            if args.upload_control:
                signed_out_uploads(args.upload_puts, args.upload_mb, Path(tmp), guarded=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
