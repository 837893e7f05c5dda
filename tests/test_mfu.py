"""MFU: peak lookup by GPU name and the arithmetic (no framework, no device needed)."""

from __future__ import annotations

import pytest

from twinbench.measuring.mfu import efficiency, find_peak


@pytest.mark.parametrize(("name", "label"), [
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM"),
    ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe"),
    ("NVIDIA H200", "NVIDIA H200 SXM"),
    ("NVIDIA A100-SXM4-80GB", "NVIDIA A100"),
    ("NVIDIA L4", "NVIDIA L4"),
    ("NVIDIA L40S", "NVIDIA L40S"),
    ("NVIDIA A10", "NVIDIA A10"),
    ("Tesla T4", "NVIDIA T4"),
])
def test_peaks_are_found_by_device_name(name, label):
    assert find_peak(name).label == label


@pytest.mark.parametrize("name", ["NVIDIA H100 NVL", "NVIDIA A10G", "NVIDIA GeForce RTX 4090", None, ""])
def test_unknown_devices_have_no_peak(name):
    assert find_peak(name) is None


def test_mfu_is_train_flops_times_throughput_over_peak():
    rate = {"median": 1000.0, "ci_low": 900.0, "ci_high": 1100.0}
    out = efficiency(forward_flops=4_000_000_000, images_per_s=rate, device="cuda", device_name="NVIDIA H100 PCIe")
    # 3 x 4 GFLOP per image x 1000 images/s = 12 TFLOP/s of 51 TFLOP/s (float32)
    assert out["train_flops_per_image"] == 12_000_000_000
    assert out["achieved_gflops"]["median"] == pytest.approx(12_000)
    assert out["mfu"]["median"] == pytest.approx(12 / 51)
    assert out["mfu"]["ci_low"] == pytest.approx(12 * 0.9 / 51)
    assert out["peak"]["precision"] == "fp32" and out["note"] is None


def test_cpu_reports_achieved_flops_and_says_why_there_is_no_mfu():
    out = efficiency(forward_flops=10, images_per_s={"median": 2.0, "ci_low": 1.0, "ci_high": 3.0}, device="cpu",
                     device_name=None)
    assert out["mfu"] is None and out["peak"] is None and "CPU" in out["note"]
    assert out["achieved_gflops"]["median"] == pytest.approx(60 / 1e9)
