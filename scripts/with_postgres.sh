#!/bin/sh
# Run a command against a throwaway PostgreSQL cluster on loopback:
#
#   scripts/with_postgres.sh .venv/bin/python -m pytest tests/webapp -q
#
# Installs Debian's postgresql if it is missing (needs root and the package mirror), starts
# a new cluster in a temporary folder on 127.0.0.1 (a free port, trust authentication, never
# a system service), runs the command with DATABASE_URL set, then stops and deletes the
# cluster. The command's exit status is the script's.
set -eu

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing postgresql" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
PORT=${PGPORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
DIR=$(mktemp -d /tmp/cubelab-pg.XXXXXX)
chmod 755 "$DIR"

# PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$DIR"
    AS="runuser -u postgres --"
else
    AS=""
fi

cleanup() {
    $AS "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

$AS "$BIN/initdb" -D "$DIR/data" -U cubelab --auth=trust --encoding=UTF8 --no-instructions >/dev/null
$AS "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
$AS "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U cubelab cubelab

export DATABASE_URL="postgres://cubelab@127.0.0.1:$PORT/cubelab"
echo "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT: DATABASE_URL=$DATABASE_URL" >&2
set +e
"$@"
STATUS=$?
set -e
exit $STATUS
