# NumPy on Intel MKL. No MKL build of NumPy is on PyPI, so: Debian's python3-numpy (bookworm's on
# Python 3.11, bullseye's on 3.9), which links libblas.so.3/liblapack.so.3 through Debian's BLAS
# alternatives, with both alternatives pointed at libmkl_rt from the `mkl` wheel (PyPI). The virtualenv
# sees Debian's numpy (--system-site-packages) and runs Debian's /usr/bin/python3 on either base image;
# the build stage has the Debian packages too, so a framework pip installs on top (Chainer) takes
# Debian's numpy instead of pulling PyPI's (OpenBLAS) one.
# The build fails unless numpy, once it has multiplied two matrices, has MKL mapped.
# The build stage drops what numpy cannot use (~350 MB): GPU offload (libomptarget, Unified Runtime),
# ILP64 interfaces, ScaLAPACK/BLACS/CDFT, static and debug files.
#
# Build args and docker/build-extras/ as in docker/Dockerfile (BUILD_CHECK too); REQUIREMENTS is the
# mkl pin (and a framework's), APT_PACKAGES python3-numpy and libgomp1 (MKL_THREADING_LAYER=GNU uses
# GNU OpenMP).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG REQUIREMENTS
ARG APT_PACKAGES="python3-numpy libgomp1"
ARG INDEX_URL=""
ARG EXTRA_INDEX_URL=""
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY docker/build-extras/ /tmp/build-extras/
RUN set -eu; set -f; \
    test -n "$REQUIREMENTS" || { echo "build arg REQUIREMENTS is empty" >&2; exit 1; }; \
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv $APT_PACKAGES; \
    extras=/tmp/build-extras; \
    if [ -s "$extras/ca-bundle.crt" ]; then export PIP_CERT="$extras/ca-bundle.crt"; fi; \
    if [ -d "$extras/wheels" ]; then export PIP_FIND_LINKS="$extras/wheels"; fi; \
    if [ -n "$INDEX_URL" ]; then export PIP_INDEX_URL="$INDEX_URL"; fi; \
    if [ -n "$EXTRA_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL="$EXTRA_INDEX_URL"; fi; \
    /usr/bin/python3 -m venv --system-site-packages /opt/venv; \
    /opt/venv/bin/python -m pip install --progress-bar off $REQUIREMENTS; \
    test -e /opt/venv/lib/libmkl_rt.so.2; \
    cd /opt/venv/lib; set +f; \
    rm -f libomptarget* libur_* *.spv *.a *.dbg \
          libmkl_*ilp64* libmkl_scalapack* libmkl_blacs* libmkl_cdft* libmkl_sycl*

FROM ${BASE_IMAGE}
ARG APT_PACKAGES="python3-numpy libgomp1"
ARG FRAMEWORK=numpy
ARG DEVICE=cpu
ARG IMAGE_NAME=numpy-mkl
ENV DEBIAN_FRONTEND=noninteractive
RUN set -eu; set -f; \
    apt-get update -qq; \
    apt-get install -y -qq --no-install-recommends python3 $APT_PACKAGES; \
    apt-get clean; set +f; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    echo 'bench:x:10001:10001:benchmark:/tmp:/usr/sbin/nologin' >> /etc/passwd; \
    echo 'bench:x:10001:' >> /etc/group; \
    mkdir -p /results; chown 10001:10001 /results
COPY --from=builder /opt/venv /opt/venv
# libmkl_rt loads its computational layers (core, gf_lp64, gnu_thread, avx2, ...) by name: the
# loader finds them through ld.so.conf. Then libblas.so.3 and liblapack.so.3 become libmkl_rt.
RUN set -eu; \
    multiarch=x86_64-linux-gnu; mkl=/opt/venv/lib/libmkl_rt.so.2; \
    test "$(dpkg --print-architecture)" = amd64; \
    echo /opt/venv/lib > /etc/ld.so.conf.d/mkl.conf; ldconfig; \
    for lib in libblas.so.3 liblapack.so.3; do \
        update-alternatives --install /usr/lib/$multiarch/$lib $lib-$multiarch $mkl 1000; \
        update-alternatives --set $lib-$multiarch $mkl; \
    done
COPY frameworks/ /app/frameworks/
RUN /opt/venv/bin/python -m compileall -q /app/frameworks
# Debian's numpy uses the gfortran calling convention: MKL's GNU interface and GNU OpenMP.
ENV PATH=/opt/venv/bin:$PATH \
    MKL_INTERFACE_LAYER=GNU,LP64 \
    MKL_THREADING_LAYER=GNU \
    HOME=/tmp \
    USER=bench \
    XDG_CACHE_HOME=/tmp/.cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    DLBENCH_IMAGE=${IMAGE_NAME} \
    DLBENCH_FRAMEWORK=${FRAMEWORK} \
    DLBENCH_DEVICE=${DEVICE}
RUN python -c "import numpy as np; a = np.ones((256, 256)); assert float((a @ a)[0, 0]) == 256.0; \
maps = open('/proc/self/maps').read(); \
assert 'libmkl_rt' in maps and 'libmkl_core' in maps, 'numpy did not load MKL'; \
print('numpy', np.__version__, 'runs on MKL')"
ARG BUILD_CHECK=""
RUN if [ -n "$BUILD_CHECK" ]; then cd /app && python -m frameworks.selfcheck $BUILD_CHECK; fi
LABEL dlbench.image=${IMAGE_NAME} dlbench.framework=${FRAMEWORK} dlbench.device=${DEVICE}
WORKDIR /app
USER 10001:10001
CMD ["sh", "-c", "exec python -m frameworks.predict --all --framework \"$DLBENCH_FRAMEWORK\" --device \"$DLBENCH_DEVICE\" --output \"/results/$DLBENCH_IMAGE.jsonl\""]
