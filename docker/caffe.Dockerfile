# Caffe 1.0 from Debian bullseye (python3-caffe: Python 3.9, the last release that packages it) on one
# BLAS, chosen with update-alternatives. libcaffe1 links libblas.so.3 through Debian's BLAS
# alternatives, so one build of Caffe runs on ATLAS, OpenBLAS or MKL: BLAS=atlas|openblas|mkl points
# libblas.so.3 and liblapack.so.3 at libatlas3-base, libopenblas0-pthread, or libmkl_rt from the `mkl`
# wheel (PyPI; the build stage trims it as docker/numpy-mkl.Dockerfile does). The build fails unless a
# Caffe network made with caffe.NetSpec runs a forward pass with that BLAS, and only that one, mapped
# into the process. Debian's python3-caffe needs Debian's /usr/bin/python3: the virtualenv sees it
# (--system-site-packages) on either base image (dlbench/base:bullseye or python:3.9-slim-bullseye).
#
# Build args and docker/build-extras/ as in docker/Dockerfile; REQUIREMENTS: threadpoolctl (reads the
# BLAS threads back), and mkl for BLAS=mkl; APT_PACKAGES: the BLAS package (libgomp1 for MKL's GNU
# threading layer). The three images share the large python3-caffe layer.
ARG BASE_IMAGE=dlbench/base:bullseye

FROM ${BASE_IMAGE} AS builder
ARG REQUIREMENTS
ARG INDEX_URL=""
ARG EXTRA_INDEX_URL=""
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY docker/build-extras/ /tmp/build-extras/
RUN set -eu; set -f; \
    test -n "$REQUIREMENTS" || { echo "build arg REQUIREMENTS is empty" >&2; exit 1; }; \
    if ! dpkg -s python3-venv >/dev/null 2>&1; then \
        apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv; \
    fi; \
    extras=/tmp/build-extras; \
    if [ -s "$extras/ca-bundle.crt" ]; then export PIP_CERT="$extras/ca-bundle.crt"; fi; \
    if [ -d "$extras/wheels" ]; then export PIP_FIND_LINKS="$extras/wheels"; fi; \
    if [ -n "$INDEX_URL" ]; then export PIP_INDEX_URL="$INDEX_URL"; fi; \
    if [ -n "$EXTRA_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL="$EXTRA_INDEX_URL"; fi; \
    /usr/bin/python3 -m venv --system-site-packages /opt/venv; \
    /opt/venv/bin/python -m pip install --progress-bar off $REQUIREMENTS; \
    cd /opt/venv/lib; set +f; \
    rm -f libomptarget* libur_* *.spv *.a *.dbg \
          libmkl_*ilp64* libmkl_scalapack* libmkl_blacs* libmkl_cdft* libmkl_sycl*

FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# Caffe and its Python dependencies first, alike for every BLAS (no build arg is used before this
# layer, so the three images share it): it brings Debian's reference BLAS, replaced below.
RUN set -eu; \
    apt-get update -qq; \
    apt-get install -y -qq --no-install-recommends python3 python3-caffe; \
    apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    echo 'bench:x:10001:10001:benchmark:/tmp:/usr/sbin/nologin' >> /etc/passwd; \
    echo 'bench:x:10001:' >> /etc/group; \
    mkdir -p /results; chown 10001:10001 /results
COPY --from=builder /opt/venv /opt/venv
ARG BLAS=openblas
ARG APT_PACKAGES=""
ARG FRAMEWORK=caffe
ARG DEVICE=cpu
ARG IMAGE_NAME=caffe
# The BLAS: its package, then libblas.so.3 and liblapack.so.3 pointed at it (MKL's computational
# layers are found by name through ld.so.conf). Debian's reference BLAS stays installed, unselected.
RUN set -eu; set -f; \
    multiarch=x86_64-linux-gnu; lib=/usr/lib/$multiarch; \
    test "$(dpkg --print-architecture)" = amd64; \
    if [ -n "$(echo $APT_PACKAGES)" ]; then \
        apt-get update -qq; \
        apt-get install -y -qq --no-install-recommends $APT_PACKAGES; \
    fi; \
    case "$BLAS" in \
        atlas) blas=$lib/atlas/libblas.so.3; lapack=$lib/atlas/liblapack.so.3 ;; \
        openblas) blas=$lib/openblas-pthread/libblas.so.3; lapack=$lib/openblas-pthread/liblapack.so.3 ;; \
        mkl) blas=/opt/venv/lib/libmkl_rt.so.2; lapack=$blas; \
             echo /opt/venv/lib > /etc/ld.so.conf.d/mkl.conf; ldconfig; \
             for name in libblas.so.3 liblapack.so.3; do \
                 update-alternatives --install $lib/$name $name-$multiarch $blas 1000; \
             done ;; \
        *) echo "build arg BLAS must be atlas, openblas or mkl, got '$BLAS'" >&2; exit 1 ;; \
    esac; \
    update-alternatives --set libblas.so.3-$multiarch "$blas"; \
    update-alternatives --set liblapack.so.3-$multiarch "$lapack"; \
    update-alternatives --query libblas.so.3-$multiarch | grep -q "^Value: $blas\$"; \
    apt-get clean; set +f; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY frameworks/ /app/frameworks/
RUN /opt/venv/bin/python -m compileall -q /app/frameworks
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    USER=bench \
    XDG_CACHE_HOME=/tmp/.cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    GLOG_minloglevel=2 \
    DLBENCH_BLAS=${BLAS} \
    DLBENCH_IMAGE=${IMAGE_NAME} \
    DLBENCH_FRAMEWORK=${FRAMEWORK} \
    DLBENCH_DEVICE=${DEVICE}
# Caffe runs LeNet-5 (a NetSpec prototxt) like the reference on the chosen BLAS, and no other BLAS is mapped.
RUN cd /app && MKL_INTERFACE_LAYER=GNU,LP64 MKL_THREADING_LAYER=GNU python -m frameworks.selfcheck caffe
LABEL dlbench.image=${IMAGE_NAME} dlbench.framework=${FRAMEWORK} dlbench.device=${DEVICE}
WORKDIR /app
USER 10001:10001
CMD ["sh", "-c", "exec python -m frameworks.predict --all --framework \"$DLBENCH_FRAMEWORK\" --device \"$DLBENCH_DEVICE\" --output \"/results/$DLBENCH_IMAGE.jsonl\""]
