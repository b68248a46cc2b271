# Python packages a lent GPU machine lacks, carried to it (source this file; bash only).
#
# The GPU machine's image has torch, numpy, onnx and onnxruntime but no spconv, and a device call carries at most
# 64 MiB with the work tree. spconv-cu126 2.3.8 and cumm-cu126 (98 MB of wheels, 350 MB unpacked) therefore travel
# as an xz tarball in 30 MiB parts under .device/ (excluded from git). Measured on 2026-12-01: 38.7 MiB in two
# parts (prepare: 9 min of one core for xz -9), which with the 22.9 MB work tree fit one call (63.5 of 67.1 MB).
# Should the tree grow past that, carry the parts in consecutive calls while the machine stays warm (what a call
# carried stays there for the next one).
#
#   device_site_prepare   # here, on a machine with network: download, unpack and pack the wheels into .device/
#   device_site_activate  # there: unpack the parts (once per machine) and put them on PYTHONPATH
DEVDIR=${DEVDIR:-.device}
DEVICE_SITE=${DEVICE_SITE:-/tmp/sparsekd_site}

device_site_prepare() {
    local py=${PYTHON:-.venv/bin/python} tmp exclude
    tmp=$(mktemp -d)
    exclude=$(git rev-parse --git-path info/exclude)
    grep -qx "/$DEVDIR/" "$exclude" 2>/dev/null || echo "/$DEVDIR/" >> "$exclude"
    mkdir -p "$DEVDIR" "$tmp/wheels" "$tmp/site"
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d "$tmp/wheels" \
        spconv-cu126==2.3.8 cumm-cu126 pccm ccimport lark
    for w in "$tmp"/wheels/*.whl; do "$py" -m zipfile -e "$w" "$tmp/site"; done
    rm -f "$DEVDIR"/site.tar.xz.part-*
    tar -C "$tmp/site" -cf - . | xz -9 -T0 | split -b 30M - "$DEVDIR/site.tar.xz.part-"
    rm -rf "$tmp"
    ls -l "$DEVDIR"/site.tar.xz.part-*
}

device_site_activate() {
    if compgen -G "$DEVDIR/site.tar.xz.part-*" > /dev/null && [[ ! -f "$DEVICE_SITE/.unpacked" ]]; then
        mkdir -p "$DEVICE_SITE" && cat "$DEVDIR"/site.tar.xz.part-* | xz -dc | tar -C "$DEVICE_SITE" -xf -
        touch "$DEVICE_SITE/.unpacked"
    fi
    if [[ -f "$DEVICE_SITE/.unpacked" ]]; then
        export PYTHONPATH="$DEVICE_SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    else
        export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    fi
}
