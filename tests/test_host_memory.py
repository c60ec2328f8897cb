"""Host memory: glibc keeps a CPU step's freed tensors for the next step (no fresh page faults)."""

import json
import subprocess
import sys

import pytest

from neurossl.runtime import host_memory
from train_worker import make_trainer

GLIBC = host_memory._glibc() is not None

# In a fresh process: where one 8 MiB tensor comes from (glibc's mallinfo2: bytes in mmapped
# blocks) and how much freed memory the heap holds once it is gone; then the minor page faults
# per "step" of 8 tensors of 8 MiB allocated and freed together, as a step's activations are,
# over 10 steps after 3 warm-up ones
PROBE = """
import ctypes, json, resource, sys, torch
from neurossl.runtime.host_memory import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "retain":
    assert retain_freed_memory()
mapped = libc.mallinfo2().hblkhd
tensor = torch.empty(2 << 20)
mapped = libc.mallinfo2().hblkhd - mapped
del tensor
held = libc.mallinfo2().fordblks

def step():
    tensors = [torch.empty(2 << 20).fill_(1.0) for _ in range(8)]
    return sum(float(t[0]) for t in tensors)

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
print(json.dumps({"mapped": mapped, "held": held, "faults": faults}))
"""
MIB = 2**20


def probe(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(not GLIBC or not hasattr(host_memory._glibc(), "mallinfo2"),
                    reason="glibc >= 2.33 (mallopt, mallinfo2)")
def test_freed_memory_stays_in_the_heap_and_is_reused_without_page_faults():
    default, retained = probe("default"), probe("retain")
    # glibc as it comes: an 8 MiB block gets its own mapping, gone (unmapped) when freed
    assert default["mapped"] >= 8 * MIB and default["held"] < 8 * MIB, default
    # retained: it comes from the heap and stays there once freed
    assert retained["mapped"] == 0 and retained["held"] >= 8 * MIB, retained
    # so steady steps touch no new pages (a 64 MiB step would fault 16,384 in; the bound allows
    # the heap to grow once by a tensor or two)
    assert retained["faults"] <= 2 * 2048 / 10, retained


def test_thresholds_outside_glibcs_range_are_refused():
    with pytest.raises(ValueError, match="mmap_threshold must be in"):
        host_memory.retain_freed_memory(mmap_threshold=64 << 20)
    with pytest.raises(ValueError, match="trim_threshold must be in"):
        host_memory.retain_freed_memory(trim_threshold=1 << 31)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_cpu_trainer_retains_host_memory_as_configured(tmp_path, monkeypatch, enabled):
    calls = []
    monkeypatch.setattr(host_memory, "retain_freed_memory", lambda: calls.append(True) or True)
    make_trainer(tmp_path, extra=[f"train.retain_host_memory={str(enabled).lower()}"])
    assert calls == ([True] if enabled else [])
