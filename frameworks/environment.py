"""What the machine is, and how busy it is: recorded with every cell.

On 2 cores a timing is only honest on a quiet machine (a 2-thread run was seen 10x slower
while an image built beside it), so the harness measures the CPU time that *other* processes
used during its timed loop, from the machine-wide /proc/stat (not namespaced in containers).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .result import Environment, Machine

LOAD_WARNING_CPUS = 0.25  # other processes' average CPU use above which a cell is flagged
# /proc/stat counts in clock ticks (10 ms): over a few milliseconds one tick of another process
# reads as several CPUs busy, so shorter windows give no load figure at all.
LOAD_MIN_WINDOW_S = 0.5
# The variables BLAS and OpenMP libraries read their thread count from, once, when they load:
# predict sets them before importing NumPy, a sweep's point processes get them per thread count.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "TVM_NUM_THREADS",  # TVM's runtime thread pool
)


# The instruction-set extensions math kernels dispatch on (BLAS, oneDNN, XNNPACK, XLA): two machines
# that differ in these run different code for the same cell, whatever their "model name" says.
DISPATCH_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512dq", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2",
)  # fmt: skip


def cpuinfo_fields(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical CPU."""
    cpus: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        if not line.strip():
            if cpus[-1]:
                cpus.append({})
            continue
        key, _, value = line.partition(":")
        cpus[-1][key.strip()] = value.strip()
    return [c for c in cpus if c]


def machine_identity(cpuinfo: str, caches: tuple[str, ...], hypervisor: str | None) -> Machine:
    """The machine from /proc/cpuinfo's text, its cache sizes and its hypervisor; fingerprinted."""
    cpus = cpuinfo_fields(cpuinfo)
    first = cpus[0] if cpus else {}
    flags = set((first.get("flags") or first.get("Features") or "").split())
    sockets = len({c.get("physical id", "0") for c in cpus}) or 1
    per_socket = int(first.get("cpu cores", "0") or 0) or len(cpus) // sockets or 1
    facts = {
        "vendor": first.get("vendor_id") or first.get("CPU implementer", "unknown"),
        "family": first.get("cpu family") or first.get("CPU architecture", ""),
        "model": first.get("model") or first.get("CPU part", ""),
        "stepping": first.get("stepping") or first.get("CPU variant", ""),
        "model_name": first.get("model name") or platform.processor() or platform.machine(),
        "flags": tuple(f for f in DISPATCH_FLAGS if f in flags),
        "caches": caches,
        "sockets": sockets,
        "cores": per_socket * sockets,
        "threads": len(cpus) or os.cpu_count() or 1,
        "hypervisor": hypervisor,
    }
    # The hypervisor's presence is part of the fingerprint, its name is not: a container without lscpu
    # must fingerprint the machine exactly as its host does.
    identity = {**facts, "hypervisor": hypervisor is not None}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return Machine(**facts, fingerprint=digest)  # type: ignore[arg-type]


def cache_sizes(cpu_dir: str = "/sys/devices/system/cpu/cpu0/cache") -> tuple[str, ...]:
    """CPU 0's caches as "L1d 48K", "L1i 32K", "L2 2048K", "L3 307200K" (from sysfs)."""
    found = []
    for index in sorted(glob.glob(f"{cpu_dir}/index*")):
        try:
            level, kind, size = (Path(index, name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        found.append(f"L{level}{suffix} {size}")
    return tuple(found)


def hypervisor_vendor(cpuinfo: str) -> str | None:
    """The hypervisor, as lscpu reads it from CPUID; "unknown" when the CPU says there is one but not which."""
    if "hypervisor" not in cpuinfo.split():
        return None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for line in out.splitlines():
        if line.startswith("Hypervisor vendor:"):
            return line.split(":", 1)[1].strip()
    with contextlib.suppress(OSError):
        return Path("/sys/hypervisor/type").read_text().strip() or "unknown"
    return "unknown"


def machine() -> Machine:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    return machine_identity(text, cache_sizes(), hypervisor_vendor(text))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def thread_count(threads: int) -> int:
    """Threads to run with: the request, or (0) every CPU this process may run on."""
    return threads if threads > 0 else len(available_cpus())


def format_cpuset(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (the cpuset syntax Docker and taskset take)."""
    parts, start = [], None
    for i, cpu in enumerate(cpus):
        if start is None:
            start = cpu
        if i + 1 == len(cpus) or cpus[i + 1] != cpu + 1:
            parts.append(str(start) if start == cpu else f"{start}-{cpu}")
            start = None
    return ",".join(parts)


def memory_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_limit_bytes() -> int | None:
    """The tightest cgroup memory limit over this process (a container's ``--memory``), or None.

    /proc/meminfo shows the host's memory even inside a container, so without this a cell run
    under an 8 GiB limit would claim the whole machine's memory on the page.
    """
    limits = [limit for path in _cgroup_memory_files() if (limit := _read_limit(path)) is not None]
    total = memory_bytes()
    tightest = min(limits, default=None)
    return tightest if tightest is not None and (total == 0 or tightest < total) else None


def _cgroup_memory_files() -> list[str]:
    """Limit files from this process's memory cgroup up to the root (cgroup v2 and v1).

    Inside a container the cgroup's own directory is mounted at the root, so the root files
    come last as the fallback that finds the container's limit.
    """
    files = []
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as cgroup:
            lines = cgroup.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if controllers == "":
            base, name = "/sys/fs/cgroup", "memory.max"
        elif "memory" in controllers.split(","):
            base, name = "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        files += ["/".join([base, *parts[:i], name]) for i in range(len(parts), 0, -1)]
    return [*files, "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]


def _read_limit(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as limit:
            text = limit.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit at this level


def in_container() -> bool:
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"):
        return True
    try:
        with open("/proc/1/cgroup", encoding="utf-8") as cgroup:
            return any(tag in cgroup.read() for tag in ("docker", "containerd", "kubepods"))
    except OSError:
        return False


def gpu_name() -> str | None:
    """The NVIDIA GPU's name as nvidia-smi reports it, or None when there is none."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return "; ".join(lines) or None


def environment(matmul_peak_gflops: float | None = None) -> Environment:
    cpus = available_cpus()
    return Environment(
        cpu_model=cpu_model(),
        cpu_count=os.cpu_count() or len(cpus),
        cpus_available=len(cpus),
        cpuset=format_cpuset(cpus),
        memory_bytes=memory_bytes(),
        memory_limit_bytes=memory_limit_bytes(),
        python=platform.python_version(),
        os=platform.platform(),
        in_container=in_container(),
        image_id=os.environ.get("BENCH_IMAGE_ID") or None,
        gpu=gpu_name(),
        load_avg_1m=os.getloadavg()[0],
        matmul_peak_gflops=matmul_peak_gflops,
        machine=machine(),
        cpu_governor=cpu_governor(),
        cpu_boost=cpu_boost(),
    )


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def cpu_governor() -> str | None:
    """cpufreq's scaling governor of the first CPU ("performance", "powersave", ...); None where the
    kernel shows no cpufreq (most virtual machines): then the report says it is not known."""
    return _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def cpu_boost() -> str | None:
    """Whether the CPU may boost above its base clock: cpufreq's ``boost`` (AMD, acpi-cpufreq) or
    intel_pstate's ``no_turbo`` (inverted); None where neither is readable."""
    boost = _read("/sys/devices/system/cpu/cpufreq/boost")
    if boost in ("0", "1"):
        return "on" if boost == "1" else "off"
    no_turbo = _read("/sys/devices/system/cpu/intel_pstate/no_turbo")
    if no_turbo in ("0", "1"):
        return "off" if no_turbo == "1" else "on"
    return None


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _machine_busy_seconds() -> float | None:
    """CPU-seconds all processes on the machine have spent busy (from /proc/stat)."""
    try:
        with open("/proc/stat", encoding="utf-8") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class LoadMeter:
    """Measures other processes' average CPU use (in CPUs) between ``start`` and ``stop``."""

    _busy: float | None = None
    _own: float = 0.0
    _wall: float = 0.0

    def start(self) -> None:
        self._busy, self._own, self._wall = _machine_busy_seconds(), _own_cpu_seconds(), time.monotonic()

    def stop(self) -> float | None:
        """Other processes' CPU use in CPUs, or None where /proc/stat is missing or the window too short."""
        busy, own, wall = _machine_busy_seconds(), _own_cpu_seconds(), time.monotonic()
        if busy is None or self._busy is None or wall - self._wall < LOAD_MIN_WINDOW_S:
            return None
        other = (busy - self._busy) - (own - self._own)
        return max(other, 0.0) / (wall - self._wall)


# The extensions that decide int8 speed on x86: VNNI (a u8 x s8 dot product in one instruction, in AVX-512
# or AVX form) and AMX's int8 tiles; without them int8 kernels widen through VPMADDUBSW/VPMADDWD.
INT8_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8")


def int8_flags() -> tuple[str, ...]:
    """The int8-deciding extensions this CPU has (``INT8_FLAGS``), as /proc/cpuinfo names them."""
    have = set(machine().flags)
    return tuple(f for f in INT8_FLAGS if f in have)


def has_vnni() -> bool:
    return any(f in int8_flags() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
