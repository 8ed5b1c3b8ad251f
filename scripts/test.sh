#!/usr/bin/env bash
# scripts/test.sh — run all of Photon's tests. This is the one command to use,
# locally and in CI (.ci/run ends by exec'ing it).
#
# What it does, in order:
#   1. Finds a PostgreSQL server the tests can use (see "Postgres" below),
#      starting a throwaway one if there is none.
#      Also names Postgres' server binaries (installing them if missing) for the fault
#      tests, which stop and start a cluster of their own.
#   2. Drops leftover `photon_test_*` databases from earlier runs.
#   3. Installs Debian's chromium with apt-get if it is missing (the GraphiQL
#      and invite-page tests drive it headless), unzip (the archive tests unpack
#      with it) and libheif-dev (HEIC photos: the suite is built
#      with the `heif` feature when libheif is there), then starts s3s-fs, an S3-compatible server
#      that checks signatures and checksums, on a free port (installing it with
#      cargo install if missing), uses the NATS server on 127.0.0.1:4222 or starts
#      Debian's nats-server (installing it if missing), and installs tests/apollo's npm
#      packages (Apollo Client) when missing or stale.
#   4. Runs `cargo test --workspace` twice: once with PHOTON_TEST_BACKEND=postgres
#      and once with PHOTON_TEST_BACKEND=sqlite; then the photo and processing
#      tests once more with PHOTON_TEST_STORAGE=s3. Stops at the first failure.
#   5. Drops the `photon_test_*` databases again, stops the servers it started
#      and prints the total time.
#
# Usage:
#   scripts/test.sh [extra cargo test args...]
#     Extra arguments go to both `cargo test` runs, e.g.
#     `scripts/test.sh graphql_login` or `scripts/test.sh -- --nocapture`.
#
# Postgres:
#   The tests read TEST_DATABASE_URL, an *admin* connection URL (each test
#   creates its own `photon_test_<something>` database through it).
#   - If TEST_DATABASE_URL is set, it is used as is.
#   - Otherwise, if a server on 127.0.0.1:$PHOTON_TEST_PG_PORT accepts
#     `postgres://postgres@127.0.0.1:<port>/postgres` without a password
#     (trust auth), it is used.
#   - Otherwise a throwaway cluster is created in a temporary directory, on a
#     free port on 127.0.0.1, and removed when the script exits (even on
#     failure or Ctrl-C). If the PostgreSQL server binaries are missing they
#     are installed with apt-get (Debian/Ubuntu; needs root or sudo).
#
# Environment variables:
#   TEST_DATABASE_URL        use this server, skip detection (default: detect)
#   PHOTON_TEST_PG_PORT      port of the existing local server to look for
#                            (default 5432); point it at an unused port to
#                            force the throwaway-cluster path
#   PHOTON_TEST_SETUP_ONLY=1 do the Postgres set-up and leftover clean-up,
#                            print the chosen TEST_DATABASE_URL, and stop
#                            without running cargo (a throwaway cluster is
#                            still removed on exit)
#   PHOTON_TEST_BACKTRACE    RUST_BACKTRACE for the tests (default 0, so that a
#                            failure's message ends the log)
#
# Requires: bash, cargo, and either psql/pg_isready or apt-get to install them.
set -euo pipefail

# Run from the repository root whatever the caller's working directory is.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# rustup installs into ~/.cargo/bin, which non-login CI shells may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/nonexistent}/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi

PG_PORT="${PHOTON_TEST_PG_PORT:-5432}"
SETUP_ONLY="${PHOTON_TEST_SETUP_ONLY:-0}"

log()  { printf '%s\n' "test.sh: $*" >&2; }
warn() { printf '%s\n' "test.sh: warning: $*" >&2; }
die()  { printf '%s\n' "test.sh: error: $*" >&2; exit 1; }

# Print a connection URL with its password (if any) masked.
redact_url() { printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#'; }

# psql/pg_isready never prompt (-w / no stdin) and give up quickly on a dead
# host, so nothing hangs in CI.
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}"

# A failing test's message belongs at the end of the log, where a reader of its last lines
# sees it; a backtrace (RUST_BACKTRACE, often set by CI) pushes it out of view. Set
# PHOTON_TEST_BACKTRACE=1 (or full) to have them.
export RUST_BACKTRACE="${PHOTON_TEST_BACKTRACE:-0}"

# --- throwaway cluster state and clean-up --------------------------------------
# Set once we start our own server; the EXIT trap stops it and removes its
# directory. Also drops the test databases after a test run on a shared server.
PG_TMPDIR=""
PG_BINDIR=""
S3_PID=""
S3_ROOT=""
NATS_PID=""
TESTS_STARTED=0

cleanup() {
    local rc=$?
    set +e
    if [ "$TESTS_STARTED" = 1 ] && [ -z "$PG_TMPDIR" ]; then
        # Shared/long-lived server: don't let test databases pile up.
        # (A throwaway cluster is deleted wholesale below instead.)
        drop_test_databases "photon\\_test\\_${PHOTON_TEST_RUN_ID}\\_%" force
    fi
    if [ -n "$S3_PID" ]; then
        kill "$S3_PID" 2>/dev/null
        wait "$S3_PID" 2>/dev/null
    fi
    [ -n "$S3_ROOT" ] && rm -rf -- "$S3_ROOT" "$S3_ROOT.log"
    if [ -n "$NATS_PID" ]; then
        kill "$NATS_PID" 2>/dev/null
        wait "$NATS_PID" 2>/dev/null
    fi
    if [ -n "$PG_TMPDIR" ]; then
        log "stopping throwaway PostgreSQL and removing $PG_TMPDIR"
        as_pg_owner "$PG_BINDIR/pg_ctl" -D "$PG_TMPDIR/data" -m immediate stop >/dev/null 2>&1
        rm -rf -- "$PG_TMPDIR"
    fi
    log "finished in ${SECONDS}s (exit code $rc)"
    exit "$rc"
}
trap cleanup EXIT
# Turn signals into a normal exit so the EXIT trap runs the clean-up.
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers --------------------------------------------------------------------

# Run a command as root: directly if we are root, else via sudo (non-interactive
# when there is no terminal to ask for a password on).
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        die "need root to run '$*' (not root and sudo is not installed); install PostgreSQL yourself or set TEST_DATABASE_URL"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || die "PostgreSQL ($*) is not installed and apt-get is not available; install PostgreSQL or set TEST_DATABASE_URL"
    log "installing $* with apt-get"
    if [ "$APT_UPDATED" = 0 ]; then
        as_root apt-get update -q || die "apt-get update failed (installing needs root or working sudo; or set TEST_DATABASE_URL)"
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" \
        || die "apt-get install $* failed"
}

# Newest installed PostgreSQL server bin directory on Debian/Ubuntu
# (/usr/lib/postgresql/<version>/bin), or nothing.
newest_pg_bindir() {
    local f
    f="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$f" ] && dirname "$f"
    return 0
}

# initdb/postgres refuse to run as root, so when we are root the throwaway
# cluster belongs to (and is run as) the `postgres` system user. Otherwise it
# simply belongs to the current user.
PG_RUN_AS=""
as_pg_owner() {
    if [ -z "$PG_RUN_AS" ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$PG_RUN_AS" -- "$@"
    else
        su -s /bin/sh "$PG_RUN_AS" -c "$(printf '%q ' "$@")"
    fi
}

ensure_postgres_user() {
    getent passwd postgres >/dev/null 2>&1 && return 0
    log "creating system user 'postgres' to own the throwaway cluster"
    if command -v useradd >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home \
            --home-dir /var/lib/postgresql --shell /bin/sh postgres
    else
        adduser --system --group --no-create-home \
            --home /var/lib/postgresql --shell /bin/sh postgres
    fi
}

# True if something listens on 127.0.0.1:$1.
port_in_use() {
    local port="$1"
    if command -v ss >/dev/null 2>&1; then
        ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && return 0
    fi
    # Fallback (and extra check): bash's /dev/tcp connect succeeds if listening.
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    return 1
}

# True if $1 answers `select 1` without prompting for a password.
can_connect() {
    psql "$1" -w -X -q -Atc 'select 1' </dev/null >/dev/null 2>&1
}

# Drop test databases on $TEST_DATABASE_URL whose names match the LIKE pattern
# $1. Tests create one database each (photon_test_<run>_<uuid>); ones left over
# from crashed or interrupted runs would otherwise accumulate. With $2 = force,
# open connections are cut (our own run, which is over); without it a database
# still in use, such as one of a concurrent run against the same server, is
# skipped. Best effort: failures never fail the run.
drop_test_databases() {
    local pattern="$1" mode="${2:-}" names name errfile dropped=0 with=""
    [ "$mode" = force ] && with=" WITH (FORCE)"
    # stderr goes to a file, not into $names: psql can print WARNINGs on success.
    errfile="$(mktemp)"
    if ! names="$(psql "$TEST_DATABASE_URL" -w -X -q -At \
            -c "select datname from pg_database where datname like '$pattern'" \
            </dev/null 2>"$errfile")"; then
        warn "could not list test databases: $(cat "$errfile")"
        rm -f -- "$errfile"
        return 0
    fi
    rm -f -- "$errfile"
    [ -z "$names" ] && return 0
    while IFS= read -r name; do
        [ -n "$name" ] || continue
        # Quote the identifier (double any embedded double quotes).
        if psql "$TEST_DATABASE_URL" -w -X -q -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS \"${name//\"/\"\"}\"$with" \
            </dev/null >/dev/null 2>&1; then
            dropped=$((dropped + 1))
        elif [ "$mode" = force ]; then
            warn "could not drop database $name"
        fi
    done <<<"$names"
    [ "$dropped" -gt 0 ] && log "dropped $dropped test database(s) matching $pattern"
    return 0
}

# Create and start a throwaway cluster; sets TEST_DATABASE_URL.
start_throwaway_cluster() {
    PG_BINDIR="$(newest_pg_bindir)"
    if [ -z "$PG_BINDIR" ]; then
        apt_install postgresql
        PG_BINDIR="$(newest_pg_bindir)"
        [ -n "$PG_BINDIR" ] || die "installed postgresql but found no /usr/lib/postgresql/*/bin/initdb"
    fi

    local base="${TMPDIR:-/tmp}"
    if [ "$(id -u)" = 0 ]; then
        ensure_postgres_user
        PG_RUN_AS=postgres
        # The postgres user must be able to reach the directory; /tmp always is.
        base=/tmp
    fi

    # Pick a free port from 55432 upward (not 5432: that one is the "real" server's).
    local port=55432
    while port_in_use "$port" || pg_isready -q -h 127.0.0.1 -p "$port" >/dev/null 2>&1; do
        port=$((port + 1))
        [ "$port" -lt 55532 ] || die "no free port found in 55432..55531"
    done

    PG_TMPDIR="$(mktemp -d "$base/photon-pg.XXXXXX")"
    [ -n "$PG_RUN_AS" ] && chown "$PG_RUN_AS": "$PG_TMPDIR"
    log "starting throwaway PostgreSQL $(basename "$(dirname "$PG_BINDIR")") in $PG_TMPDIR on 127.0.0.1:$port"

    # Run from inside the directory: the postgres user may not be allowed to
    # read the caller's working directory, which makes the tools complain.
    # (No subshell here, so `die` exits the script and the EXIT trap cleans up.)
    local oldpwd="$PWD"
    cd "$PG_TMPDIR"
    # --no-locale: don't depend on which locales the machine has generated.
    as_pg_owner "$PG_BINDIR/initdb" -D "$PG_TMPDIR/data" -U postgres --auth=trust \
        --no-locale --encoding=UTF8 >"$PG_TMPDIR/initdb.log" 2>&1 \
        || { cat "$PG_TMPDIR/initdb.log" >&2; die "initdb failed"; }

    # TCP on loopback only; unix socket inside the temp dir so it can't clash
    # with a system server's /var/run/postgresql socket. Durability is
    # pointless for a throwaway test cluster, so turn it off for speed.
    as_pg_owner tee -a "$PG_TMPDIR/data/postgresql.conf" >/dev/null <<EOF

# --- added by scripts/test.sh (throwaway test cluster) ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$PG_TMPDIR'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

    as_pg_owner "$PG_BINDIR/pg_ctl" -D "$PG_TMPDIR/data" -l "$PG_TMPDIR/postgres.log" \
        -w -t 60 start >/dev/null \
        || { tail -n 50 "$PG_TMPDIR/postgres.log" >&2 || true; die "could not start PostgreSQL"; }
    cd "$oldpwd"

    TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    can_connect "$TEST_DATABASE_URL" \
        || die "throwaway PostgreSQL started but psql cannot connect to $TEST_DATABASE_URL"
}

# --- 1. Postgres -------------------------------------------------------------------

# Client tools are needed in every case (detection, clean-up). Debian ships them
# in /usr/lib/postgresql/<v>/bin too, in case /usr/bin's wrappers are missing.
if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
    bindir="$(newest_pg_bindir)"
    if [ -n "$bindir" ] && [ -x "$bindir/psql" ] && [ -x "$bindir/pg_isready" ]; then
        PATH="$bindir:$PATH"
    else
        apt_install postgresql-client
    fi
    command -v psql >/dev/null 2>&1 && command -v pg_isready >/dev/null 2>&1 \
        || die "psql/pg_isready still not found after installing postgresql-client"
fi

if [ -n "${TEST_DATABASE_URL:-}" ]; then
    log "using TEST_DATABASE_URL from the environment: $(redact_url "$TEST_DATABASE_URL")"
    # Fail now rather than after compiling everything.
    can_connect "$TEST_DATABASE_URL" \
        || die "cannot connect to TEST_DATABASE_URL=$(redact_url "$TEST_DATABASE_URL") with psql"
else
    local_url="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    if pg_isready -q -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1 && can_connect "$local_url"; then
        log "using the PostgreSQL server on 127.0.0.1:$PG_PORT"
        TEST_DATABASE_URL="$local_url"
    else
        log "no PostgreSQL with trust auth for user postgres on 127.0.0.1:$PG_PORT"
        start_throwaway_cluster
    fi
fi
export TEST_DATABASE_URL

# --- 1b. Server binaries for the fault tests ------------------------------------------
# tests/tests/api/faults.rs stops and starts a Postgres cluster of its own (never the one
# above), so it needs initdb and pg_ctl even when the server above is someone else's.
if [ -z "${PHOTON_TEST_PG_BINDIR:-}" ]; then
    PHOTON_TEST_PG_BINDIR="$(newest_pg_bindir)"
    if [ -z "$PHOTON_TEST_PG_BINDIR" ]; then
        apt_install postgresql
        PHOTON_TEST_PG_BINDIR="$(newest_pg_bindir)"
    fi
fi
# As root, that cluster belongs to the postgres system user (initdb refuses root).
[ "$(id -u)" = 0 ] && ensure_postgres_user
export PHOTON_TEST_PG_BINDIR

# --- 2. Leftovers from earlier runs -------------------------------------------------
# Each run names its databases photon_test_<run id>_<uuid>, so the clean-up at
# the end removes exactly this run's; here, idle leftovers of any earlier run go.
export PHOTON_TEST_RUN_ID="${PHOTON_TEST_RUN_ID:-r$$x$(date +%s)}"
drop_test_databases 'photon\_test\_%'

if [ "$SETUP_ONLY" = 1 ]; then
    log "PHOTON_TEST_SETUP_ONLY=1: set-up done, not running cargo"
    printf 'TEST_DATABASE_URL=%s\n' "$(redact_url "$TEST_DATABASE_URL")"
    exit 0
fi

# --- 3a. Chromium, for the GraphiQL tests in a real browser -------------------------
# Debian's package, installed once when missing (a minute or two); the tests drive it over
# its DevTools protocol, so nothing else is downloaded. Where it cannot be installed (no
# apt-get, not root) the browser tests say they are skipped, and fail under CI=true.
if [ -z "${PHOTON_TEST_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 \
    && ! command -v chromium-browser >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then
        apt_install chromium
    else
        warn "chromium is missing and cannot be installed here: the browser tests will be skipped (under CI=true they fail)"
    fi
fi

# --- 3a'. Info-ZIP's unzip, which unpacks the session archives in the archive tests ---
if ! command -v unzip >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then
        apt_install unzip
    else
        die "unzip is missing and cannot be installed here (Debian package unzip)"
    fi
fi

# --- 3b. An S3-compatible server that checks signatures and checksums ----------------
# s3s-fs (from crates.io) serves a directory as S3 and verifies SigV4 signatures and
# x-amz-checksum-sha256, so the photo tests exercise the real presigned-URL path. Newer
# versions need a newer rustc than some machines have; 0.14.1 is pinned for that.
S3S_VERSION=0.14.1
# cargo install puts binaries in ~/.cargo/bin, which a non-login shell may not have on PATH.
[ -d "${HOME:-/nonexistent}/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
if ! command -v s3s-fs >/dev/null 2>&1; then
    log "installing s3s-fs $S3S_VERSION with cargo install (a few minutes, once)"
    cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked
fi
S3_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/photon-s3.XXXXXX")"
s3_port=58014
while port_in_use "$s3_port"; do
    s3_port=$((s3_port + 1))
    [ "$s3_port" -lt 58114 ] || die "no free port for s3s-fs in 58014..58113"
done
export PHOTON_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export PHOTON_TEST_S3_ROOT="$S3_ROOT"
export PHOTON_TEST_S3_ACCESS_KEY="photon-test"
PHOTON_TEST_S3_SECRET_KEY="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export PHOTON_TEST_S3_SECRET_KEY
s3s-fs --host 127.0.0.1 --port "$s3_port" --access-key "$PHOTON_TEST_S3_ACCESS_KEY" \
    --secret-key "$PHOTON_TEST_S3_SECRET_KEY" "$S3_ROOT" >"$S3_ROOT.log" 2>&1 &
S3_PID=$!
for _ in $(seq 1 50); do
    port_in_use "$s3_port" && break
    sleep 0.2
done
port_in_use "$s3_port" || { cat "$S3_ROOT.log" >&2; die "s3s-fs did not start"; }
log "s3s-fs $S3S_VERSION serving $S3_ROOT on $PHOTON_TEST_S3_ENDPOINT"

# --- 3c. NATS, for the event bus between replicas (PHOTON_NATS_URL) ---------------------
# The replica tests on NATS use the server on 127.0.0.1:4222 when one is there, else one
# started here on a free port; the test that restarts NATS under the replicas starts one of
# its own. Both need Debian's nats-server, installed when missing.
NATS_BIN="$(command -v nats-server || true)"
[ -z "$NATS_BIN" ] && [ -x /usr/sbin/nats-server ] && NATS_BIN=/usr/sbin/nats-server
if [ -z "$NATS_BIN" ]; then
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then
        apt_install nats-server
        NATS_BIN="$(command -v nats-server || echo /usr/sbin/nats-server)"
    else
        die "nats-server is missing and cannot be installed here (Debian package nats-server)"
    fi
fi
export PHOTON_TEST_NATS_BIN="$NATS_BIN"
if [ -z "${PHOTON_TEST_NATS_URL:-}" ]; then
    if port_in_use 4222; then
        export PHOTON_TEST_NATS_URL="nats://127.0.0.1:4222"
    else
        nats_port=58214
        while port_in_use "$nats_port"; do
            nats_port=$((nats_port + 1))
            [ "$nats_port" -lt 58314 ] || die "no free port for nats-server in 58214..58313"
        done
        "$NATS_BIN" -a 127.0.0.1 -p "$nats_port" >/dev/null 2>&1 &
        NATS_PID=$!
        for _ in $(seq 1 50); do
            port_in_use "$nats_port" && break
            sleep 0.1
        done
        port_in_use "$nats_port" || die "nats-server did not start"
        export PHOTON_TEST_NATS_URL="nats://127.0.0.1:$nats_port"
    fi
fi
log "NATS for the tests: $PHOTON_TEST_NATS_URL ($NATS_BIN)"

# --- Apollo Client for the tests that run it (tests/apollo, pinned by its lock file) ------
# npm ci only when the packages are missing or the lock file changed since they were
# installed (npm writes node_modules/.package-lock.json last), so a warm run costs nothing.
APOLLO_DIR=tests/apollo
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 \
        || die "Node.js is not installed and apt-get is not available; install Node.js 20 and npm"
    apt_install nodejs npm
fi
if [ ! -f "$APOLLO_DIR/node_modules/.package-lock.json" ] \
    || [ "$APOLLO_DIR/package-lock.json" -nt "$APOLLO_DIR/node_modules/.package-lock.json" ]; then
    log "installing Apollo Client and its links for the tests (npm ci in $APOLLO_DIR)"
    (cd "$APOLLO_DIR" && npm ci --no-audit --no-fund) || die "npm ci in $APOLLO_DIR failed"
fi

# HEIC photos are decoded through libheif (Debian's libheif-dev, found with pkg-config):
# the suite is built with the `heif` feature when it is there. Under CI=true it must be.
features=()
if ! pkg-config --exists libheif 2>/dev/null; then
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then
        apt_install libheif-dev pkg-config
    fi
fi
if pkg-config --exists libheif 2>/dev/null; then
    features=(--features photon/heif,photon-tests/heif)
elif [ "${CI:-}" = true ]; then
    die "libheif-dev is missing and cannot be installed: CI tests HEIC photos"
else
    warn "libheif-dev is missing: HEIC decoding is not tested (photos of that format are UNSUPPORTED)"
fi

# --- 4. The tests: the suite once per database backend, the photo tests once more on S3 --
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"

locked=()
[ -f Cargo.lock ] && locked=(--locked)

# The end-to-end tests wait on the network and the database far more than on
# the CPU, so more threads than cores finish sooner.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-8}"

TESTS_STARTED=1
echo "== tests against Postgres ($(redact_url "$TEST_DATABASE_URL")) =="
PHOTON_TEST_BACKEND=postgres cargo test --workspace ${locked[@]+"${locked[@]}"} ${features[@]+"${features[@]}"} "$@"

echo "== tests against SQLite =="
PHOTON_TEST_BACKEND=sqlite cargo test --workspace ${locked[@]+"${locked[@]}"} ${features[@]+"${features[@]}"} "$@"

# The photo tests run on the local-disk store above; here they run on S3. Other tests do
# not touch storage, so without a filter of the caller's only the photo, processing and
# archive tests run, and the object-store outage test (which starts an s3s-fs of its own).
echo "== photo tests against S3 (s3s-fs) and Postgres =="
s3_filter=("$@")
[ "${#s3_filter[@]}" -eq 0 ] && s3_filter=(-- photos:: processing:: archive:: faults::an_object_store)
PHOTON_TEST_BACKEND=postgres PHOTON_TEST_STORAGE=s3 \
    cargo test -p photon-tests --test api ${locked[@]+"${locked[@]}"} \
    ${features[@]+"${features[@]}"} "${s3_filter[@]}"

# --- 5. Clean-up and timing happen in the EXIT trap (cleanup above). -----------------
