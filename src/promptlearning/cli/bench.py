"""`promptlearning bench` and `report`: run a benchmark suite into its store, and write its report.

The benchmark harness (:mod:`promptlearning.bench`) owns what they do; these are their command
lines. Errors a user can cause raise PromptLearningError subclasses, which the CLI prints as one line.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from promptlearning.cli.options import RAY_ADDRESS_HELP
from promptlearning.errors import ConfigError

BENCH_EXAMPLES = """examples:
  promptlearning bench benchmarks/suites/smoke.yaml
  promptlearning bench benchmarks/suites/fewshot16.yaml --workers 2        # resumes where it stopped
  promptlearning bench my_suite.yaml --store runs/my_suite --dry-run
  promptlearning bench my_suite.yaml --executor ray --address auto     # one Ray task per job on a cluster
  promptlearning report runs/my_suite
  promptlearning report runs/my_suite --csv results.csv      # every row, without SQL
"""


def _command_line() -> str:
    return "promptlearning " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def default_store(suite: Any) -> Path:
    """The suite's own ``store:`` entry, else runs/bench/<suite name>."""
    return Path(suite.store) if suite.store else Path("runs") / "bench" / suite.name


def check_store_folder(store_dir: Path) -> None:
    """A results store is a folder: refuse a file (or a path below one) before anything runs."""
    for path in (store_dir, *store_dir.parents):
        if path.exists():
            if not path.is_dir():
                raise ConfigError(f"--store {store_dir}: {path} is a file; give a folder for the results store")
            return


def worker_counts(workers: int | None, threads: int | None, jobs: int,
                  local: bool = True) -> tuple[int | None, int | None]:
    """``--workers`` beyond the suite's jobs would start idle processes: at most one per job. ``--threads``
    beyond the machine's cores only makes threads wait on each other: refused (on a Ray cluster the
    nodes' cores are not this machine's: only >= 1 is checked)."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1 (got {workers})")
    cores = os.cpu_count() or 1
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1 (got {threads})")
    if local and threads is not None and threads > cores:
        raise ConfigError(f"--threads must be between 1 and this machine's {cores} cores (got {threads})")
    return (None if workers is None else min(workers, max(jobs, 1))), threads


def cmd_bench(args: argparse.Namespace) -> int:
    from promptlearning.bench.executors import get_executor
    from promptlearning.bench.runner import run_bench
    from promptlearning.bench.store import ResultStore, store_path
    from promptlearning.bench.suite import load_suite
    from promptlearning.cli.options import read_text_file

    read_text_file(args.suite, "suite", "a suite YAML file (see benchmarks/suites/)")  # missing, a folder, not UTF-8
    suite = load_suite(args.suite)
    store_dir = Path(args.store) if args.store else default_store(suite)
    check_store_folder(store_dir)
    workers, threads = worker_counts(args.workers, args.threads, len(suite.jobs), local=args.executor == "local")
    executor = get_executor(args.executor, address=args.address, gpus=args.gpus_per_job)  # connects to nothing yet
    if args.dry_run:
        status = {job.key: "new" for job in suite.jobs}
        if store_path(store_dir).is_file():  # a dry run never creates a store
            with ResultStore(store_dir) as store:
                status = {job.key: store.status_of_job(job) or "new" for job in suite.jobs}
        tally = {s: list(status.values()).count(s) for s in dict.fromkeys(status.values())}
        for job in suite.jobs:
            c = job.config
            train = c.get("train", {})  # a held-out job with nothing to train, or a search, has no max_steps
            print(f"{status[job.key]:8s} {job.key} {job.task} {job.label} K={c['data']['shots']} "
                  f"seed {train.get('seed', '-')} steps {train.get('max_steps', '-')}")
        print(f"{len(suite.jobs)} jobs: " + ", ".join(f"{n} {s}" for s, n in tally.items()) + f"; store {store_dir}")
        return 0
    log = (lambda _: None) if args.quiet else (lambda line: print(line, flush=True))
    try:
        counts = run_bench(suite, store_dir, workers=workers, threads=threads, retry_failed=args.retry_failed,
                           command=_command_line(), log=log, verbose=args.verbose, executor=executor)
    except KeyboardInterrupt:
        print(f"interrupted; finished runs are in {store_dir}, the running job is pending again: "
              "run the same command to resume", file=sys.stderr)
        return 130
    print(f"done {counts['done']}, failed {counts['failed']}, not run {counts['pending'] + counts['running']}; "
          f"store {store_dir}")
    if not args.no_report and counts["done"]:
        from promptlearning.bench.report import build_report

        print(f"report: {build_report(store_dir)}")
    not_run = counts["pending"] + counts["running"]
    if not_run:  # a worker died (killed, out of memory) before running them: the sweep is not complete
        print(f"error: {not_run} job(s) were not run (a worker stopped early); run the same command to resume",
              file=sys.stderr)
    return 0 if counts["failed"] == 0 and not not_run else 1


def cmd_report(args: argparse.Namespace) -> int:
    from promptlearning.bench.report import build_report

    if args.csv is not None or args.json is not None:
        return _export(args)
    print(f"report: {build_report(args.suite_dir, command=_command_line())}")
    return 0


def _export(args: argparse.Namespace) -> int:
    """``--csv``/``--json``: the store's rows, instead of report.md (stdout stays clean for a pipe)."""
    from promptlearning.bench.rows_export import STDOUT, export_rows

    if args.csv == STDOUT and args.json == STDOUT:
        raise ConfigError("--csv - and --json - both ask for standard output; send one of them to a file")
    location = Path(args.suite_dir)
    if location.suffix in (".yaml", ".yml"):
        from promptlearning.bench.suite import load_suite

        location = default_store(load_suite(location))
    for where in export_rows(location, csv_target=args.csv, json_target=args.json):
        if where != "standard output":
            print(f"wrote {where}", file=sys.stderr)
    return 0


def add_bench_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bench", help="run a benchmark suite (tasks x methods x shots x seeds) into a resumable results store",
        description="Run every job of a YAML suite that is not done yet. Results go to one SQLite store per suite "
                    "directory, keyed by a hash of each job's configuration: a re-run skips what is done, a killed "
                    "sweep resumes, parallel workers never run the same job. Writes report.md at the end.",
        epilog=BENCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", help="suite YAML file (see benchmarks/suites/)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where jobs run: local processes (default), or one Ray task per job with this process "
                        "alone writing the store (needs the ray extra; see docs/cluster.md)")
    p.add_argument("--address", default=None,
                   help=RAY_ADDRESS_HELP)
    p.add_argument("--gpus-per-job", type=float, default=None, metavar="N",
                   help="with --executor ray: GPUs each job's Ray task asks for (a fraction shares one); without it "
                        "Ray tasks see no GPU")
    p.add_argument("--workers", type=int, default=None,
                   help="jobs at once: local worker processes, each with cores // N torch threads (default 1); "
                        "with --executor ray, Ray tasks in flight (default: the cluster's CPUs // --threads)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per worker (default: cores // workers, 1 with --executor ray; use 1 on a "
                        "machine busy with other jobs)")
    p.add_argument("--store", default=None,
                   help="directory of the results store (default: the suite's `store:` entry, else runs/bench/NAME)")
    p.add_argument("--retry-failed", action="store_true", help="run failed jobs again")
    p.add_argument("--dry-run", action="store_true", help="list the jobs and their status; run nothing")
    p.add_argument("--no-report", action="store_true", help="do not write report.md at the end")
    p.add_argument("--quiet", action="store_true", help="no per-job lines")
    p.add_argument("--verbose", action="store_true", help="also print each run's own log lines")
    p.set_defaults(func=cmd_bench)
    return p


def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report", help="write report.md and PNG plots from a suite's results store",
        description="Build SUITE_DIR/report.md (tables: mean ± std over seeds, per task and averaged; prompt "
                    "effectiveness, convergence speed, compute overhead) and PNG plots from SUITE_DIR/results.sqlite.")
    p.add_argument("suite_dir", help="directory holding results.sqlite (the bench's --store), or a suite file")
    p.add_argument("--csv", metavar="FILE", default=None,
                   help="write every row of the store as CSV to FILE ('-': standard output) instead of report.md")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="write every row of the store as a JSON list to FILE ('-': standard output) instead of "
                        "report.md")
    p.set_defaults(func=cmd_report)
    return p
