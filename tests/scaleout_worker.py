"""``neurossl`` as ``torchrun`` launches it in the scale-out tests, optionally held after a step.

``torchrun ... tests/scaleout_worker.py [--hold-step S --hold-file F] pretrain ...`` runs the CLI
with the arguments from the subcommand on. With ``--hold-step``, global rank 1 of the group's first
start stops after optimiser step S (checkpointing as usual up to there) and writes its pid to F,
so a test kills it at a known step instead of wherever a timer lands. Its peer meanwhile waits in
the next step's gradient all-reduce, as a rank does when another dies mid-epoch.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import sys
import time
from pathlib import Path

from neurossl.cli import main as neurossl_main
from neurossl.train.trainer import Trainer


def hold_after(step: int, pid_file: Path) -> None:
    """Make rank 1 stop for good once it has taken optimiser step ``step``, unless a rank held
    before (``pid_file`` exists): the restarted group then runs through. The restart count
    cannot tell, since each node's agent counts only its own restarts."""
    if os.environ.get("RANK") != "1" or pid_file.exists():
        return
    save = Trainer.save

    def save_then_hold(trainer: Trainer):
        path = save(trainer)
        if trainer.position.step == step and not pid_file.exists():
            tmp = pid_file.with_name(pid_file.name + ".tmp")
            tmp.write_text(str(os.getpid()))
            tmp.replace(pid_file)
            while True:  # until the test's SIGKILL
                time.sleep(1)
        return path

    Trainer.save = save_then_hold


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hold-step", type=int)
    parser.add_argument("--hold-file", type=Path)
    parser.add_argument("cli", nargs=argparse.REMAINDER, help="neurossl's arguments")
    args = parser.parse_args()
    # a test that finds this worker hung sends SIGUSR1 first: the log then shows where it waits
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if args.hold_step is not None:
        hold_after(args.hold_step, args.hold_file)
    return neurossl_main(args.cli)


if __name__ == "__main__":
    sys.exit(main())
