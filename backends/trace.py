"""Each framework's own profiler, read into neutral op intervals (``OpInterval``; ``python -m twinbench trace``),
which ``twinbench.ops`` sorts into categories.

- torch and Keras on torch: ``torch.profiler`` (CPU activities; CUDA kernels too where a GPU is used). The ops are
  the events of ``prof.events()`` that are no user annotation (``record_function`` ranges such as
  ``Optimizer.step#Adam.step`` are not ops; they are the ``scope`` of the ops inside them).
- tf.keras and Keras on TensorFlow: ``tf.profiler.experimental`` writes an XSpace (``*.xplane.pb``), read with the
  ``xplane_pb2`` that TensorFlow ships. An op is a TensorFlow op event (``scope/name:Type``) or an XLA op (an event
  with an ``hlo_op`` stat).
- Keras on JAX: ``jax.profiler`` writes the same XSpace, read with ``jax.profiler.ProfileData``; the ops are the
  XLA ops (``hlo_op``). XLA fuses Adam's update into fusions that carry no optimizer name, so on JAX the optimizer
  update is counted as other ops, and XLA:CPU's YNNPACK fusions (``ynn_fusion``) as conv/matmul (the note says so).

Each op counts with its exclusive (self) time: its interval minus the intervals of the ops it calls on its thread
(``exclusive_intervals``), so nested ops (``aten::conv2d`` > ``aten::convolution`` > ``aten::mkldnn_convolution``)
are never counted twice. ``op_tracer(runner)`` returns a tracer with ``start()`` and ``stop() -> [OpInterval]``,
``profiler_name`` and ``note``; frameworks are imported only when it is called.
"""

from __future__ import annotations

import glob
import shutil
import tempfile
from typing import NamedTuple


class OpInterval(NamedTuple):
    """One op's exclusive time (or one piece of it) as a profiler saw it: its name, its start and end (seconds, one clock per trace), its thread,
    and the names of the ranges around it (``scope``, outermost first, joined by ``/``)."""

    name: str
    start_s: float
    end_s: float
    thread: str = ""
    scope: str = ""


def op_tracer(runner):
    """The tracer of ``runner``'s framework (``torch``, ``tensorflow`` or ``jax``)."""
    framework = "torch" if runner.implementation == "torch" else (
        "tensorflow" if runner.implementation == "tf_keras" else runner.backend)
    tracers = {"torch": TorchTracer, "tensorflow": TensorflowTracer, "jax": JaxTracer}
    if framework not in tracers:
        raise ValueError(f"No op tracer for {framework!r}. Valid choices: {', '.join(tracers)}.")
    return tracers[framework]()


class TorchTracer:
    """``torch.profiler`` over the traced steps."""

    profiler_name = "torch.profiler"
    note = ""

    def start(self):
        import torch
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        self._profile = profile(activities=activities)
        self._profile.start()

    def stop(self):
        self._profile.stop()
        threads = {}
        for event in self._profile.events():
            if event.is_user_annotation:
                continue
            scope, parent = [], event.cpu_parent
            while parent is not None:
                scope.append(parent.name)
                parent = parent.cpu_parent
            device = str(getattr(event, "device_type", "")).rsplit(".", 1)[-1]
            thread = f"cuda:{event.device_index}" if device == "CUDA" else f"cpu:{event.thread}"
            threads.setdefault(thread, []).append((event.name, 1e-6 * event.time_range.start,
                                                   1e-6 * event.time_range.end, "/".join(reversed(scope))))
        return [op for thread, events in threads.items() for op in exclusive_intervals(events, thread=thread)]


class _XSpaceTracer:
    """Shared by TensorFlow and JAX: profile into a temporary directory, read its XSpace, remove it."""

    note = ""

    def start(self):
        self._dir = tempfile.mkdtemp(prefix="twinbench-trace-")
        self._start(self._dir)

    def stop(self):
        self._stop()
        try:
            files = glob.glob(f"{self._dir}/**/*.xplane.pb", recursive=True)
            if not files:
                raise RuntimeError(f"{self.profiler_name} wrote no *.xplane.pb into {self._dir}")
            return self._read(files[0])
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


def exclusive_intervals(events, *, thread: str) -> list[OpInterval]:
    """The exclusive (self) time of one thread's ops ``(name, start_s, end_s, scope)``, as ``OpInterval`` pieces:
    each op's interval minus the intervals of the ops nested in it (an op that starts inside another but ends after
    it is cut at its parent's end).

    >>> [(op.name, op.start_s, op.end_s) for op in exclusive_intervals([("a", 0, 10, ""), ("b", 2, 5, "")], thread="")]
    [('a', 0, 2), ('b', 2, 5), ('a', 5, 10)]
    """
    pieces, stack = [], []  # stack entries: [name, start, end, scope, cursor (where its next own piece begins)]

    def close(until):
        while stack and stack[-1][2] <= until:
            name, _, end, scope, cursor = stack.pop()
            if end > cursor:
                pieces.append(OpInterval(name, cursor, end, thread, scope))
            if stack:
                stack[-1][4] = max(stack[-1][4], end)

    for name, start, end, scope in sorted(events, key=lambda e: (e[1], -e[2])):
        close(start)
        if stack:
            parent = stack[-1]
            if start > parent[4]:
                pieces.append(OpInterval(parent[0], parent[4], start, thread, parent[3]))
            parent[4] = max(parent[4], start)
            end = min(end, parent[2])
        stack.append([name, start, end, scope, start])
    close(float("inf"))
    return pieces


class TensorflowTracer(_XSpaceTracer):
    """``tf.profiler.experimental.start/stop``; the XSpace read with TensorFlow's own ``xplane_pb2``."""

    profiler_name = "tf.profiler"

    def _start(self, directory):
        import tensorflow as tf

        options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=2, python_tracer_level=0,
                                                           device_tracer_level=1)
        tf.profiler.experimental.start(directory, options=options)

    def _stop(self):
        import tensorflow as tf

        tf.profiler.experimental.stop()

    def _read(self, path):
        try:
            from tensorflow.tsl.profiler.protobuf import xplane_pb2
        except ImportError:
            try:
                from tsl.profiler.protobuf import xplane_pb2
            except ImportError:
                raise RuntimeError("this TensorFlow ships no XSpace parser (tensorflow.tsl.profiler.protobuf."
                                   "xplane_pb2); twinbench trace cannot read its profile") from None
        space = xplane_pb2.XSpace()
        with open(path, "rb") as file:
            space.ParseFromString(file.read())
        ops = []
        for plane in space.planes:
            if not (plane.name.startswith("/host:") or plane.name.startswith("/device:")) or "metadata" in plane.name:
                continue
            hlo_stats = {key for key, stat in plane.stat_metadata.items() if stat.name == "hlo_op"}
            for line in plane.lines:
                events = []
                for event in line.events:
                    meta = plane.event_metadata[event.metadata_id]
                    start = 1e-9 * line.timestamp_ns + 1e-12 * event.offset_ps
                    end = start + 1e-12 * event.duration_ps
                    name, kind = meta.name, meta.display_name
                    if kind and name.endswith(":" + kind) and "::" not in name:  # a TensorFlow op: scope/name:Type
                        events.append((kind, start, end, name[: -len(kind) - 1]))
                    elif any(stat.metadata_id in hlo_stats for stat in event.stats):  # an XLA op
                        events.append((name, start, end, ""))
                ops += exclusive_intervals(events, thread=f"{plane.name}:{line.id}")
        return ops


class JaxTracer(_XSpaceTracer):
    """``jax.profiler.start_trace/stop_trace``; the XSpace read with ``jax.profiler.ProfileData``."""

    profiler_name = "jax.profiler"
    note = ("XLA fuses Adam's update into fusions with no optimizer name: on JAX it is counted in other ops; "
            "ynn_fusion/xnn_fusion (dots and convolutions XLA:CPU hands to YNNPACK/XNNPACK) count as conv/matmul, "
            "though such a fusion may hold some elementwise work too")

    def _start(self, directory):
        import jax

        options = jax.profiler.ProfileOptions()
        options.python_tracer_level = 0
        options.host_tracer_level = 2
        jax.profiler.start_trace(directory, profiler_options=options)

    def _stop(self):
        import jax

        jax.profiler.stop_trace()

    def _read(self, path):
        import jax

        data = jax.profiler.ProfileData.from_file(path)
        ops = []
        for plane in data.planes:
            if plane.name.endswith("metadata"):
                continue
            for index, line in enumerate(plane.lines):
                events = []
                for event in line.events:
                    stats = dict(event.stats)
                    if "hlo_op" in stats:
                        start = 1e-9 * event.start_ns
                        events.append((event.name, start, start + 1e-9 * event.duration_ns, ""))
                ops += exclusive_intervals(events, thread=f"{plane.name}:{index}")
        return ops
