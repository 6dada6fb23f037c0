# Finds or starts a PostgreSQL server for tests and local runs. Sourced, not run.
#
# ensure_postgres sets DATABASE_URL (an admin connection that may create databases):
#   1. $DATABASE_URL, when it answers;
#   2. else a server on 127.0.0.1:5432 accepting user postgres without a password;
#   3. else a throwaway cluster made with the local PostgreSQL binaries, in a temporary
#      directory, stopped and removed by postgres_cleanup;
#   4. else it stops with a message naming what to install.

PG_STARTED_DIR=""
PG_RUN_AS=()

pg_answers() {
  if command -v psql >/dev/null 2>&1; then
    psql -X -Atq -d "$1" -c 'SELECT 1' >/dev/null 2>&1
  elif command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -d "$1" >/dev/null 2>&1
  else
    # No client tools: all we can check is that the default port is open.
    (exec 3<>/dev/tcp/127.0.0.1/5432) >/dev/null 2>&1
  fi
}

pg_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir 2>/dev/null)
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return; }
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin /usr/local/opt/postgresql*/bin /opt/homebrew/opt/postgresql*/bin 2>/dev/null | sort -rV); do
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return; }
  done
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && dirname "$(command -v initdb)"
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    # Below Linux's ephemeral range (32768 and up), where a port that nothing listens on
    # may still be the local end of a live connection and refuse the bind.
    port=$((10000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") >/dev/null 2>&1 || { echo "$port"; return; }
  done
  return 1
}

start_throwaway_cluster() {
  local bindir port
  bindir=$(pg_bindir) || true
  if [[ -z "$bindir" ]]; then
    cat >&2 <<'MSG'
error: no PostgreSQL to test against.
  Either set DATABASE_URL to a server you can create databases on, or install the
  PostgreSQL server binaries so a throwaway cluster can be started:
    Debian/Ubuntu:  apt-get install postgresql
    Fedora:         dnf install postgresql-server
    macOS:          brew install postgresql@16
MSG
    return 1
  fi
  port=$(free_port)
  PG_STARTED_DIR=$(mktemp -d "${TMPDIR:-/tmp}/customer-portal-pg.XXXXXX")
  # PostgreSQL refuses to run as root; under root, run it as the postgres user.
  if [[ $(id -u) -eq 0 ]]; then
    if ! id postgres >/dev/null 2>&1; then
      echo "error: running as root and there is no 'postgres' user to run a throwaway cluster as" >&2
      return 1
    fi
    chown postgres "$PG_STARTED_DIR"
    PG_RUN_AS=(runuser -u postgres --)
  fi
  echo "starting a throwaway PostgreSQL ($bindir) on 127.0.0.1:$port" >&2
  "${PG_RUN_AS[@]}" "$bindir/initdb" -D "$PG_STARTED_DIR/data" -U postgres -A trust --no-sync >/dev/null
  "${PG_RUN_AS[@]}" "$bindir/pg_ctl" -D "$PG_STARTED_DIR/data" -l "$PG_STARTED_DIR/log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_STARTED_DIR -c fsync=off -c max_connections=200" \
    start >/dev/null
  PG_BINDIR=$bindir
  DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

ensure_postgres() {
  if [[ -n "${DATABASE_URL:-}" ]]; then
    if pg_answers "$DATABASE_URL"; then export DATABASE_URL; return; fi
    echo "warning: DATABASE_URL does not answer; looking for another PostgreSQL" >&2
  fi
  local local_url="postgres://postgres@127.0.0.1:5432/postgres"
  if pg_answers "$local_url"; then
    DATABASE_URL=$local_url
  else
    start_throwaway_cluster || exit 1
  fi
  export DATABASE_URL
}

postgres_cleanup() {
  if [[ -n "$PG_STARTED_DIR" ]]; then
    "${PG_RUN_AS[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_STARTED_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_STARTED_DIR"
    PG_STARTED_DIR=""
  fi
}

admin_psql() {
  psql -X -v ON_ERROR_STOP=1 -d "$DATABASE_URL" "$@"
}

# The URL of another database on the same server.
database_url_for() {
  echo "${DATABASE_URL%/*}/$1"
}
