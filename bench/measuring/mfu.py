"""Model FLOPs utilisation (MFU): the share of a device's peak arithmetic that training achieved.

    MFU = training FLOPs per image x images per second / the device's peak FLOP/s

- Training FLOPs per image are 3 x the forward FLOPs counted from the model's layer shapes
  (``twinbench.models.flops``: 2 FLOPs per multiply-accumulate of the convolutions and Dense layers; the backward
  pass costs about twice the forward one). This is the convention of Kaplan et al., *Scaling Laws for
  Neural Language Models* (2020) and Chowdhery et al., *PaLM* (2022, appendix B): it counts the model's
  arithmetic, not what a framework happens to execute (recomputation, padding, BatchNorm are not counted).
- The peak is the dense (no sparsity) figure of NVIDIA's datasheet for the precision the run used.
  twinbench trains in float32 with TF32 off, so the denominator is the plain float32 peak (CUDA cores);
  the TF32 and BF16 tensor-core peaks are listed for runs that use them.
- On a CPU there is no peak in the table (it depends on the exact part, clock and vector units): MFU is not
  reported, the achieved GFLOP/s is.

Only names in ``PEAKS`` get an MFU; a GPU that matches none gets the achieved FLOP/s and a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from twinbench.models.flops import TRAIN_FLOPS_PER_FORWARD_FLOP, model_flops


@dataclass(frozen=True)
class Peak:
    """Dense peak throughput of one GPU model, in TFLOP/s, by precision, and where the figures come from."""

    label: str
    pattern: str  # regular expression matched (case-insensitive) against the device name
    tflops: dict[str, float]
    source: str


# Dense peaks in TFLOP/s. Datasheets quote the tensor-core figures "with sparsity"; dense is half of that,
# written below as "sparse / 2". Sources are NVIDIA's product datasheets, named (their URLs move).
PEAKS = (  # the first pattern that matches wins: H100 PCIe before H100; NVL variants match nothing
    Peak("NVIDIA H100 PCIe", r"H100.*PCIE", {"fp32": 51.0, "tf32": 756 / 2, "bf16": 1513 / 2},
         "NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe column)"),
    Peak("NVIDIA H100 SXM", r"H100(?!.*NVL)", {"fp32": 67.0, "tf32": 989 / 2, "bf16": 1979 / 2},
         "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column)"),
    Peak("NVIDIA H200 SXM", r"H200(?!.*NVL)", {"fp32": 67.0, "tf32": 989 / 2, "bf16": 1979 / 2},
         "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column)"),
    Peak("NVIDIA A100", r"A100", {"fp32": 19.5, "tf32": 312 / 2, "bf16": 624 / 2},
         "NVIDIA A100 Tensor Core GPU datasheet"),
    Peak("NVIDIA L40S", r"L40S", {"fp32": 91.6, "tf32": 366 / 2, "bf16": 733 / 2}, "NVIDIA L40S GPU datasheet"),
    Peak("NVIDIA L4", r"\bL4\b", {"fp32": 30.3, "tf32": 120 / 2, "bf16": 242 / 2}, "NVIDIA L4 Tensor Core GPU datasheet"),
    Peak("NVIDIA A10", r"\bA10\b", {"fp32": 31.2, "tf32": 125 / 2, "bf16": 250 / 2}, "NVIDIA A10 Tensor Core GPU datasheet"),
    Peak("NVIDIA V100 SXM2", r"V100", {"fp32": 15.7}, "NVIDIA Tesla V100 GPU datasheet (SXM2 column)"),
    Peak("NVIDIA T4", r"\bT4\b", {"fp32": 8.1}, "NVIDIA T4 Tensor Core GPU datasheet"),
)


def find_peak(device_name: str | None) -> Peak | None:
    """The table entry for a GPU name such as ``"NVIDIA H100 80GB HBM3"``, or ``None``."""
    if not device_name:
        return None
    for peak in PEAKS:
        if re.search(peak.pattern, device_name, flags=re.IGNORECASE):
            return peak
    return None


def efficiency(*, forward_flops: int, images_per_s: dict | None, device: str, device_name: str | None,
               precision: str = "fp32") -> dict:
    """Achieved FLOP/s and MFU of a training run.

    Args:
        forward_flops: forward FLOPs per image (``twinbench.models.flops``).
        images_per_s: ``twinbench.stats.summarize`` of the training throughput (median and CI are used).
        device: ``"cpu"`` or a GPU device string (``"cuda"``, ``"gpu"``).
        device_name: the GPU's name (NVML), for the peak table.
        precision: the arithmetic the run used: ``fp32`` (twinbench's setting: float32, TF32 off).

    Returns:
        A JSON-serialisable dict: ``forward_flops_per_image``, ``train_flops_per_image``,
        ``achieved_gflops`` (median, ci_low, ci_high), ``peak`` (label, precision, tflops, source) or None,
        ``mfu`` (median, ci_low, ci_high) or None, and ``note`` when there is no MFU.
    """
    train_flops = TRAIN_FLOPS_PER_FORWARD_FLOP * int(forward_flops)
    out = {"forward_flops_per_image": int(forward_flops), "train_flops_per_image": train_flops,
           "convention": "3 x forward FLOPs per image; forward = 2 x MACs of conv and dense layers",
           "achieved_gflops": None, "peak": None, "mfu": None, "note": None}
    if images_per_s:
        out["achieved_gflops"] = {key: train_flops * images_per_s[key] / 1e9 for key in ("median", "ci_low", "ci_high")}
    on_cpu = str(device).lower().startswith("cpu")
    peak = None if on_cpu else find_peak(device_name)
    if on_cpu:
        out["note"] = "CPU: no peak FLOP/s in the table, so no MFU; the achieved GFLOP/s is reported"
    elif peak is None or precision not in peak.tflops:
        out["note"] = f"no {precision} peak for device {device_name!r} in twinbench.measuring.mfu.PEAKS; achieved GFLOP/s only"
    else:
        out["peak"] = {"label": peak.label, "precision": precision, "tflops": peak.tflops[precision],
                       "source": peak.source}
        if out["achieved_gflops"]:
            out["mfu"] = {key: value / (1e3 * peak.tflops[precision]) for key, value in out["achieved_gflops"].items()}
    return out


def run_efficiency(record: dict, *, model_name, input_shape, num_classes) -> dict:
    """Achieved FLOP/s and MFU of a record's steady-state throughput (FLOPs from ``twinbench.models.flops``).

    Counts the FLOPs on the Keras definition, so the Keras backend must be chosen (it is, after ``get_runner``).
    """
    gpu = (record.get("environment") or {}).get("gpu") or {}
    try:
        forward_flops = model_flops(model_name, input_shape=input_shape, num_classes=num_classes)
    except NotImplementedError as err:  # a layer twinbench.models.flops cannot count (e.g. a recurrent one)
        return {"unavailable": str(err)}
    return efficiency(forward_flops=forward_flops,
                      images_per_s=record["timing"]["throughput_images_per_s"],
                      device=str((record.get("settings") or {}).get("device", "cpu")), device_name=gpu.get("name"))
