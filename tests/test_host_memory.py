"""Host memory: glibc keeps a CPU step's freed tensors for the next step (no fresh page faults)."""

import subprocess
import sys

import pytest

from neurossl.train import host_memory, trainer as trainer_module
from train_worker import make_trainer

GLIBC = host_memory._glibc() is not None

# 8 tensors of 8 MiB allocated and freed together, as a step's activations are; the minor page
# faults of 10 such steps after two warm-up ones, per step
PROBE = """
import resource, sys, torch
from neurossl.train.host_memory import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()

def step():
    tensors = [torch.empty(2 << 20).fill_(1.0) for _ in range(8)]
    return sum(float(t[0]) for t in tensors)

step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def faults_per_step(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True)
    return float(done.stdout.strip())


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_retained_memory_is_reused_without_page_faults():
    default, retained = faults_per_step("default"), faults_per_step("retain")
    # glibc's default hands the 64 MiB back each step and faults its pages in again
    assert default >= 100, default
    assert retained <= 0.05 * default, (retained, default)


def test_thresholds_outside_glibcs_range_are_refused():
    with pytest.raises(ValueError, match="mmap_threshold must be in"):
        host_memory.retain_freed_memory(mmap_threshold=64 << 20)
    with pytest.raises(ValueError, match="trim_threshold must be in"):
        host_memory.retain_freed_memory(trim_threshold=1 << 31)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_cpu_trainer_retains_host_memory_as_configured(tmp_path, monkeypatch, enabled):
    calls = []
    monkeypatch.setattr(trainer_module, "retain_freed_memory", lambda: calls.append(True) or True)
    make_trainer(tmp_path, extra=[f"train.retain_host_memory={str(enabled).lower()}"])
    assert calls == ([True] if enabled else [])
