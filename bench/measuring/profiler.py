"""One shared profiler for every implementation: GPU through NVML, host through psutil.

Every implementation (Keras on any backend, the PyTorch twin, the tf.keras twin) is measured by this
same code, so differences in the figures come from the implementations, not from the instruments.

    with Profiler(interval_s=0.15) as prof:
        prof.mark("start")
        with prof.window("epoch", epoch=1):
            train_one_epoch()
    record["profile"] = prof.to_dict()

A background daemon thread takes one *sample* every ``interval_s`` seconds:

- GPU (when NVML works): utilisation %, device memory used, power, SM clock, temperature, and this
  process's GPU memory; ``source: "nvml"``.
- Host (always, through psutil): this process's CPU % and resident memory (RSS).

*Windows* (``prof.window(name)``) record begin/end times and, on GPUs that expose it, the energy used;
*markers* (``prof.mark(name)``) record instants. Each sample carries the current *phase*: the name of
the innermost (most recently opened, still open) window.

What the numbers mean, and what they do not:

- **Utilisation** from NVML is the share of time in the driver's sampling period (1/6 s to 1 s,
  depending on the GPU) during which *any* kernel was running. It is not SM occupancy: one tiny kernel
  that keeps one SM busy reads as 100%.
- **Power** from ``nvmlDeviceGetPowerUsage`` may be averaged over about one second by the driver, so
  short spikes are smoothed and it lags phase changes.
- **Energy** is the difference of ``nvmlDeviceGetTotalEnergyConsumption`` (a millijoule counter since
  the driver loaded) between the start and the end of a window. It is the whole device's energy, and it
  is only meaningful over windows of at least a few hundred milliseconds.
- **Device memory** is what the driver reports as used on the whole device, including other processes
  and each framework's caching allocator (TensorFlow and JAX reserve memory up front unless told not
  to). Per-process memory matches ``os.getpid()`` against NVML's process list; inside containers NVML
  often reports host PIDs, so no match is found: the field is then ``None`` and the summary says
  ``attributed: false`` — read the device-wide figures instead.
- **CPU %** is psutil's per-process figure over the last interval; it can exceed 100% when several
  cores are busy. The first sample has none (its interval is too short to mean anything). **Peak RSS** is the larger of the sampled RSS and ``getrusage``'s ``ru_maxrss``
  (the process's lifetime peak, which includes anything before the profiler started).
- **Self-cost**: the time the sampler thread spends inside its own sampling calls is summed and
  reported as ``sampler_busy_s`` and ``sampler_busy_fraction``. The sampler runs in another thread and
  NVML calls release the GIL, so this is an upper bound on the time taken from the training loop, not
  a measurement of it; compare step times with the profiler on and off to know the real cost.

Robustness: if NVML cannot start (no driver, no GPU, ``nvidia-ml-py`` missing), the profiler falls
back to psutil and records ``fallback_reason``. If NVML fails in the middle of a run, the sampler
switches to psutil for the rest of the run, records the reason and the time, and keeps every sample
already taken. The sampler thread is always joined before ``nvmlShutdown()``.

``pynvml`` (package ``nvidia-ml-py``) is imported only when a profiler starts, never at module level.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil

SAMPLER_THREAD_NAME = "twinbench-profiler"

# Fields of one sample, with their units in the names. GPU fields are None when the source is psutil.
GPU_FIELDS = (
    "utilization_gpu",  # %, share of time any kernel ran (see module docstring)
    "memory_used_bytes",  # whole device
    "power_w",
    "sm_clock_mhz",
    "temperature_c",
    "process_memory_bytes",  # this process, None when our PID is not in NVML's list
)
HOST_FIELDS = (
    "cpu_percent",  # this process, may exceed 100 on several cores
    "rss_bytes",  # this process
)

# GPU fields that some devices do not support; probed once at start, then left as None if unsupported.
# utilization_gpu and memory_used_bytes are required: if they fail at start, NVML is not used at all.
_OPTIONAL_NVML_FIELDS = ("power_w", "sm_clock_mhz", "temperature_c", "process_memory_bytes", "energy")


def _describe(exc: BaseException) -> str:
    """``"NVMLError_LibraryNotFound: NVML Shared Library Not Found"`` style text for an exception."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text(value) -> str:
    """NVML strings are ``bytes`` in old bindings and ``str`` in new ones."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _jsonable(value):
    """Make a user-supplied ``info`` value JSON-serialisable (numpy scalars, tuples, anything else)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if hasattr(value, "item"):  # numpy scalar
        with contextlib.suppress(Exception):
            return _jsonable(value.item())
    return str(value)


def host_peak_rss() -> int | None:
    """Lifetime peak RSS of this process in bytes from ``getrusage`` (None where unavailable)."""
    try:
        import resource  # not available on Windows
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # macOS: bytes, Linux: KiB


def gpu_info(device_index: int = 0) -> dict | None:
    """Name, driver and memory of one GPU through NVML, or ``None`` when NVML is not available.

    Returns:
        ``{"index", "name", "driver", "cuda_driver_version", "memory_total_bytes", "device_count"}``;
        ``cuda_driver_version`` is e.g. ``"12.4"``, or ``None`` if the driver does not say.
    """
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        info = {
            "index": device_index,
            "name": _text(pynvml.nvmlDeviceGetName(handle)),
            "driver": _text(pynvml.nvmlSystemGetDriverVersion()),
            "cuda_driver_version": None,
            "memory_total_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
            "device_count": int(pynvml.nvmlDeviceGetCount()),
        }
        with contextlib.suppress(Exception):
            version = int(pynvml.nvmlSystemGetCudaDriverVersion())  # e.g. 12040
            info["cuda_driver_version"] = f"{version // 1000}.{version % 1000 // 10}"
        return info
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


class Profiler:
    """Samples GPU (NVML) and host (psutil) figures in a background thread; records windows and markers.

    Args:
        interval_s: seconds between samples. The default, 0.15 s, is close to the shortest NVML
            utilisation period (1/6 s); sampling faster does not make utilisation more precise.
        device_index: which GPU NVML reads.
        enabled: ``False`` takes no samples and never touches NVML, but still records windows and
            markers, so the same benchmark code runs with the profiler off (to measure its cost).

    Use as a context manager (``with Profiler() as prof:``) or call ``start()`` and ``stop()``. A
    profiler runs once; make a new one for the next run.
    """

    def __init__(self, interval_s: float = 0.15, device_index: int = 0, enabled: bool = True):
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive. Received: interval_s={interval_s}")
        self.interval_s = float(interval_s)
        self.device_index = device_index
        self.enabled = enabled

        self._lock = threading.Lock()  # guards the lists below, shared with the sampler thread
        self._samples: list[dict] = []
        self._windows: list[dict] = []
        self._markers: list[dict] = []
        self._open_windows: list[dict] = []  # in opening order; the last one is the current phase

        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._t0 = time.perf_counter()  # reset by start(); all times are seconds since then
        self._t_stop: float | None = None
        self._started = False
        self._stopped = False
        self._busy_s = 0.0  # time spent inside the sampler's own calls
        self._max_sample_s = 0.0
        self._sampler_error: str | None = None

        # NVML state
        self._nvml = None  # the pynvml module while NVML is in use; None after a fallback
        self._nvml_module = None  # the pynvml module once nvmlInit() succeeded, until nvmlShutdown()
        self._handle = None
        self._gpu: dict | None = None  # name, driver, memory total
        self._unsupported: dict[str, str] = {}  # optional field -> why it is missing
        self._source: str | None = None  # "nvml", "psutil", or None when disabled
        self._fallback_reason: str | None = None
        self._fallback_at_s: float | None = None
        self._energy_start_mj: int | None = None
        self._energy_stop_mj: int | None = None

        self._process = psutil.Process(os.getpid())

    # ------------------------------------------------------------------ start / stop

    def start(self) -> Profiler:
        """Start NVML (or fall back to psutil) and the sampler thread. Returns ``self``."""
        if self._started:
            raise RuntimeError("This Profiler was already started; create a new one for another run.")
        self._started = True
        self._t0 = time.perf_counter()
        if not self.enabled:
            return self

        self._start_nvml()
        with contextlib.suppress(Exception):
            self._process.cpu_percent(None)  # the first call only sets psutil's reference point
        self._thread = threading.Thread(target=self._run, name=SAMPLER_THREAD_NAME, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling: join the sampler thread, read the final energy, then shut NVML down."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join()  # joined BEFORE nvmlShutdown(): the thread may be inside an NVML call
        self._t_stop = time.perf_counter()
        if self._nvml is not None and self._energy_start_mj is not None:
            try:
                self._energy_stop_mj = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            except Exception as exc:
                self._unsupported["energy"] = f"failed at stop: {_describe(exc)}"
        if self._nvml_module is not None:  # nvmlInit() succeeded, so nvmlShutdown() is owed
            with contextlib.suppress(Exception):
                self._nvml_module.nvmlShutdown()
            self._nvml_module = None
        self._nvml = None

    def __enter__(self) -> Profiler:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------------ windows and markers

    def _now(self) -> float:
        return time.perf_counter() - self._t0

    @property
    def started_at(self) -> float:
        """``time.perf_counter()`` at ``start()`` (at creation before that): every ``t_s`` counts from it."""
        return self._t0

    @property
    def current_phase(self) -> str | None:
        """Name of the innermost open window (the most recently opened one still open), or None."""
        with self._lock:
            return self._open_windows[-1]["name"] if self._open_windows else None

    @contextlib.contextmanager
    def window(self, name: str, **info: Any) -> Iterator[dict]:
        """Record a begin/end window; yields its record (a dict), complete once the block exits.

        The record holds ``name, info, start_s, end_s, duration_s`` (seconds since the profiler
        started), ``energy_j`` (GPU energy over the window, or None where unavailable) and
        ``raised`` (the exception type's name if the block raised, else None). Windows may be
        nested or overlap.
        """
        record = {
            "name": str(name),
            "info": _jsonable(info),
            "start_s": self._now(),
            "end_s": None,
            "duration_s": None,
            "energy_j": None,
            "raised": None,
        }
        energy_start = self._read_energy_mj()
        with self._lock:
            self._windows.append(record)
            self._open_windows.append(record)
        try:
            yield record
        except BaseException as exc:
            record["raised"] = type(exc).__name__
            raise
        finally:
            energy_end = self._read_energy_mj()
            record["end_s"] = self._now()
            record["duration_s"] = record["end_s"] - record["start_s"]
            if energy_start is not None and energy_end is not None:
                record["energy_j"] = (energy_end - energy_start) / 1000.0  # mJ -> J
            with self._lock:
                self._open_windows.remove(record)

    def mark(self, name: str, **info: Any) -> dict:
        """Record an instantaneous marker (an epoch boundary, a phase change); returns its record."""
        record = {"name": str(name), "t_s": self._now(), "info": _jsonable(info)}
        with self._lock:
            self._markers.append(record)
        return record

    # ------------------------------------------------------------------ NVML

    def _start_nvml(self) -> None:
        """Initialise NVML and probe what the device supports; on any failure fall back to psutil."""
        try:
            import pynvml
        except ImportError as exc:
            self._use_psutil(f"nvidia-ml-py is not installed ({_describe(exc)})")
            return
        try:
            pynvml.nvmlInit()
            self._nvml_module = pynvml
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.device_index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            pynvml.nvmlDeviceGetUtilizationRates(handle)  # required field: fail now, not mid-run
            self._gpu = {
                "index": self.device_index,
                "name": _text(pynvml.nvmlDeviceGetName(handle)),
                "driver": _text(pynvml.nvmlSystemGetDriverVersion()),
                "memory_total_bytes": int(memory.total),
            }
        except Exception as exc:
            if self._nvml_module is not None:
                with contextlib.suppress(Exception):
                    pynvml.nvmlShutdown()
                self._nvml_module = None
            self._use_psutil(f"NVML unavailable at start ({_describe(exc)})")
            return

        self._nvml, self._handle, self._source = pynvml, handle, "nvml"
        # Optional fields: some GPUs do not support them. Probe each once so that an unsupported
        # field stays None instead of switching the whole run to psutil.
        probes = {
            "power_w": lambda: pynvml.nvmlDeviceGetPowerUsage(handle),
            "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "temperature_c": lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
            "process_memory_bytes": lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(handle),
            "energy": lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle),
        }
        for field, probe in probes.items():
            try:
                value = probe()
            except Exception as exc:
                self._unsupported[field] = _describe(exc)
                continue
            if field == "energy":
                self._energy_start_mj = int(value)

    def _use_psutil(self, reason: str, *, at_s: float | None = None) -> None:
        """Switch to host-only sampling for the rest of the run, remembering why (and when, mid-run)."""
        self._source = "psutil"
        self._fallback_reason = reason
        self._fallback_at_s = at_s
        self._nvml = None  # nvmlShutdown() is still called at stop if nvmlInit() succeeded

    def _read_energy_mj(self) -> int | None:
        """The device's energy counter in mJ, or None when NVML or the counter is unavailable."""
        nvml = self._nvml
        if nvml is None or "energy" in self._unsupported or self._stopped:
            return None
        try:
            return int(nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:
            return None  # the sampler thread notices a broken NVML on its own

    def _read_gpu(self) -> dict:
        """One reading of every supported GPU field. Raises whatever NVML raises."""
        nvml, handle = self._nvml, self._handle
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        reading = {
            "utilization_gpu": float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            "memory_used_bytes": int(memory.used),
            "power_w": None,
            "sm_clock_mhz": None,
            "temperature_c": None,
            "process_memory_bytes": None,
            "pid_found": None,
        }
        if "power_w" not in self._unsupported:
            reading["power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # mW -> W
        if "sm_clock_mhz" not in self._unsupported:
            reading["sm_clock_mhz"] = float(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))
        if "temperature_c" not in self._unsupported:
            reading["temperature_c"] = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        if "process_memory_bytes" not in self._unsupported:
            ours = [p for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid == os.getpid()]
            reading["pid_found"] = bool(ours)
            used = [p.usedGpuMemory for p in ours if p.usedGpuMemory is not None]
            reading["process_memory_bytes"] = int(sum(used)) if used else None
        return reading

    # ------------------------------------------------------------------ the sampler thread

    def _run(self) -> None:
        """Sampler loop: one sample now, then one per interval, and a last one when stopped."""
        try:
            next_time = time.perf_counter()
            while True:
                self._take_sample()
                next_time += self.interval_s
                # Keep a fixed schedule; if a sample overran, start the next one straight away.
                if self._stop_event.wait(max(0.0, next_time - time.perf_counter())):
                    self._take_sample()
                    return
        except Exception as exc:  # never let the profiler take the benchmark down
            self._sampler_error = _describe(exc)

    def _take_sample(self) -> None:
        began = time.perf_counter()
        sample: dict[str, Any] = {"t_s": began - self._t0, "source": "psutil", "phase": self.current_phase}
        sample.update(dict.fromkeys(GPU_FIELDS))
        sample["pid_found"] = None
        if self._nvml is not None:
            try:
                sample.update(self._read_gpu())
                sample["source"] = "nvml"
            except Exception as exc:
                sample.update(dict.fromkeys(GPU_FIELDS))
                self._use_psutil(f"NVML failed during the run ({_describe(exc)})", at_s=sample["t_s"])
        try:
            with self._process.oneshot():
                cpu_percent = float(self._process.cpu_percent(None))
                # The first sample follows start() by microseconds: CPU time counted in clock ticks over
                # so short an interval reads as 0% or thousands of %, so it is not recorded.
                sample["cpu_percent"] = cpu_percent if self._samples else None
                sample["rss_bytes"] = int(self._process.memory_info().rss)
        except Exception:
            sample["cpu_percent"] = sample["rss_bytes"] = None
        took = time.perf_counter() - began
        with self._lock:
            self._samples.append(sample)
            self._busy_s += took
            self._max_sample_s = max(self._max_sample_s, took)

    # ------------------------------------------------------------------ results

    def timeline(self) -> list[dict]:
        """The samples, oldest first (copies; safe to keep while the profiler runs)."""
        with self._lock:
            return [dict(sample) for sample in self._samples]

    def summary(self) -> dict:
        """Peaks and means per field, energy, windows, markers, self-cost; JSON-serialisable.

        Keys: ``source`` ("nvml", "psutil", or None when disabled; the source in use at the end),
        ``fallback_reason``, ``fallback_at_s`` (set when NVML failed mid-run), ``interval_s``,
        ``elapsed_s``, ``n_samples``, ``attributed`` (True if our PID was found in NVML's process list,
        False if not, None without NVML), ``gpu`` (index, name, driver, memory total; None without
        NVML), ``unsupported_fields``, ``fields`` (``{field: {"peak", "mean", "n"}}``),
        ``host_peak_rss_bytes``, ``energy_j``, ``windows``, ``markers``, ``sampler_busy_s``,
        ``sampler_busy_fraction``, ``overhead`` (the same two plus per-sample mean and max),
        ``sampler_error``.
        """
        samples = self.timeline()
        with self._lock:
            windows = [dict(window) for window in self._windows]
            markers = [dict(marker) for marker in self._markers]
            busy_s, max_sample_s = self._busy_s, self._max_sample_s

        end = self._t_stop if self._t_stop is not None else time.perf_counter()
        elapsed_s = max(end - self._t0, 0.0) if self._started else 0.0

        fields = {}
        for field in GPU_FIELDS + HOST_FIELDS:
            values = [s[field] for s in samples if s[field] is not None]
            fields[field] = {
                "peak": max(values) if values else None,
                "mean": sum(values) / len(values) if values else None,
                "n": len(values),
            }

        pid_checks = [s["pid_found"] for s in samples if s["pid_found"] is not None]
        attributed = any(pid_checks) if pid_checks else None

        rss_peaks = [value for value in (fields["rss_bytes"]["peak"], host_peak_rss()) if value]
        busy_fraction = busy_s / elapsed_s if elapsed_s > 0 else None
        overhead = {
            "sampler_busy_s": busy_s,
            "sampler_busy_fraction": busy_fraction,
            "mean_sample_s": busy_s / len(samples) if samples else None,
            "max_sample_s": max_sample_s if samples else None,
            "note": "time inside the sampler's own calls, in its own thread: an upper bound on the "
            "cost to the training loop; compare step times with the profiler off to measure it",
        }
        return {
            "source": self._source,
            "fallback_reason": self._fallback_reason,
            "fallback_at_s": self._fallback_at_s,
            "interval_s": self.interval_s,
            "elapsed_s": elapsed_s,
            "n_samples": len(samples),
            "attributed": attributed,
            "gpu": dict(self._gpu) if self._gpu else None,
            "unsupported_fields": dict(self._unsupported),
            "fields": fields,
            "host_peak_rss_bytes": max(rss_peaks) if rss_peaks else None,
            "energy_j": self._total_energy_j(),
            "windows": windows,
            "markers": markers,
            "sampler_busy_s": busy_s,
            "sampler_busy_fraction": busy_fraction,
            "overhead": overhead,
            "sampler_error": self._sampler_error,
        }

    def _total_energy_j(self) -> float | None:
        """Energy since start: at stop if stopped, else up to now; None if NVML broke or lacks it."""
        if self._energy_start_mj is None or self._fallback_at_s is not None:
            return None
        end_mj = self._energy_stop_mj if self._stopped else self._read_energy_mj()
        return None if end_mj is None else (end_mj - self._energy_start_mj) / 1000.0

    def to_dict(self) -> dict:
        """Everything, JSON-serialisable: the summary (with windows and markers) plus ``timeline``."""
        return {**self.summary(), "timeline": self.timeline()}
