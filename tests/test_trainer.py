"""The one training loop: exact resume after SIGKILL, DDP equivalence, NaN guard, schedules."""

import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from neurossl.config import ConfigError, to_dict
from neurossl.runtime.files import load_checkpoint
from neurossl.runtime.schedules import cosine, linear, warmup_cosine
from neurossl.train import checkpoint as ckpt
from neurossl.objectives.base import StepInfo
from neurossl.train.optim import apply_schedules
from neurossl.train.trainer import TrainingDiverged, read_metrics

HERE = Path(__file__).resolve().parent
WORKER = HERE / "train_worker.py"
sys.path.insert(0, str(HERE))
from train_worker import make_trainer  # noqa: E402


def run_worker(run_dir, out, *extra, env=None):
    """The worker as a subprocess writing its output to ``<out>.<rank>.log``.

    A file rather than a pipe: a test waits on one worker at a time, and a worker blocked on a
    full, undrained pipe would stall the other DDP rank in its next collective.
    """
    log = Path(f"{out}.{(env or {}).get('RANK', '0')}.log")
    with open(log, "w") as handle:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, str(WORKER), str(run_dir), str(out), *extra],
                                env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
    proc.log = log
    return proc


def output(proc) -> str:
    """What a :func:`run_worker` process printed (for assertion messages)."""
    return proc.log.read_text()


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) for k in a if torch.is_tensor(a[k]))


def test_schedules_known_values():
    assert warmup_cosine(0, 100, 10, 1e-6, 1e-3, 1e-6) == pytest.approx(1e-6)
    assert warmup_cosine(10, 100, 10, 1e-6, 1e-3, 1e-6) == pytest.approx(1e-3)
    assert warmup_cosine(55, 100, 10, 0.0, 1.0, 0.0) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, 0.0, 1.0, 0.1) == pytest.approx(0.1)
    assert cosine(50, 100, 0.04, 0.4) == pytest.approx(0.22)
    assert linear(50, 100, 0.998, 1.0) == pytest.approx(0.999)


def test_teacher_momentum_ramps_over_its_share_of_the_run_then_holds():
    from neurossl.objectives.common import ema_momentum

    # the releases' schedule: linear over the whole run
    assert ema_momentum(50, 100, (0.998, 1.0)) == pytest.approx(0.999)
    # optim.ema_ramp=0.5: the same ramp over the first half, then the final momentum
    assert ema_momentum(0, 100, (0.998, 1.0), ramp=0.5) == pytest.approx(0.998)
    assert ema_momentum(25, 100, (0.998, 1.0), ramp=0.5) == pytest.approx(0.999)
    assert ema_momentum(50, 100, (0.998, 1.0), ramp=0.5) == 1.0
    assert ema_momentum(80, 100, (0.998, 1.0), ramp=0.5) == 1.0


def test_a_teacher_past_its_ramp_no_longer_moves(tmp_path):
    trainer = make_trainer(tmp_path, "jepa", ["optim.ema_ramp=0.25", "optim.epochs=2"])
    total = trainer.total_steps
    teacher = lambda: [p.detach().clone() for p in trainer.objective.teacher.parameters()]
    trainer.fit()
    before = teacher()
    trainer.objective.after_step(StepInfo(step=total - 1, epoch=1.0, total_steps=total,
                                                generator=torch.Generator()))
    assert all(torch.equal(a, b) for a, b in zip(before, teacher()))
    student = [p.detach() for p in trainer.objective.student.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(before, student))  # it would have moved


def test_predictor_lr_scale_multiplies_the_predictors_rate_only(tmp_path):
    trainer = make_trainer(tmp_path, "jepa", ["optim.predictor_lr_scale=4"])
    lr, _ = apply_schedules(trainer.optimizer, trainer.cfg.optim, 3, 10, 0)
    predictor = {id(p) for p in trainer.objective.predictor.parameters()}
    rates = {("predictor" if id(p) in predictor else "rest"): g["lr"]
             for g in trainer.optimizer.param_groups for p in g["params"]}
    assert rates == {"predictor": pytest.approx(4 * lr), "rest": pytest.approx(lr)}
    with pytest.raises(ConfigError, match="'optim.predictor_lr_scale' must be > 0"):
        make_trainer(tmp_path / "bad", "jepa", ["optim.predictor_lr_scale=0"])
    with pytest.raises(ConfigError, match="'optim.ema_ramp' must be in \\(0, 1\\]"):
        make_trainer(tmp_path / "bad2", "jepa", ["optim.ema_ramp=1.5"])


def test_the_schedule_length_comes_from_the_sampler_or_is_given(tmp_path):
    extra = ["optim.epochs=3", "optim.warmup_epochs=0.5", "train.max_steps=0", "optim.batch_size=2"]
    derived = make_trainer(tmp_path / "a", extra=extra, n=16)  # 16 volumes / 2 per batch = 8 steps
    assert (derived.steps_per_epoch, derived.total_steps, derived.warmup_steps) == (8, 24, 4)
    given = make_trainer(tmp_path / "b", extra=extra, n=16, steps_per_epoch=100)
    assert (given.steps_per_epoch, given.total_steps, given.warmup_steps) == (100, 300, 50)
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1, got 0"):
        make_trainer(tmp_path / "c", extra=extra, steps_per_epoch=0)


def test_official_clip_rule_clips_encoder_and_predictor_apart_and_only_after_warmup(tmp_path):
    # official app/vjepa/train.py: "if (epoch > warmup) and (clip_grad is not None):
    #     _enc_norm = torch.nn.utils.clip_grad_norm_(encoder.parameters(), clip_grad)
    #     _pred_norm = torch.nn.utils.clip_grad_norm_(predictor.parameters(), clip_grad)"
    trainer = make_trainer(tmp_path, "jepa", ["optim.grad_clip=1e-3", "optim.grad_clip_rule=official",
                                             "optim.warmup_epochs=1"])
    assert trainer.warmup_steps > 0

    def fill_gradients(value):
        for param in trainer.objective.parameters():
            if param.requires_grad:
                param.grad = torch.full_like(param, value)

    def grad_norm(module):
        return torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in module.parameters()
                                                   if p.requires_grad]))

    fill_gradients(1.0)
    assert trainer.clip_gradients() == {}  # in warm-up: nothing clipped
    assert all(float(p.grad.abs().min()) == 1.0
               for p in trainer.objective.student.parameters() if p.requires_grad)
    trainer.position.step = trainer.warmup_steps
    norms = trainer.clip_gradients()
    assert set(norms) == {"grad_norm_encoder", "grad_norm_head"}
    encoder_norm, predictor_norm = grad_norm(trainer.objective.student), grad_norm(trainer.objective.predictor)
    assert float(encoder_norm) == pytest.approx(1e-3, rel=1e-4)
    assert float(predictor_norm) == pytest.approx(1e-3, rel=1e-4)  # each to the limit, apart


def test_training_runs_logs_and_checkpoints(tmp_path):
    trainer = make_trainer(tmp_path)
    metrics = trainer.fit()
    assert trainer.position.step == 8 and math.isfinite(metrics["loss"])
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == list(range(1, 9))
    assert {"loss", "pixel", "lr", "wd", "volumes_per_s"} <= set(records[0])
    kept = [p.name for p in ckpt.step_checkpoints(tmp_path / "checkpoints")]
    assert kept == ["step_00000004.pt", "step_00000006.pt", "step_00000008.pt"]  # keep_checkpoints=3
    assert (tmp_path / "checkpoints" / "last.pt").resolve().name == "step_00000008.pt"
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["config"] == to_dict(trainer.cfg)  # the resolved settings, not only the profile


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = run_worker(tmp_path / "full", tmp_path / "full.pt", env=env)  # alongside the victim
    victim = run_worker(tmp_path / "killed", tmp_path / "unused.pt", "--item-delay", "0.15", env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(ckpt.step_checkpoints(tmp_path / "killed" / "checkpoints")) < 2:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    done = ckpt.latest_checkpoint(tmp_path / "killed" / "checkpoints")
    assert done is not None and victim.returncode == -signal.SIGKILL
    assert int(done.stem.split("_")[1]) < 8, "the run finished before it was killed"
    resumed = run_worker(tmp_path / "killed", tmp_path / "resumed.pt", "--resume", env=env)
    assert resumed.wait(timeout=120) == 0, output(resumed)
    assert full.wait(timeout=120) == 0, output(full)
    assert same_state(torch.load(tmp_path / "full.pt"), torch.load(tmp_path / "resumed.pt"))


def test_jepa_resume_restores_teacher_and_optimizer(tmp_path):
    first = make_trainer(tmp_path, "jepa", ["train.max_steps=4"])
    first.fit()
    second = make_trainer(tmp_path, "jepa", ["train.max_steps=4"])
    assert second.resume() and second.position.step == 4
    assert same_state(first.objective.state_dict(), second.objective.state_dict())
    assert second.optimizer.state_dict()["state"].keys() == first.optimizer.state_dict()["state"].keys()


GRAPHS = []  # what the test backend below was handed


@torch._dynamo.register_backend
def neurossl_test_recorder(graph, example_inputs):
    """A torch.compile backend that records each captured graph and runs it as traced."""
    GRAPHS.append(graph)
    return graph.forward


def test_compiled_blocks_train_as_eager_ones_and_keep_parameter_names(tmp_path):
    eager = make_trainer(tmp_path / "eager", "jepa", ["train.max_steps=3"])
    GRAPHS.clear()
    compiled = make_trainer(tmp_path / "compiled", "jepa",
                            ["train.max_steps=3", "train.compile=neurossl_test_recorder"])
    losses = [trainer.fit()["loss"] for trainer in (eager, compiled)]
    assert GRAPHS, "no block went through torch.compile"
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    a, b = eager.objective.state_dict(), compiled.objective.state_dict()
    assert list(a) == list(b)  # no `_orig_mod.` prefixes: checkpoints and exports as eager ones
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    resumed = make_trainer(tmp_path / "compiled", "jepa", ["train.max_steps=3"])  # eager
    assert resumed.resume() and same_state(resumed.objective.state_dict(), b)


@pytest.mark.parametrize("objective, extra", [
    ("jepa", []), ("moe_jepa", ["train.compile=aot_eager"]),  # MoE: its balancing loss too
])
def test_activation_checkpointing_keeps_the_step_and_holds_less_for_backward(objective, extra, tmp_path):
    runs = {}
    for enabled in ("false", "true"):
        trainer = make_trainer(tmp_path / enabled, objective, [
            "train.max_steps=2", "model.drop_path=0.2", f"train.activation_checkpointing={enabled}", *extra])
        held = []  # bytes of every tensor autograd saves outside checkpointed blocks

        def pack(tensor):
            held.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            batches = trainer.micro_batches()
            losses = [trainer.train_step(batches)["loss"] for _ in range(2)]
        runs[enabled] = losses, sum(held), trainer.objective.state_dict()
    (losses, held, state), (ck_losses, ck_held, ck_state) = runs["false"], runs["true"]
    assert ck_losses == losses and same_state(ck_state, state)  # drop path redrawn identically
    assert ck_held < held / 2, (ck_held, held)


def test_an_unknown_compile_backend_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"'train.compile'.*inductor.*got 'inductr'"):
        make_trainer(tmp_path, "mae", ["train.compile=inductr"])


def test_nan_loss_stops_with_step_and_term_and_keeps_last_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path)
    original = trainer.objective.forward

    def poisoned(batch, info):
        losses = original(batch, info)
        if info.step == 5:
            losses["pixel"] = losses["pixel"] * float("nan")
            losses["loss"] = losses["pixel"]
        return losses

    trainer.objective.forward = poisoned
    with pytest.raises(TrainingDiverged, match=r"step 5: loss term 'pixel' is nan"):
        trainer.fit()
    assert ckpt.latest_checkpoint(tmp_path / "checkpoints").name == "step_00000004.pt"


def free_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999).

    A port from that range (what binding port 0 returns) can be drawn again as the ephemeral
    source port of rank 1's own connection to it: a TCP self-connect that leaves both ranks
    waiting on each other until the test times out.
    """
    for port in random.Random().sample(range(20000, 32000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


def wait_all(procs, timeout: float) -> str | None:
    """Wait for every process: None when all exit 0, else what went wrong with their logs.

    A failed rank stops the wait at once (its peers would only block on it); ranks still running
    at the deadline get SIGUSR1 first, so their logs show the stack they hang in.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        codes = [proc.poll() for proc in procs]
        if all(code == 0 for code in codes):
            return None
        if any(code not in (None, 0) for code in codes):
            break
        time.sleep(0.2)
    alive = [proc for proc in procs if proc.poll() is None]
    why = (f"{len(alive)} still running after {timeout:.0f} s" if time.monotonic() >= deadline
           else f"a rank failed; {len(alive)} stopped")
    for proc in alive:
        proc.send_signal(signal.SIGUSR1)
    time.sleep(2)
    for proc in alive:
        proc.kill()
        proc.wait()
    state = ", ".join(f"rank {i}: exit {proc.returncode}" for i, proc in enumerate(procs))
    return f"{state} ({why})\n" + "\n".join(
        f"--- rank {i} ---\n{output(proc)}" for i, proc in enumerate(procs))


def run_ddp(folder: Path, steps: list[str], env: dict, timeout: float = 90,
            ranks: int = 2) -> str | None:
    """``ranks`` gloo ranks on loopback (the environment ``torchrun`` sets) training into
    ``folder``; None on success, else the failure."""
    folder.mkdir()
    port = free_port()
    procs = []
    for rank in range(ranks):
        rank_env = {**env, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(ranks),
                    "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        if "lo" in dict(socket.if_nameindex()).values():
            rank_env["GLOO_SOCKET_IFNAME"] = "lo"  # not whatever the host name resolves to
        procs.append(run_worker(folder / "run", folder / "final.pt", *steps, env=rank_env))
    return wait_all(procs, timeout)


# SimCLR and DINO-MIM (with KoLeo) gather the global batch for their batch-level losses; MAE
# runs with compiled blocks inside DDP (eager MAE under DDP: the torchrun test below). The four
# train one after the other in each process, so the pair and the reference start up once.
DDP_OBJECTIVES = ("mae:train.compile=aot_eager", "jepa", "simclr", "dino_mim:objective.koleo_weight=0.1")


def test_ddp_two_processes_equal_single_process(tmp_path):
    # each collective gives up after 45 s, so a dead or hung peer surfaces as an error in the log
    steps = ["--set", "train.max_steps=3", "--set", "train.dist_timeout_s=45"]
    for spec in DDP_OBJECTIVES:
        steps += ["--objective", spec]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # the one-process reference runs alongside the pair (3 single-threaded processes, 2 cores)
    single = run_worker(tmp_path / "single", tmp_path / "single.pt", *steps, "--set",
                        "optim.batch_size=4", env=env)
    failure = run_ddp(tmp_path / "ddp1", steps, env, timeout=240)
    assert single.wait(timeout=240) == 0, output(single)
    if failure is not None:
        # Pairs used to hang at exit in ~1 of 20 runs (gloo's worker thread and the destroyed
        # group deadlocked on the GIL; `shutdown_distributed(finished=True)` now waits at a
        # barrier first). One retry on a new port stays, so that a rare loopback hiccup does not
        # fail the suite; a real fault fails both attempts, logs shown.
        warnings.warn(f"DDP: first attempt failed, retrying: {failure}")
        second = run_ddp(tmp_path / "ddp2", steps, env, timeout=240)
        assert second is None, f"first attempt: {failure}\nsecond attempt: {second}"
        final = tmp_path / "ddp2" / "final.pt"
    else:
        final = tmp_path / "ddp1" / "final.pt"
    assert "mae: model DistributedDataParallel" in final.with_name("final.pt.1.log").read_text()
    assert "compiled blocks 3" in final.with_name("final.pt.1.log").read_text()  # 2 + decoder's 1
    for objective in (spec.partition(":")[0] for spec in DDP_OBJECTIVES):
        a = torch.load(f"{tmp_path / 'single.pt'}.{objective}")
        b = torch.load(f"{final}.{objective}")
        for key in a:
            if torch.is_tensor(a[key]) and a[key].is_floating_point():
                torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6,
                                           msg=f"{objective}: {key}")


def test_torchrun_single_process_takes_the_ddp_path_bitwise_equal_to_a_plain_run(tmp_path):
    # `torchrun --nproc_per_node=1` (one GPU node) joins a process group and wraps DDP, as
    # several ranks do; its weights must be those of a plain `python` run, bit for bit
    steps = ["--set", "train.max_steps=3", "--set", "train.dist_timeout_s=45"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    plain = run_worker(tmp_path / "plain", tmp_path / "plain.pt", *steps, env=env)  # alongside
    failure = run_ddp(tmp_path / "one", steps, env, ranks=1)
    assert failure is None, failure
    assert plain.wait(timeout=120) == 0, output(plain)
    assert "model MAE" in output(plain) and "backend none" in output(plain), output(plain)
    log = (tmp_path / "one" / "final.pt.0.log").read_text()
    assert "model DistributedDataParallel, backend gloo" in log, log
    assert same_state(torch.load(tmp_path / "plain.pt"), torch.load(tmp_path / "one" / "final.pt"))
