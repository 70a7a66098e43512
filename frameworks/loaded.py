"""Which math libraries a process really runs on: the shared objects mapped into it.

A build's own account of its BLAS can be wrong (the comparison this project answers published an
"OpenBLAS" Caffe that was linked to ATLAS), and Debian links a generic ``libblas.so.3`` whose
target the BLAS alternatives choose. ``/proc/self/maps`` says what the loader actually mapped; the
backends of the frameworks that run on a system BLAS (Caffe, Chainer's NumPy, NNabla) record it in
their build facts and derive ``in_effect`` from it.

Must import on Python 3.9 (the bullseye images).
"""

from __future__ import annotations

import ctypes
import os
import struct

# Substrings of the library names that are math libraries (BLAS, LAPACK, their threading runtimes).
MATH_TAGS = ("mkl", "openblas", "atlas", "blis", "libblas", "libcblas", "liblapack", "dnnl", "mkldnn", "ideep")
# Directories whose prefix the compact form drops (the library's own subdirectory stays: it names
# the BLAS alternative, as in ``atlas/libblas.so.3`` or ``openblas-pthread/libblas.so.3``).
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu/", "/lib/x86_64-linux-gnu/", "/usr/lib/", "/opt/venv/lib/")
# Debian's BLAS alternative for libblas.so.3 (x86_64).
BLAS_LINK = "/usr/lib/x86_64-linux-gnu/libblas.so.3"
FACT_WIDTH = 80  # a build fact is a short string (the reports print them in a table)


def mapped_libraries(tags: tuple[str, ...] = MATH_TAGS, maps: str = "/proc/self/maps") -> list[str]:
    """Full paths of the shared objects mapped into this process whose file name holds one of ``tags``."""
    found: set[str] = set()
    try:
        with open(maps, encoding="utf-8") as lines:
            for line in lines:
                fields = line.split(None, 5)
                path = fields[5].strip() if len(fields) == 6 else ""
                name = path.rsplit("/", 1)[-1].lower()
                if path.startswith("/") and ".so" in name and any(tag in name for tag in tags):
                    found.add(path)
    except OSError:
        return []
    return sorted(found)


def blas_families(paths: list[str]) -> list[str]:
    """The BLAS implementations among ``paths`` (MKL, OpenBLAS, ATLAS, BLIS, reference BLAS), in that order."""
    lowered = [p.lower() for p in paths]
    checks = (
        ("MKL", lambda p: "libmkl_" in p),
        ("OpenBLAS", lambda p: "openblas" in p),
        ("ATLAS", lambda p: "atlas" in p),
        ("BLIS", lambda p: "blis" in p),
        ("reference BLAS", lambda p: "/blas/libblas.so" in p or "/blas/libcblas.so" in p),
    )
    return [name for name, test in checks if any(test(p) for p in lowered)]


def compact(paths: list[str], width: int = FACT_WIDTH) -> str:
    """The libraries as one short fact: names with the alternative's subdirectory, shortened to ``width``."""
    names = []
    for path in paths:
        for prefix in LIB_DIRS:
            if path.startswith(prefix):
                path = path[len(prefix) :]
                break
        if path.startswith("/") or "site-packages/" in path:  # a wheel's own copy: its name says enough
            path = path.rsplit("/", 1)[-1]
        names.append(path)
    text = ",".join(names)
    if len(text) > width:  # MKL maps half a dozen libmkl_*.so.2: drop the "lib" and ".so.N" parts
        text = ",".join(_short(n) for n in names)
    if len(text) > width:
        text = text[: width - 8].rsplit(",", 1)[0] + ",+more"
    return text


def _short(name: str) -> str:
    """``openblas-pthread/libblas.so.3`` -> ``openblas-pthread/blas``."""
    directory, _, base = name.rpartition("/")
    base = base.removeprefix("lib").split(".so", 1)[0]
    return f"{directory}/{base}" if directory else base


def blas_facts() -> dict[str, str]:
    """``blas_loaded`` (what is mapped), ``blas_alternative`` (where Debian's libblas.so.3 points, when it
    exists) and ``blas_in_effect`` (the families mapped, joined by '+' when more than one is)."""
    paths = mapped_libraries()
    facts: dict[str, str] = {}
    if paths:
        facts["blas_loaded"] = compact(paths)
    if os.path.lexists(BLAS_LINK):
        facts["blas_alternative"] = compact([os.path.realpath(BLAS_LINK)])
    families = blas_families(paths)
    if families:
        facts["blas_in_effect"] = "+".join(families)
    return facts


def blas_threads() -> int | None:
    """Threads the mapped BLAS says it runs with (threadpoolctl asks OpenBLAS, MKL and BLIS), or None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [int(pool["num_threads"]) for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(counts) if counts else None


def needed_libraries(path: str) -> list[str]:
    """The ``DT_NEEDED`` entries of an ELF64 little-endian shared object: the libraries it links itself.

    What a framework's own library links tells whose BLAS it calls, where the process also maps others
    (NumPy's). Empty for a file that is not such an object.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    if data[:6] != b"\x7fELF\x02\x01":
        return []
    shoff, shentsize, shnum = struct.unpack_from("<Q", data, 0x28)[0], *struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    needed = []
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type != 6 or not entsize:  # SHT_DYNAMIC; its sh_link is the string table of the names
            continue
        strtab = sections[link][4]
        for at in range(offset, offset + size, entsize):
            tag, value = struct.unpack_from("<qQ", data, at)
            if tag == 0:  # DT_NULL
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", strtab + value)
                needed.append(data[strtab + value : end].decode())
    return needed


OPENMP_TAGS = ("libgomp", "libiomp", "libomp")


def omp_max_threads(tags: tuple[str, ...] = OPENMP_TAGS) -> int:
    """``omp_get_max_threads()`` of the first OpenMP runtime mapped into this process (a wheel's own
    libgomp, say) whose name has one of ``tags``; 0 when none is. How a framework that gives no
    thread query of its own is read back."""
    for path in mapped_libraries(tags):
        try:
            return int(ctypes.CDLL(path).omp_get_max_threads())
        except (OSError, AttributeError):
            continue
    return 0
