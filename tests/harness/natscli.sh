#!/bin/sh
# natscli.sh - installs the nats CLI at a pinned version when Go is present.
#
# The module proxy serves pinned versions but may refuse version listings,
# which `go install pkg@version` needs for its deprecation check; building
# from a throw-away module that requires the version avoids that lookup.
set -eu
version=$1
dest=/usr/local/bin
[ "$(id -u)" = 0 ] || dest="$HOME/.local/bin"
if command -v nats >/dev/null 2>&1 && nats --version 2>&1 | grep -q "${version#v}"; then
    exit 0
fi
if [ -x "$dest/nats" ] && "$dest/nats" --version 2>&1 | grep -q "${version#v}"; then
    exit 0
fi
GO=$(command -v go || echo /usr/local/go/bin/go)
if [ ! -x "$GO" ]; then
    echo "natscli: Go not found; the nats CLI tests will fail" >&2
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/go.mod" <<EOM
module berth.local/natscli
go 1.22
require github.com/nats-io/natscli $version
EOM
printf '//go:build tools\npackage tools\nimport _ "github.com/nats-io/natscli/nats"\n' >"$work/tools.go"
echo "natscli: building nats $version"
mkdir -p "$dest"
(cd "$work" && GOFLAGS=-mod=mod "$GO" mod tidy >/dev/null 2>&1 &&
    GOFLAGS=-mod=mod "$GO" build -o "$dest/nats" github.com/nats-io/natscli/nats)
echo "natscli: installed $dest/nats"
