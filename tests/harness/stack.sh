#!/bin/sh
# stack.sh - `make run`: a local nats-server with JetStream, a local
# PostgreSQL for the panel, and the four berth services, their logs on the
# terminal, everything stopped on Ctrl-C.
#
# Run from the repository root. Layout under var/ (kept between runs):
#
#   var/nats/             JetStream store
#   var/pg/               PostgreSQL cluster (initdb on first run) and its
#                         unix socket; database `berth`
#   var/<component>/      BERTH_DATA_DIR of panel, daemon, edge, shell
#   var/log/<name>.log    nats.log, postgres.log and one log per service,
#                         appended to
#
# Settings (environment):
#
#   BERTH_NATS_PORT     client port on 127.0.0.1 (default 4222)
#   BERTH_BIN_DIR       where the service binaries are (default build/bin)
#   BERTH_VAR_DIR       instead of var (default var)
#   BERTH_NATS_SERVER   nats-server binary (default: PATH, then /usr/sbin)
#   BERTH_STOP_TIMEOUT  seconds a service gets after SIGTERM (default 10)
#   BERTH_PG_DSN        an existing PostgreSQL for the panel, used as is (no
#                       local server is started then)
#   BERTH_PG_PORT       port of the local PostgreSQL on 127.0.0.1 (default 5433)
#   BERTH_PG_BINDIR     PostgreSQL binaries (default: the newest
#                       /usr/lib/postgresql/N/bin, then PATH)
#   BERTH_PG_USER       whom PostgreSQL runs as when this script runs as root
#                       (it refuses root; default postgres)
#
# An existing listener on the port is an error, not reused: a server we did
# not start may lack JetStream, hold someone else's streams, or vanish under
# us, and we could not stop it on Ctrl-C. Stop it or pick another port with
# BERTH_NATS_PORT. The same holds for PostgreSQL and BERTH_PG_PORT; the
# services get BERTH_PG_DSN=host=127.0.0.1 port=PORT dbname=berth
# user=postgres (trust authentication, 127.0.0.1 and the socket only).
#
# The children run in their own sessions (setsid), so a Ctrl-C reaches only
# this script, which then stops them in order: services first (SIGTERM, then
# SIGKILL after BERTH_STOP_TIMEOUT), then PostgreSQL (SIGINT, its fast
# shutdown), then nats-server (SIGINT, its clean shutdown). If this script
# is SIGKILLed the children survive; their pids are in var/run/.
#
# Needs setsid and setpriv (util-linux), ss (iproute2; optional) and GNU
# tail and sed (tail --pid, sed -u), all present on Debian.
set -u

port=${BERTH_NATS_PORT:-4222}
url=nats://127.0.0.1:$port
bin_dir=${BERTH_BIN_DIR:-build/bin}
var=${BERTH_VAR_DIR:-var}
stop_timeout=${BERTH_STOP_TIMEOUT:-10}
components="panel daemon edge shell"
pg_port=${BERTH_PG_PORT:-5433}
pg_user=${BERTH_PG_USER:-postgres}

nats_pid=""
pg_pid=""     # empty when BERTH_PG_DSN names a server we did not start
svc_pids=""   # "name:pid ..." in start order
tail_pids=""  # session leaders of the log tailers
stopping=0

say() {
    printf '[stack] %s\n' "$*"
}

die() {
    printf '[stack] error: %s\n' "$*" >&2
    cleanup
    exit 1
}

# Sleeps a fraction of a second in the background, so that a trapped
# signal interrupts the wait at once (a foreground sleep would delay it).
nap() {
    sleep "$1" &
    wait $! 2>/dev/null
}

alive() {
    kill -0 "$1" 2>/dev/null
}

# Number of lines in a file, 0 when missing.
lines_of() {
    if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi
}

# Waits up to $4 seconds for $3 in file $2 after line $1, while pid $5
# lives. Returns 0 when seen, 1 on timeout, 2 when the process exited.
wait_log() {
    _from=$1 _file=$2 _needle=$3 _secs=$4 _pid=$5
    _n=$((_secs * 10))
    while [ "$_n" -gt 0 ]; do
        if tail -n "+$((_from + 1))" "$_file" 2>/dev/null | grep -q -- "$_needle"; then
            return 0
        fi
        alive "$_pid" || return 2
        nap 0.1
        _n=$((_n - 1))
    done
    return 1
}

# Shows log $2 from line $3 + 1 on, prefixed with [$1]. The tailer lives in
# its own session so that Ctrl-C leaves it running until the services' last
# lines are printed; --pid ends it if this script dies without cleaning up.
show_log() {
    setsid sh -c 'tail -n "+$(($4 + 1))" --pid="$1" -F "$2" 2>/dev/null |
        sed -u "s/^/[$3] /"' sh "$$" "$2" "$1" "$3" &
    tail_pids="$tail_pids $!"
}

# Sends $2 to the process group of pid $1 (each child leads its own, see
# setsid) and waits up to $3 seconds for $1 to exit; then SIGKILLs the group.
# Prints how the process ended.
stop_pid() {
    _pid=$1 _sig=$2 _secs=$3 _name=$4
    alive "$_pid" && kill "-$_sig" "-$_pid" 2>/dev/null
    _n=$((_secs * 10))
    while alive "$_pid" && [ "$_n" -gt 0 ]; do
        nap 0.1
        _n=$((_n - 1))
    done
    if alive "$_pid"; then
        say "$_name did not stop within ${_secs}s: SIGKILL"
        kill -KILL "-$_pid" 2>/dev/null || kill -KILL "$_pid" 2>/dev/null
    fi
    wait "$_pid" 2>/dev/null
    _st=$?
    say "$_name stopped (status $_st)"
    rm -f "$var/run/$_name.pid"
}

# Stops everything this script started. Safe to call more than once.
cleanup() {
    [ "$stopping" = 1 ] && return 0
    stopping=1
    trap '' INT TERM HUP
    if [ -n "$svc_pids" ]; then
        say "stopping services"
        for _e in $svc_pids; do
            alive "${_e#*:}" && kill -TERM "-${_e#*:}" 2>/dev/null
        done
        for _e in $svc_pids; do
            stop_pid "${_e#*:}" TERM "$stop_timeout" "${_e%%:*}"
        done
    fi
    if [ -n "$pg_pid" ]; then
        # The backends lead their own process groups; the signal to the
        # postmaster's group reaches the postmaster only.
        stop_pid "$pg_pid" INT 30 postgres
    fi
    if [ -n "$nats_pid" ]; then
        stop_pid "$nats_pid" INT 10 nats-server
    fi
    if [ -n "$tail_pids" ]; then
        nap 0.3 # let the tailers print the last lines
        for _p in $tail_pids; do
            kill -TERM "-$_p" 2>/dev/null
        done
        for _p in $tail_pids; do
            wait "$_p" 2>/dev/null
        done
    fi
}

on_signal() {
    echo
    say "$1: shutting down"
    cleanup
    exit 0
}

trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGHUP' HUP
trap 'cleanup' EXIT

# ---------------------------------------------------------------- checks
[ -f Makefile ] && [ -d tests/harness ] ||
    die "run from the repository root (make run)"
command -v setsid >/dev/null 2>&1 || die "setsid (util-linux) not found"
nats_server=${BERTH_NATS_SERVER:-}
if [ -z "$nats_server" ]; then
    nats_server=$(command -v nats-server 2>/dev/null || true)
fi
if [ -z "$nats_server" ]; then
    for _c in /usr/sbin/nats-server /usr/local/bin/nats-server; do
        [ -x "$_c" ] && nats_server=$_c && break
    done
fi
[ -n "$nats_server" ] && [ -x "$nats_server" ] ||
    die "nats-server not found (make deps, or set BERTH_NATS_SERVER)"
for _c in $components; do
    [ -x "$bin_dir/berth-$_c" ] ||
        die "$bin_dir/berth-$_c not found: build first (make)"
done
if command -v ss >/dev/null 2>&1 &&
    [ -n "$(ss -Htln "sport = :$port" 2>/dev/null)" ]; then
    die "something already listens on port $port; stop it or set BERTH_NATS_PORT"
fi

if [ -z "${BERTH_PG_DSN:-}" ]; then
    pg_bin=${BERTH_PG_BINDIR:-}
    if [ -z "$pg_bin" ]; then
        for _d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
            [ -x "$_d/postgres" ] && [ -x "$_d/initdb" ] && pg_bin=$_d && break
        done
    fi
    if [ -z "$pg_bin" ] && _c=$(command -v initdb 2>/dev/null); then
        pg_bin=${_c%/*}
    fi
    [ -n "$pg_bin" ] && [ -x "$pg_bin/postgres" ] && [ -x "$pg_bin/initdb" ] ||
        die "PostgreSQL not found (make deps, set BERTH_PG_BINDIR, or BERTH_PG_DSN)"
    # PostgreSQL refuses to run as root: run it as $pg_user.
    as_pg=""
    if [ "$(id -u)" = 0 ]; then
        command -v setpriv >/dev/null 2>&1 || die "setpriv (util-linux) not found"
        _uid=$(id -u "$pg_user" 2>/dev/null) && _gid=$(id -g "$pg_user" 2>/dev/null) ||
            die "no user $pg_user to run PostgreSQL as (set BERTH_PG_USER)"
        [ "$_uid" != 0 ] || die "BERTH_PG_USER=$pg_user is root; PostgreSQL refuses root"
        as_pg="setpriv --reuid=$_uid --regid=$_gid --init-groups --"
    fi
    if command -v ss >/dev/null 2>&1 &&
        [ -n "$(ss -Htln "sport = :$pg_port" 2>/dev/null)" ]; then
        die "something already listens on port $pg_port; stop it or set BERTH_PG_PORT (or BERTH_PG_DSN)"
    fi
fi

mkdir -p "$var/nats" "$var/log" "$var/run" || die "cannot create $var/"
case $var in
/*) var_abs=$var ;;
*) var_abs=$(pwd)/$var ;;
esac

# ---------------------------------------------------------------- nats
nats_log=$var/log/nats.log
from=$(lines_of "$nats_log")
say "starting nats-server on $url (store $var/nats, log $nats_log)"
setsid "$nats_server" -js -sd "$var/nats" -p "$port" -a 127.0.0.1 \
    >>"$nats_log" 2>&1 </dev/null &
nats_pid=$!
echo "$nats_pid" >"$var/run/nats-server.pid"
wait_log "$from" "$nats_log" "Server is ready" 15 "$nats_pid"
case $? in
0) ;;
2)
    tail -n "+$((from + 1))" "$nats_log" | tail -n 5 >&2
    nats_pid=""
    die "nats-server exited during start-up (port $port in use?)"
    ;;
*) die "nats-server not ready after 15s; see $nats_log" ;;
esac
say "nats-server ready (pid $nats_pid)"

# ---------------------------------------------------------------- postgres
if [ -n "${BERTH_PG_DSN:-}" ]; then
    say "using the PostgreSQL of BERTH_PG_DSN"
else
    pg_dir=$var_abs/pg
    pg_log=$var/log/postgres.log
    [ ${#pg_dir} -le 90 ] || die "$pg_dir is too long for a unix socket path; set BERTH_VAR_DIR"
    if [ ! -f "$pg_dir/PG_VERSION" ]; then
        if [ -d "$pg_dir" ] && [ -n "$(ls -A "$pg_dir" 2>/dev/null)" ]; then
            die "$pg_dir is not empty but holds no cluster; move it away"
        fi
        mkdir -p "$pg_dir" || die "cannot create $pg_dir"
        if [ -n "$as_pg" ]; then
            chown "$pg_user:" "$pg_dir" || die "cannot give $pg_dir to $pg_user"
            # The user must reach the directory through its parents.
            $as_pg test -w "$pg_dir" ||
                die "$pg_user cannot reach $pg_dir (check the permissions of its parents)"
        fi
        say "initdb $var/pg (once; log $pg_log)"
        $as_pg "$pg_bin/initdb" -D "$pg_dir" --auth=trust --username=postgres \
            --encoding=UTF8 --locale=C >>"$pg_log" 2>&1 </dev/null ||
            die "initdb failed; see $pg_log"
    fi
    _have=$(cat "$pg_dir/PG_VERSION")
    _want=$("$pg_bin/postgres" --version | sed -n 's/^[^0-9]*\([0-9][0-9]*\).*/\1/p')
    [ "$_have" = "$_want" ] ||
        die "$var/pg was made by PostgreSQL $_have, $pg_bin is $_want; remove $var/pg or set BERTH_PG_BINDIR"
    from=$(lines_of "$pg_log")
    say "starting postgres on 127.0.0.1:$pg_port (data and socket $var/pg, log $pg_log)"
    setsid $as_pg "$pg_bin/postgres" -D "$pg_dir" -p "$pg_port" -h 127.0.0.1 \
        -k "$pg_dir" >>"$pg_log" 2>&1 </dev/null &
    pg_pid=$!
    echo "$pg_pid" >"$var/run/postgres.pid"
    wait_log "$from" "$pg_log" "database system is ready to accept connections" 30 "$pg_pid"
    case $? in
    0) ;;
    2)
        tail -n "+$((from + 1))" "$pg_log" | tail -n 5 >&2
        pg_pid=""
        die "postgres exited during start-up (port $pg_port in use?)"
        ;;
    *) die "postgres not ready after 30s; see $pg_log" ;;
    esac
    _psql() {
        "$pg_bin/psql" -X -q -h "$pg_dir" -p "$pg_port" -U postgres -d postgres \
            -v ON_ERROR_STOP=1 -tA "$@"
    }
    if [ "$(_psql -c "SELECT 1 FROM pg_database WHERE datname = 'berth'")" != 1 ]; then
        _psql -c "CREATE DATABASE berth" >>"$pg_log" 2>&1 ||
            die "cannot create database berth; see $pg_log"
        say "created database berth"
    fi
    BERTH_PG_DSN="host=127.0.0.1 port=$pg_port dbname=berth user=postgres"
    say "postgres ready (pid $pg_pid)"
fi
export BERTH_PG_DSN

# ---------------------------------------------------------------- services
for c in $components; do
    log=$var/log/$c.log
    mkdir -p "$var/$c" || die "cannot create $var/$c"
    from=$(lines_of "$log")
    eval "from_$c=$from"
    show_log "$c" "$log" "$from"
    BERTH_NATS_URL=$url BERTH_DATA_DIR=$var_abs/$c \
        setsid "$bin_dir/berth-$c" >>"$log" 2>&1 </dev/null &
    pid=$!
    svc_pids="$svc_pids $c:$pid"
    echo "$pid" >"$var/run/$c.pid"
done

for e in $svc_pids; do
    c=${e%%:*} pid=${e#*:}
    eval "from=\$from_$c"
    wait_log "$from" "$var/log/$c.log" "msg=ready" 15 "$pid"
    case $? in
    0) ;;
    2) die "berth-$c exited during start-up; see $var/log/$c.log" ;;
    *) say "warning: berth-$c has not logged msg=ready after 15s" ;;
    esac
done

cat <<EOF
[stack] ---------------------------------------------------------------
[stack] berth is up. nats: $url
[stack]   postgres: $(if [ -n "$pg_pid" ]; then echo "127.0.0.1:$pg_port, database berth (pid $pg_pid)"; else echo "BERTH_PG_DSN from the environment"; fi)
[stack]   services: $(for e in $svc_pids; do printf '%s(pid %s) ' "${e%%:*}" "${e#*:}"; done)
[stack]   data:     $var/<component>/   logs: $var/log/
[stack] watch the bus:
[stack]   nats --server $url micro ls
[stack]   nats --server $url sub '>'
[stack] Ctrl-C stops everything.
[stack] ---------------------------------------------------------------
EOF

# ---------------------------------------------------------------- watch
# Reports services that exit on their own; the others keep running.
while :; do
    nap 1
    remaining=""
    for e in $svc_pids; do
        c=${e%%:*} pid=${e#*:}
        if alive "$pid"; then
            remaining="$remaining $e"
        else
            wait "$pid" 2>/dev/null
            say "berth-$c exited on its own (status $?); see $var/log/$c.log"
            rm -f "$var/run/$c.pid"
        fi
    done
    svc_pids=$remaining
    if [ -n "$pg_pid" ] && ! alive "$pg_pid"; then
        wait "$pg_pid" 2>/dev/null
        say "postgres exited on its own (status $?); see $pg_log"
        pg_pid=""
        cleanup
        exit 1
    fi
    if ! alive "$nats_pid"; then
        wait "$nats_pid" 2>/dev/null
        say "nats-server exited on its own (status $?); see $nats_log"
        nats_pid=""
        cleanup
        exit 1
    fi
done
