"""`promptlearning tune`: search a method's hyper-parameters with Optuna and write the best as a train YAML.

The options are ``train``'s (flags or ``--config``): what is given is fixed, the rest of the
method's declared search space (:mod:`promptlearning.methods.search_space`) is searched. The
study lives in an Optuna RDB (``OUTPUT/study.sqlite3`` by default): run the same command again
to resume a killed study or to add trials. Trials run in this process, or with ``--executor ray``
as Ray tasks, several at once (:mod:`promptlearning.bench.tuning.on_ray`).
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from promptlearning.cli.options import (
    RAY_ADDRESS_HELP,
    add_config_flag,
    add_data_flags,
    add_dataclass_flags,
    comma_list,
    experiment_config,
    experiment_values,
)
from promptlearning.errors import ConfigError

#: the flags that only mean something with --executor ray
RAY_FLAGS = ("address", "workers", "threads", "gpus_per_trial")
#: the flags of `tune` itself, not options of the trials' experiment
TUNE_FLAGS = ("tune_output", "n_trials", "timeout", "storage", "study_name", "seeds", "on_tasks", "pruner",
              "sampler_seed", "executor", *RAY_FLAGS)

EXAMPLES = """examples:
  promptlearning tune --method prefix_tuning --task mr --max-steps 100 --n-trials 30 --seeds 13,21
  promptlearning tune --method prompt_tuning --on-tasks mr,cr,subj --timeout 3600 --output runs/tune/pt
  promptlearning tune --config my_run.yaml --option num_tokens=8      # num_tokens fixed, the rest searched
  promptlearning tune --method prompt_tuning --task mr --executor ray --address auto --workers 8   # on a Ray cluster
  promptlearning train --config runs/tune/prefix_tuning/best.yaml --output runs/best
"""


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in comma_list(text)]
    except ValueError:
        raise ConfigError(f"--seeds takes integers separated by commas, e.g. 13,21,42 (got {text!r})") from None


def cmd_tune(args: argparse.Namespace) -> int:
    from promptlearning.bench.tuning.best_config import write_best
    from promptlearning.bench.tuning.study import TrialRunner, TuneConfig, run_here, run_tune

    runner: TrialRunner = run_here
    if args.executor == "ray":
        from promptlearning.bench.tuning.on_ray import RayOptions, RayTrials

        runner = RayTrials(RayOptions(address=args.address, workers=args.workers, threads=args.threads,
                                      gpus=args.gpus_per_trial or 0.0))
    else:
        given = [f"--{name.replace('_', '-')}" for name in RAY_FLAGS if getattr(args, name) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} only apply with --executor ray; locally, tune in parallel by "
                              "starting several `promptlearning tune` on one --storage (docs/tuning.md)")
    values = experiment_values(args, skip=TUNE_FLAGS)
    for key in ("output_dir",):
        values.pop(key, None)  # trials save nothing; the study's folder is --output
    base = experiment_config(copy.deepcopy(values))  # it fills in what it resolves; `values` stays as given
    from promptlearning.methods import make_config

    make_config(base.method, dict(base.method_options))  # a bad --option fails here, not once per trial
    output = Path(args.tune_output) if args.tune_output else Path("runs") / "tune" / base.method
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} is a file; give a folder for the study and best.yaml")
    cfg = TuneConfig(base=base, given=values, output=output,
                     n_trials=args.n_trials if args.n_trials is not None or args.timeout else 20, timeout=args.timeout,
                     storage=args.storage, study_name=args.study_name,
                     seeds=_ints(args.seeds) if args.seeds else [],
                     tasks=comma_list(args.on_tasks) if args.on_tasks else [], pruner=args.pruner,
                     sampler_seed=args.sampler_seed)
    command = "promptlearning " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        summary = run_tune(cfg, log=lambda line: print(line, flush=True), runner=runner)
    except KeyboardInterrupt:
        print(f"interrupted; finished trials are in {cfg.storage_url}: run the same command to resume",
              file=sys.stderr)
        return 130
    path = write_best(cfg, summary, command)
    (output / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    default = summary["default_value"]
    print(f"best: trial {summary['best_trial']}, mean dev accuracy {summary['best_value']:.4f}"
          + (f" (defaults: {default:.4f})" if default is not None else "")
          + f"; {', '.join(f'{n} {s}' for s, n in summary['trials'].items())}")
    print(f"best configuration: {path} (promptlearning train --config {path} --output RUN_DIR)")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from promptlearning.training import TrainConfig

    p = sub.add_parser(
        "tune", help="search a method's hyper-parameters with Optuna (resumable) and write the best as a train YAML",
        description="Optuna's TPE sampler searches the method's declared space (see docs/tuning.md) for the best "
                    "mean dev accuracy over the given tasks and seeds; trials that fall behind are pruned on their "
                    "dev curve. Options given (flags or --config, as for train) are fixed; the method's defaults "
                    "are the first trial. The study is an Optuna RDB: the same command resumes it. With --executor ray "
                    "the trials run as Ray tasks, --workers at once.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flag(p)
    p.add_argument("--method", default=argparse.SUPPRESS, help="prompt method (see `promptlearning methods`)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="fix a method option, repeatable")
    p.add_argument("--backbone", default=argparse.SUPPRESS,
                   help="packaged name, local directory or hub id; an image CNN at another input size: NAME@SIZE "
                        "(e.g. efficientnet-lite0@112)")
    p.add_argument("--max-length", type=int, default=argparse.SUPPRESS, help="max input tokens (default 64)")
    g = p.add_argument_group("the study")
    g.add_argument("--output", dest="tune_output", default=None,
                   help="folder of the study and best.yaml (default runs/tune/METHOD)")
    g.add_argument("--n-trials", type=int, default=None,
                   help="finished trials the study should hold; a re-run adds only the missing ones (default 20 "
                        "unless --timeout is given)")
    g.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    g.add_argument("--storage", default=None,
                   help="Optuna RDB URL of the study (default sqlite:///OUTPUT/study.sqlite3)")
    g.add_argument("--study-name", default="tune", help="name of the study in the storage (default tune)")
    g.add_argument("--seeds", default=None, metavar="A,B,...",
                   help="average each trial over these seeds (each seeds the few-shot split and training)")
    g.add_argument("--on-tasks", default=None, metavar="A,B,...",
                   help="average each trial over these registered tasks (each trained on its own)")
    g.add_argument("--pruner", choices=("median", "none"), default="median",
                   help="median: stop a trial whose dev accuracy is below the median of earlier trials at the "
                        "same step (default); none: run every trial to the end")
    g.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (default 0)")
    r = p.add_argument_group("where trials run")
    r.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local (default): one trial after another in this process; ray: each trial a Ray task, "
                        "--workers at once, this process alone writing the study (docs/tuning.md)")
    r.add_argument("--address", default=None,
                   help=RAY_ADDRESS_HELP)
    r.add_argument("--workers", type=int, default=None,
                   help="with --executor ray: trials at once (default: the cluster's CPUs // --threads)")
    r.add_argument("--threads", type=int, default=None,
                   help="with --executor ray: torch threads of a trial, and the CPUs its task asks for (default 1)")
    r.add_argument("--gpus-per-trial", type=float, default=None,
                   help="with --executor ray: GPUs a trial's task asks for (a fraction shares one); without it "
                        "trials see no GPU")
    add_data_flags(p)
    add_dataclass_flags(p.add_argument_group("training"), TrainConfig)
    p.set_defaults(func=cmd_tune)
    return p
