#!/bin/sh
# image.sh - builds the local test image berth-test-busybox:1 without a registry.
#
# The image is a root file system holding Debian's statically linked busybox
# (package busybox-static, see DEB_PKGS) with one symbolic link per applet
# (sh, echo, sleep, httpd, seq ...), imported with `docker import`. Running
# it again when the image exists does nothing, so every test may call it.
#
#   sh tests/harness/image.sh [image]     default image: berth-test-busybox:1
set -eu

image=${1:-berth-test-busybox:1}

if docker image inspect "$image" >/dev/null 2>&1; then
    exit 0
fi

# The image has no libraries, so only a statically linked busybox will run.
busybox=
for p in /bin/busybox /usr/bin/busybox; do
    if [ -x "$p" ] && ! ldd "$p" >/dev/null 2>&1; then
        busybox=$p
        break
    fi
done
if [ -z "$busybox" ]; then
    echo "image.sh: no static busybox found; install the busybox-static package" >&2
    exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-image-XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

mkdir -p "$dir/bin" "$dir/tmp" "$dir/data" "$dir/etc" "$dir/proc" "$dir/sys" "$dir/dev"
chmod 1777 "$dir/tmp"
cp "$busybox" "$dir/bin/busybox"
for applet in $("$dir/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
echo 'root:x:0:0:root:/:/bin/sh' > "$dir/etc/passwd"
echo 'root:x:0:' > "$dir/etc/group"

tar -C "$dir" -c . | docker import \
    -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$image" >/dev/null
echo "image.sh: built $image from $busybox"
