"""twinbench.measuring.profiler with and without NVML; the GPU path runs against a small fake ``pynvml`` module."""

import json
import os
import sys
import threading
import time
import types

import numpy as np
import pytest

from twinbench.measuring.profiler import GPU_FIELDS, SAMPLER_THREAD_NAME, Profiler, gpu_info


def sampler_alive():
    return any(t.name == SAMPLER_THREAD_NAME and t.is_alive() for t in threading.enumerate())


class FakeNVMLError(Exception):
    pass


def make_fake_pynvml(*, our_pid_listed=True, fail_after_samples=None, fail_at_init=False):
    """A stand-in for ``pynvml`` implementing exactly the calls the profiler makes.

    ``fail_after_samples``: after that many utilisation readings, every call raises.
    ``energy_mj`` is set by the test; ``shutdown_calls`` records whether the sampler was alive then.
    """
    fake = types.ModuleType("pynvml")
    fake.NVML_CLOCK_SM = 1
    fake.NVML_TEMPERATURE_GPU = 0
    fake.energy_mj = 1_000_000
    fake.utilization_calls = 0
    fake.broken = False
    fake.shutdown_calls = []
    pid = os.getpid() if our_pid_listed else 999_999_999

    def call(function):
        def wrapper(*args):
            if fake.broken:
                raise FakeNVMLError("GPU is lost")
            return function(*args)

        return wrapper

    def init():
        if fail_at_init:
            raise FakeNVMLError("Driver Not Loaded")

    def utilization(handle):
        fake.utilization_calls += 1
        # The start-up probe is call 1; sample k is call k + 1.
        if fail_after_samples is not None and fake.utilization_calls > fail_after_samples + 1:
            fake.broken = True
            raise FakeNVMLError("GPU is lost")
        return types.SimpleNamespace(gpu=87, memory=40)

    def shutdown():
        fake.shutdown_calls.append(sampler_alive())

    fake.nvmlInit = init
    fake.nvmlShutdown = shutdown
    fake.nvmlDeviceGetCount = call(lambda: 1)
    fake.nvmlDeviceGetHandleByIndex = call(lambda index: f"handle-{index}")
    fake.nvmlDeviceGetName = call(lambda handle: b"Fake GPU 80GB")  # bytes, like old bindings
    fake.nvmlSystemGetDriverVersion = call(lambda: "555.42")
    fake.nvmlSystemGetCudaDriverVersion = call(lambda: 12040)
    fake.nvmlDeviceGetMemoryInfo = call(
        lambda handle: types.SimpleNamespace(total=80 * 2**30, used=3 * 2**30, free=77 * 2**30)
    )
    fake.nvmlDeviceGetUtilizationRates = utilization
    fake.nvmlDeviceGetPowerUsage = call(lambda handle: 250_500)  # mW
    fake.nvmlDeviceGetClockInfo = call(lambda handle, clock: 1410)
    fake.nvmlDeviceGetTemperature = call(lambda handle, sensor: 61)
    fake.nvmlDeviceGetTotalEnergyConsumption = call(lambda handle: fake.energy_mj)
    fake.nvmlDeviceGetComputeRunningProcesses = call(
        lambda handle: [
            types.SimpleNamespace(pid=1, usedGpuMemory=5 * 2**20),
            types.SimpleNamespace(pid=pid, usedGpuMemory=2 * 2**30),
        ]
    )
    return fake


@pytest.fixture
def no_nvml(monkeypatch):
    """Make ``import pynvml`` fail, so these tests behave the same on a GPU machine."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


def use_fake(monkeypatch, **kwargs):
    fake = make_fake_pynvml(**kwargs)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def wait_for(condition, timeout_s=3.0):
    deadline = time.perf_counter() + timeout_s
    while not condition() and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert condition()


# ---------------------------------------------------------------------- without NVML


def test_without_nvml_falls_back_to_psutil(no_nvml):
    with Profiler(interval_s=0.05) as prof:
        assert sampler_alive()
        prof.mark("begin", note="first")
        with prof.window("train", epochs=2):
            with prof.window("epoch", epoch=1):
                time.sleep(0.2)
            prof.mark("epoch_end", epoch=1)
            time.sleep(0.15)
        prof.mark("end")
        time.sleep(0.05)
    assert not sampler_alive()
    assert prof._thread is not None and not prof._thread.is_alive()

    summary = prof.summary()
    assert summary["source"] == "psutil"
    assert "nvidia-ml-py is not installed" in summary["fallback_reason"]
    assert summary["fallback_at_s"] is None
    assert summary["gpu"] is None and summary["attributed"] is None and summary["energy_j"] is None

    timeline = prof.timeline()
    assert summary["n_samples"] == len(timeline) >= 4
    assert all(s["source"] == "psutil" for s in timeline)
    assert all(s[field] is None for s in timeline for field in GPU_FIELDS)
    assert all(s["rss_bytes"] > 0 for s in timeline)
    # The first sample comes microseconds after start(): too short an interval for a CPU %.
    assert timeline[0]["cpu_percent"] is None
    assert all(s["cpu_percent"] >= 0 for s in timeline[1:])
    assert [s["t_s"] for s in timeline] == sorted(s["t_s"] for s in timeline)

    # Windows in opening order, with their info; the inner one ends first and lies inside the outer.
    train, epoch = summary["windows"]
    assert (train["name"], epoch["name"]) == ("train", "epoch")
    assert train["info"] == {"epochs": 2} and epoch["info"] == {"epoch": 1}
    assert train["start_s"] <= epoch["start_s"] < epoch["end_s"] <= train["end_s"]
    assert epoch["duration_s"] >= 0.19
    assert train["energy_j"] is None
    assert [m["name"] for m in summary["markers"]] == ["begin", "epoch_end", "end"]
    assert summary["markers"][1]["info"] == {"epoch": 1}
    assert epoch["end_s"] <= summary["markers"][1]["t_s"] <= train["end_s"]

    # Samples carry the innermost open window.
    phases = {s["phase"] for s in timeline}
    assert {"epoch", "train"} <= phases
    for s in timeline:
        if epoch["start_s"] < s["t_s"] < epoch["end_s"]:
            assert s["phase"] == "epoch"

    assert summary["host_peak_rss_bytes"] >= summary["fields"]["rss_bytes"]["peak"] > 0
    assert summary["sampler_busy_s"] > 0
    assert 0 < summary["sampler_busy_fraction"] < 1
    assert summary["overhead"]["sampler_busy_s"] == summary["sampler_busy_s"]
    json.dumps(prof.to_dict())


def test_real_environment_never_crashes():
    """Whatever this machine has (NVML or not), the profiler runs and reports a source."""
    with Profiler(interval_s=0.05) as prof:
        time.sleep(0.12)
    summary = prof.summary()
    assert summary["source"] in {"nvml", "psutil"}
    assert summary["n_samples"] >= 2
    json.dumps(prof.to_dict())


def test_overlapping_windows_phase_is_innermost_open(no_nvml):
    prof = Profiler(enabled=False).start()
    a, b = prof.window("a"), prof.window("b")
    a.__enter__()
    assert prof.current_phase == "a"
    b.__enter__()
    assert prof.current_phase == "b"
    a.__exit__(None, None, None)  # windows may overlap: closing "a" leaves "b" current
    assert prof.current_phase == "b"
    b.__exit__(None, None, None)
    assert prof.current_phase is None
    prof.stop()


def test_window_records_an_exception_and_still_closes(no_nvml):
    with Profiler(enabled=False) as prof:
        with pytest.raises(KeyError), prof.window("broken"):
            raise KeyError("x")
    (window,) = prof.summary()["windows"]
    assert window["raised"] == "KeyError" and window["end_s"] is not None
    assert prof.current_phase is None


def test_disabled_profiler_takes_no_samples_but_records_windows():
    with Profiler(enabled=False) as prof:
        with prof.window("epoch"):
            pass
        prof.mark("done")
    summary = prof.summary()
    assert summary["source"] is None and summary["n_samples"] == 0
    assert [w["name"] for w in summary["windows"]] == ["epoch"]
    assert [m["name"] for m in summary["markers"]] == ["done"]
    assert not sampler_alive()
    json.dumps(prof.to_dict())


def test_info_values_are_made_json_serialisable(no_nvml):
    with Profiler(enabled=False) as prof:
        prof.mark("m", lr=np.float32(0.5), shape=(2, 3), obj=object())
    info = prof.summary()["markers"][0]["info"]
    assert info["lr"] == 0.5 and info["shape"] == [2, 3] and isinstance(info["obj"], str)


def test_start_twice_is_an_error():
    prof = Profiler(enabled=False).start()
    with pytest.raises(RuntimeError):
        prof.start()
    prof.stop()
    prof.stop()  # stopping twice is harmless


# ---------------------------------------------------------------------- with a fake NVML


def test_fake_nvml_fields_energy_and_shutdown_order(monkeypatch):
    fake = use_fake(monkeypatch)
    with Profiler(interval_s=0.05) as prof:
        time.sleep(0.1)
        with prof.window("epoch", epoch=1) as window:
            fake.energy_mj = 1_007_500  # 7.5 J used during the window
        fake.energy_mj = 1_010_000
        time.sleep(0.1)

    assert window["energy_j"] == pytest.approx(7.5)
    summary = prof.summary()
    assert summary["source"] == "nvml" and summary["fallback_reason"] is None
    assert summary["gpu"] == {
        "index": 0,
        "name": "Fake GPU 80GB",
        "driver": "555.42",
        "memory_total_bytes": 80 * 2**30,
    }
    assert summary["attributed"] is True
    assert summary["energy_j"] == pytest.approx(10.0)
    assert summary["unsupported_fields"] == {}

    timeline = prof.timeline()
    assert len(timeline) >= 3
    for sample in timeline:
        assert sample["source"] == "nvml"
        assert sample["utilization_gpu"] == 87.0
        assert sample["memory_used_bytes"] == 3 * 2**30
        assert sample["power_w"] == pytest.approx(250.5)
        assert sample["sm_clock_mhz"] == 1410.0
        assert sample["temperature_c"] == 61.0
        assert sample["process_memory_bytes"] == 2 * 2**30
        assert sample["rss_bytes"] > 0
    assert summary["fields"]["power_w"]["peak"] == pytest.approx(250.5)
    assert summary["fields"]["utilization_gpu"]["mean"] == pytest.approx(87.0)

    # nvmlShutdown was called exactly once, and only after the sampler thread had ended.
    assert fake.shutdown_calls == [False]
    json.dumps(prof.to_dict())


def test_fake_nvml_pid_not_found_is_not_attributed(monkeypatch):
    use_fake(monkeypatch, our_pid_listed=False)
    with Profiler(interval_s=0.05) as prof:
        time.sleep(0.12)
    summary = prof.summary()
    assert summary["source"] == "nvml"
    assert summary["attributed"] is False
    assert all(s["process_memory_bytes"] is None for s in prof.timeline())
    assert summary["fields"]["memory_used_bytes"]["peak"] == 3 * 2**30  # device-wide figure remains


def test_fake_nvml_failing_mid_run_falls_back_and_keeps_samples(monkeypatch):
    fake = use_fake(monkeypatch, fail_after_samples=3)
    with Profiler(interval_s=0.03) as prof:
        with prof.window("train") as window:
            wait_for(lambda: prof.summary()["source"] == "psutil")
            time.sleep(0.1)

    summary = prof.summary()
    assert summary["source"] == "psutil"
    assert summary["fallback_reason"].startswith("NVML failed during the run")
    assert "GPU is lost" in summary["fallback_reason"]
    assert summary["fallback_at_s"] > 0
    assert summary["sampler_error"] is None
    assert summary["energy_j"] is None  # the counter difference is unknown once NVML broke
    assert window["energy_j"] is None

    sources = [s["source"] for s in prof.timeline()]
    assert sources[:3] == ["nvml"] * 3  # the samples taken before the failure are kept
    assert set(sources[3:]) == {"psutil"} and len(sources) > 4
    assert summary["gpu"]["name"] == "Fake GPU 80GB"
    assert fake.shutdown_calls == [False]
    json.dumps(prof.to_dict())


def test_fake_nvml_failing_at_init_falls_back(monkeypatch):
    fake = use_fake(monkeypatch, fail_at_init=True)
    with Profiler(interval_s=0.05) as prof:
        time.sleep(0.08)
    summary = prof.summary()
    assert summary["source"] == "psutil"
    assert "Driver Not Loaded" in summary["fallback_reason"]
    assert summary["n_samples"] >= 1 and summary["gpu"] is None
    assert fake.shutdown_calls == []  # nvmlInit never succeeded, so nothing to shut down


def test_fake_nvml_unsupported_optional_field_stays_none(monkeypatch):
    fake = use_fake(monkeypatch)

    def not_supported(handle):
        raise FakeNVMLError("Not Supported")

    fake.nvmlDeviceGetTotalEnergyConsumption = not_supported
    with Profiler(interval_s=0.05) as prof:
        with prof.window("w") as window:
            time.sleep(0.06)
    summary = prof.summary()
    assert summary["source"] == "nvml"
    assert "Not Supported" in summary["unsupported_fields"]["energy"]
    assert summary["energy_j"] is None and window["energy_j"] is None
    assert all(s["power_w"] == pytest.approx(250.5) for s in prof.timeline())


def test_gpu_info_with_fake_and_without_nvml(monkeypatch):
    fake = use_fake(monkeypatch)
    assert gpu_info() == {
        "index": 0,
        "name": "Fake GPU 80GB",
        "driver": "555.42",
        "cuda_driver_version": "12.4",
        "memory_total_bytes": 80 * 2**30,
        "device_count": 1,
    }
    assert fake.shutdown_calls == [False]
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert gpu_info() is None
