"""Facts about the machine a measurement ran on, recorded next to every benchmark result."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import cv2
import numpy as np
import torch


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, str | int]:
    governor = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "governor": governor.read_text().strip() if governor.exists() else "unknown",
        "system": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
