"""backends/allocator.py: ``--allocator``, the C allocator's settings of a measured process (a cell axis).

``tuned`` must change what glibc does, not just what the record says: in a fresh process, memory freed at the top of
the heap goes back to the operating system under glibc's defaults and stays with the process once tuned (the page
faults a step would pay to take it again: docs/overhead.md, "Page faults"). Wrong choices are one line naming the
valid ones. Framework-free: runs in every environment."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from conftest import ROOT
from twinbench.backends import allocator
from twinbench.cell import AXES, Cell

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuned setting is glibc's")

# In a fresh process: 128 MiB in 64 KiB blocks from malloc (below glibc's first mmap threshold, so from the heap),
# each touched, then freed in reverse; the resident memory before and after the frees.
HEAP_PROBE = """
import ctypes, importlib.util, json, os, sys
# The module alone (stdlib only), not the backends package: nothing else allocates or loads a library first.
spec = importlib.util.spec_from_file_location("allocator", os.path.join(sys.argv[2], "backends", "allocator.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.apply_allocator(sys.argv[1])
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
blocks = [libc.malloc(64 * 1024) for _ in range(2048)]
for block in blocks:
    ctypes.memset(block, 1, 64 * 1024)
held = resident_mib()
for block in reversed(blocks):
    libc.free(block)
print(json.dumps({"held": held, "after_free": resident_mib()}))
"""


def probe(setting: str) -> dict:
    out = subprocess.run([sys.executable, "-c", HEAP_PROBE, setting, str(ROOT)], capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(out.stdout)


@glibc_only
def test_tuned_keeps_freed_memory_that_the_system_default_gives_back():
    system, tuned = probe(allocator.SYSTEM), probe(allocator.TUNED)
    assert system["held"] - system["after_free"] > 100  # glibc's default trims the heap's top: ~128 MiB go back
    assert tuned["held"] - tuned["after_free"] < 16  # tuned: the process keeps them for the next allocations


@glibc_only
def test_apply_returns_the_settings_it_set():
    assert allocator.apply_allocator(allocator.SYSTEM) == {}
    assert allocator.apply_allocator(allocator.TUNED) == allocator.TUNED_SETTINGS  # mallopt accepted every value


def test_bad_choices_are_one_line_naming_the_valid_ones(monkeypatch):
    with pytest.raises(allocator.AllocatorError, match=r"choose one of: system, tuned\.$"):
        allocator.check_allocator("jemalloc")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    with pytest.raises(allocator.AllocatorError, match="LD_PRELOAD replaces it with jemalloc: use --allocator system"):
        allocator.check_allocator(allocator.TUNED)
    assert allocator.check_allocator(allocator.SYSTEM) == allocator.SYSTEM  # the preloaded one, recorded as it is
    monkeypatch.delenv("LD_PRELOAD")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    with pytest.raises(allocator.AllocatorError, match="use --allocator system"):
        allocator.check_allocator(allocator.TUNED)


def test_the_allocator_is_a_cell_axis_named_only_off_its_default():
    assert AXES["allocator"] == allocator.SYSTEM  # every record before the axis ran with the system's allocator
    plain = Cell("cifar_cnn", "torch", "torch", "synthetic")
    tuned = Cell("cifar_cnn", "torch", "torch", "synthetic", allocator=allocator.TUNED)
    assert plain.label == "torch" and tuned.label == "torch allocator=tuned"
    assert tuned.file_id.endswith("__allocator-tuned") and tuned != plain
    assert Cell.of({"cell": tuned.as_dict()}) == tuned and Cell.of({"cell": plain.as_dict()}) == plain
