"""Scale-out: two torchrun "nodes" on localhost, an elastic restart after SIGKILL, the SLURM launcher.

Every run is ``neurossl pretrain`` on the smoke cohort with a global batch of 4: two agents
(``--nnodes=2``, one process each, batch 2) meeting at a c10d rendezvous on 127.0.0.1, one agent
of two such processes, or one plain process with batch 4. The runs of the module overlap (their
start-up dominates on 2 cores) and the tests then compare what they exported.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from neurossl.cli import main as neurossl_main
from neurossl.runtime.files import load_checkpoint
from neurossl.train import checkpoint as ckpt
from neurossl.train.distributed import warn_shared_store_restarts
from neurossl.train.trainer import read_metrics

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_trainer import free_port  # noqa: E402
from train_worker import make_trainer  # noqa: E402

WORKER = HERE / "scaleout_worker.py"
TORCHRUN = Path(sys.executable).with_name("torchrun")
SLURM_SCRIPT = HERE.parent / "paper" / "slurm_paper.sh"
HOLD_STEP = 3  # the smoke profile's first checkpoint (6 steps, one every 3)
DEADLINE_S = 300


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (torchrun starts its workers in sessions of their own,
    so killing an agent's process group leaves them running)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Run:
    """One run: its torchrun agents (one per "node") and their logs."""

    def __init__(self, name: str, folder: Path, commands: list[list[str]], env: dict):
        self.name, self.folder, self.procs, self.logs = name, folder, [], []
        for i, command in enumerate(commands):
            log = folder.with_name(f"{name}.{i}.log")
            with open(log, "w") as handle:  # a file, not a pipe nobody drains
                self.procs.append(subprocess.Popen(command, env=env, stdout=handle,
                                                   stderr=subprocess.STDOUT, start_new_session=True))
            self.logs.append(log)

    def codes(self) -> list[int | None]:
        return [proc.poll() for proc in self.procs]

    def output(self) -> str:
        return "\n".join(f"--- {log.name} ---\n{log.read_text()}" for log in self.logs)

    def stop(self) -> None:
        """SIGKILL every process of the run still running and everything it started."""
        for proc in self.procs:
            if proc.poll() is None:  # an exited agent's pid may belong to someone else by now
                for pid in [*descendants(proc.pid), proc.pid]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            proc.wait()

    def encoder(self) -> dict[str, torch.Tensor]:
        return load_file(self.folder / "encoder.safetensors")


def agents(port: int, run_id: str, cli: list[str], hold: list[str] = (), nodes: int = 2,
           per_node: int = 1) -> list[list[str]]:
    """One torchrun command per "node", as the SLURM script runs them, on loopback."""
    return [[str(TORCHRUN), f"--nnodes={nodes}", f"--nproc_per_node={per_node}", "--rdzv_backend=c10d",
             f"--rdzv_endpoint=127.0.0.1:{port}", f"--rdzv_id={run_id}",
             # node 0 hosts the rendezvous store; all give up joining well before the deadline
             f"--rdzv_conf=is_host={int(node == 0)},join_timeout=120", "--local-addr=127.0.0.1",
             "--max-restarts=1", str(WORKER), *hold, *cli] for node in range(nodes)]


@pytest.fixture(scope="module")
def scaleout(smoke_data, tmp_path_factory):
    """Runs of ``neurossl pretrain``, all at once: MAE on two nodes and its one-process reference
    (in this process, once the kill below is done), VCR-JEPA on one node of two processes, and
    VCR-JEPA on two nodes whose rank 1 is SIGKILLed after the first checkpoint.

    Returns ``(runs, kill)``: the run folders by name, and what the kill hit.
    """
    root = tmp_path_factory.mktemp("scaleout")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    if "lo" in dict(socket.if_nameindex()).values():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # not whatever the host name resolves to

    def cli(objective: str, name: str) -> list[str]:
        return ["pretrain", "--objective", objective, "--cache", str(smoke_data / "cache"),
                "--splits", str(smoke_data / "splits"), "--run-dir", str(root / name),
                "--profile", "smoke", "--set", "train.dist_timeout_s=45", "--set",
                "optim.batch_size=2"]

    hold_file = root / "held.pid"
    plans = {
        "mae_nodes": agents(free_port(), "mae_nodes", cli("mae", "mae_nodes")),
        "vcr_jepa_node": agents(free_port(), "vcr_jepa_node", cli("vcr_jepa", "vcr_jepa_node"),
                                nodes=1, per_node=2),
        "vcr_jepa_killed": agents(free_port(), "vcr_jepa_killed", cli("vcr_jepa", "vcr_jepa_killed"),
                                  ["--hold-step", str(HOLD_STEP), "--hold-file", str(hold_file)]),
    }
    runs = {name: Run(name, root / name, commands, env) for name, commands in plans.items()}
    kill, single = {}, cli("mae", "mae_single") + ["--set", "optim.batch_size=4"]
    try:
        first = root / "vcr_jepa_killed" / "checkpoints" / f"step_{HOLD_STEP:08d}.pt"
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if not kill and hold_file.exists() and first.exists():
                kill["checkpoints"] = [p.name for p in ckpt.step_checkpoints(first.parent)]
                kill["position"] = load_checkpoint(first)["position"]
                kill["pid"] = int(hold_file.read_text())
                os.kill(kill["pid"], signal.SIGKILL)
                assert neurossl_main(single) == 0  # the reference, while the restart runs
            codes = [code for run in runs.values() for code in run.codes()]
            if None not in codes or any(code not in (None, 0) for code in codes):
                break  # all done, or one failed: its partner would only wait for it
            time.sleep(0.1)
        failed = {name: run.codes() for name, run in runs.items() if run.codes() != [0] * len(run.procs)}
        assert not failed, f"runs not finished with exit 0: {failed}\n" + "\n".join(
            runs[name].output() for name in failed)
    finally:
        for run in runs.values():
            run.stop()
    return runs, kill


@pytest.mark.slow
def test_two_nodes_end_at_the_weights_of_one_process_with_the_same_global_batch(scaleout):
    runs, _ = scaleout
    nodes = runs["mae_nodes"]
    assert "global batch 4: 2 processes x 2 volumes" in nodes.output(), nodes.output()
    a, b = load_file(nodes.folder.with_name("mae_single") / "encoder.safetensors"), nodes.encoder()
    assert a.keys() == b.keys()
    for key in a:  # DDP averages two half-batch gradients: the same sums in another order
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6, msg=key)


@pytest.mark.slow
def test_worker_killed_after_the_first_checkpoint_restarts_the_group_from_it(scaleout):
    # VCR's variance and covariance are statistics of each process's batch, as in the official
    # code: the reference is the same two processes, uninterrupted, on one node (a layout keeps
    # the run bit for bit when it keeps the processes: 4 x 1, 2 x 2 and 1 x 4 GPUs)
    runs, kill = scaleout
    killed, uninterrupted = runs["vcr_jepa_killed"], runs["vcr_jepa_node"]
    logs = killed.output()
    assert kill, "rank 1 never reached the first checkpoint"
    assert kill["checkpoints"] == [f"step_{HOLD_STEP:08d}.pt"]
    assert kill["position"] == {"step": HOLD_STEP, "epoch": 0, "batches_done": HOLD_STEP}
    epoch = {r["step"]: r["epoch"] for r in read_metrics(killed.folder)}
    assert 0 < epoch[HOLD_STEP] < 1, epoch  # killed mid-epoch: the data position matters
    assert f"failed (exitcode: -9) local_rank: 0 (pid: {kill['pid']})" in logs, logs
    assert f"resumed {killed.folder} at step {HOLD_STEP} after a restart by torchrun" in logs, logs
    assert "global batch 4: 2 processes x 2 volumes" in uninterrupted.output(), uninterrupted.output()
    a, b = uninterrupted.encoder(), killed.encoder()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit


def test_resuming_with_another_process_layout_is_refused(tmp_path):
    make_trainer(tmp_path, extra=["train.max_steps=2"]).fit()
    other = make_trainer(tmp_path, extra=["train.max_steps=2", "optim.batch_size=4"])
    with pytest.raises(ValueError, match=r"'batch_size': 2.*'batch_size': 4.*same number of processes"):
        other.resume()


@pytest.mark.parametrize("shared, restarts, warned", [
    ("True", "1", True), ("False", "1", False), ("True", "0", False),
])
def test_restarts_through_torchruns_shared_store_are_warned_about(monkeypatch, shared, restarts, warned):
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", shared)
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", restarts)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_shared_store_restarts(rank=0)
        warn_shared_store_restarts(rank=1)  # one warning per run, from rank 0
    assert [str(w.message) for w in caught if "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in str(w.message)] \
        == (["torchrun --max-restarts=1 with the agent's shared store: a restarted group may fail to "
             "reconnect. Set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in torchrun's environment "
             "(paper/slurm_paper.sh does)"] if warned else [])


def slurm(tmp_path: Path, data: Path, **variables) -> subprocess.CompletedProcess:
    """``DRY_RUN=1 bash paper/slurm_paper.sh DATA`` with ``variables`` as SLURM would set them
    and a stand-in ``scontrol`` that expands the node list."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && echo "$HOSTS" | tr , "\\n"\n')
    scontrol.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "DRY_RUN": "1",
           "RUN_DIR": str(tmp_path / "run"), **variables}
    return subprocess.run(["bash", str(SLURM_SCRIPT), str(data)], env=env, capture_output=True,
                          text=True, timeout=30, cwd=HERE.parent)


def test_slurm_script_parses_and_its_dry_run_prints_each_nodes_commands(tmp_path):
    assert subprocess.run(["bash", "-n", str(SLURM_SCRIPT)]).returncode == 0
    done = slurm(tmp_path, tmp_path, SLURM_JOB_ID="4242", SLURM_NNODES="2",
                 SLURM_JOB_NODELIST="gpu[01-02]", HOSTS="gpu01,gpu02", GPUS_PER_NODE="4")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    run = tmp_path / "run"
    # data stages once, on the batch host; no node runs them
    for stage in ("neurossl curate", "neurossl preprocess", "neurossl splits audit"):
        assert sum(stage in line for line in lines) == 1 and not any(
            line.startswith("node") and stage in line for line in lines), stage
    assert f"node 1 (gpu02): test -r {run}/cache/index.csv" in lines
    for objective in ("mae", "slmae", "jepa", "vcr_jepa"):
        command = ("/torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d "
                   f"--rdzv_endpoint=gpu01:24242 --rdzv_id=4242-{objective} --max-restarts=3 "
                   f"-m neurossl pretrain --objective {objective} --profile paper "
                   f"--cache {run}/cache --splits splits/paper --run-dir {run}/pretrain/{objective} --resume")
        for node, host in enumerate(("gpu01", "gpu02")):
            assert sum(line.startswith(f"node {node} ({host}): ") and line.endswith(command)
                       for line in lines) == 1, (objective, node, done.stdout)
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


@pytest.mark.parametrize("variables, message", [
    ({"SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "gpu[01-02]"}, "SLURM_JOB_ID is not set"),
    ({"SLURM_JOB_ID": "7", "SLURM_NNODES": "two", "SLURM_JOB_NODELIST": "gpu[01-02]"},
     "SLURM_NNODES must be a whole number, got 'two'"),
    ({"SLURM_JOB_ID": "7", "SLURM_NNODES": "3", "SLURM_JOB_NODELIST": "gpu[01-02]"},
     "names 2 hosts but SLURM_NNODES is 3"),
])
def test_slurm_script_names_what_is_missing(tmp_path, variables, message):
    done = slurm(tmp_path, tmp_path, HOSTS="gpu01,gpu02", **variables)
    assert done.returncode == 2 and message in done.stderr, (done.returncode, done.stderr)
    assert done.stdout == ""


def test_slurm_script_refuses_a_missing_data_folder(tmp_path):
    done = slurm(tmp_path, tmp_path / "nowhere", SLURM_JOB_ID="7", SLURM_NNODES="1",
                 SLURM_JOB_NODELIST="gpu01", HOSTS="gpu01")
    assert done.returncode == 2 and "is not a folder" in done.stderr, done.stderr
