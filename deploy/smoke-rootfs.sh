#!/usr/bin/env bash
# Proves the runtime image's base is enough: a debootstrapped Debian root (what the Dockerfile's runtime stage
# is) runs the compiled binary as a non-root user: --version, check-config, migrate, serve + /readyz + SIGTERM.
#
# No container engine is needed (none runs in CI): root, debootstrap and chroot are. Usage, from the repo:
#   sudo deploy/smoke-rootfs.sh            # starts an embedded Postgres on loopback for the run
#   sudo DATABASE_URL=postgres://… deploy/smoke-rootfs.sh   # or use yours (it must be reachable on loopback)
# Knobs: SMOKE_SUITE (bookworm), SMOKE_MIRROR (http://deb.debian.org/debian), SMOKE_BINARY
# (default: build dist/outbox-mailer from this checkout), SMOKE_CACHE_DIR (keeps downloaded .debs between runs),
# SMOKE_KEEP=1 (leave the root for inspection). Exit 75 means the Debian mirror could not be reached.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

suite=${SMOKE_SUITE:-bookworm}
mirror=${SMOKE_MIRROR:-http://deb.debian.org/debian}
binary=${SMOKE_BINARY:-dist/outbox-mailer}
# Same uid as the Dockerfile's USER, so file permissions are exercised as they will be on Fly.
uid=10001
# fly.toml's kill_timeout: the binary must be gone well before Fly would kill it.
kill_timeout=$(sed -nE 's/^kill_timeout *= *"?([0-9]+)s?"?.*/\1/p' fly.toml)

started=$(date +%s)
step_started=$started
say() { printf 'smoke-rootfs: %s\n' "$*"; }
step() {
  local now
  now=$(date +%s)
  say "  ($((now - step_started)) s)"
  step_started=$now
  say "$*"
}
die() {
  say "FAILED: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot and mount need it)"

work=$(mktemp -d /tmp/outbox-smoke.XXXXXX)
# The embedded Postgres runs as its own user and keeps its data under $work/pg.
chmod 0755 "$work"
root=$work/root
pg_pid=''
serve_pid=''
cleanup() {
  local status=$?
  set +e
  [ -n "$serve_pid" ] && kill -KILL "$serve_pid" 2>/dev/null
  if [ -n "$pg_pid" ]; then
    kill -TERM "$pg_pid" 2>/dev/null
    wait "$pg_pid" 2>/dev/null
  fi
  for m in "$root/dev" "$root/proc"; do
    mountpoint -q "$m" && umount "$m"
  done
  # Never delete through a mount that is still there: it would reach the host's /dev or /proc.
  if mountpoint -q "$root/dev" || mountpoint -q "$root/proc"; then
    say "left $work in place: a mount could not be removed" >&2
  elif [ "${SMOKE_KEEP:-0}" = 1 ]; then
    say "kept $root"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT INT TERM

say "debootstrap $suite (minbase + ca-certificates) from $mirror"
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null || {
    say "debootstrap is not installed and apt-get could not install it (no Debian mirror?)" >&2
    exit 75
  }
fi
cache_args=()
if [ -n "${SMOKE_CACHE_DIR:-}" ]; then
  mkdir -p "$SMOKE_CACHE_DIR"
  cache_args=(--cache-dir="$(cd "$SMOKE_CACHE_DIR" && pwd)")
fi
if ! debootstrap --variant=minbase --include=ca-certificates "${cache_args[@]}" \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  # 75 (EX_TEMPFAIL): the mirror, not the product, failed; CI reports it as skipped.
  say "debootstrap could not build $suite from $mirror (log above)" >&2
  exit 75
fi

step "install the binary as the Dockerfile does"
# A stale dist/ binary would prove nothing about this checkout: build unless one was handed in.
if [ -z "${SMOKE_BINARY:-}" ]; then bun run build >/dev/null; fi
[ -x "$binary" ] || die "no executable at $binary"
install -D -m 0555 "$binary" "$root/app/outbox-mailer"
chroot "$root" useradd --uid "$uid" --user-group --no-create-home \
  --home-dir /nonexistent --shell /usr/sbin/nologin outbox
[ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || die "no CA bundle in the root"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"

step "Postgres on loopback"
db_url=${DATABASE_URL:-}
if [ -z "$db_url" ]; then
  # A real Postgres from npm, as the tests use; it prints its URL, then runs until SIGTERM.
  bun -e "
    import { startEmbeddedPostgres } from '$repo/src/embedded-postgres.ts'
    import pg from 'pg'
    const pgServer = await startEmbeddedPostgres({ dir: '$work/pg', persistent: false, fast: true })
    const admin = new pg.Client({ connectionString: pgServer.url('postgres') })
    await admin.connect(); await admin.query('create database smoke'); await admin.end()
    console.log(pgServer.url('smoke'))
    const stop = async () => { await pgServer.stop(); process.exit(0) }
    process.on('SIGTERM', stop); process.on('SIGINT', stop)
    setInterval(() => {}, 1 << 30)
  " >"$work/pg.url" 2>"$work/pg.log" &
  pg_pid=$!
  for _ in $(seq 1 600); do
    [ -s "$work/pg.url" ] && break
    kill -0 "$pg_pid" 2>/dev/null || { cat "$work/pg.log" >&2; die "embedded Postgres did not start"; }
    sleep 0.1
  done
  db_url=$(head -n 1 "$work/pg.url")
  [ -n "$db_url" ] || die "embedded Postgres did not report its URL in 60 s"
fi

port=$(bun -e "import { freePort } from '$repo/src/embedded-postgres/free-port.ts'; console.log(await freePort())")
jwt_secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# The image's own ENV (the Dockerfile's runtime stage), as NAME=value lines.
image_env_lines=$(bun -e "
  import { imageEnv } from '$repo/test/deploy/deploy-files.ts'
  for (const [name, value] of Object.entries(await imageEnv())) console.log(name + '=' + value)
") || die "could not read the Dockerfile's ENV"
image_env=()
[ -z "$image_env_lines" ] || mapfile -t image_env <<<"$image_env_lines"
say "  the image's ENV: ${image_env[*]:-none}"
# A clean environment, as on a Fly machine: only what the image, fly.toml and the secrets would provide.
# chroot and env both exec, so a background run's $! is the binary itself: SIGTERM reaches it directly.
in_root_cmd=(chroot --userspec="$uid:$uid" "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/nonexistent
  "${image_env[@]}" DATABASE_URL="$db_url" MAIL_TRANSPORT=discard API_JWT_SECRET="$jwt_secret"
  HOST=127.0.0.1 PORT="$port" LOG_LEVEL=warn /app/outbox-mailer)
in_root() { "${in_root_cmd[@]}" "$@"; }

step "outbox-mailer --version"
version=$(in_root --version) || die "--version failed inside the root"
[ "$version" = "$(bun -e "console.log((await Bun.file('package.json').json()).version)")" ] ||
  die "--version printed '$version'"
say "  $version"

step "outbox-mailer check-config --connect"
# Before migrate the schema is pending: a warning, not a failure.
in_root check-config --connect || die "check-config --connect failed inside the root"
in_root --help >/dev/null || die "--help failed inside the root"

step "outbox-mailer migrate"
in_root migrate || die "migrate failed inside the root"

step "outbox-mailer serve, /readyz from outside the root, SIGTERM"
"${in_root_cmd[@]}" serve &
serve_pid=$!
ready=''
for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >"$work/readyz.json" 2>/dev/null; then
    ready=1
    break
  fi
  kill -0 "$serve_pid" 2>/dev/null || die "serve exited before it was ready"
  sleep 0.1
done
[ -n "$ready" ] || die "/readyz did not answer 200 within 30 s: $(cat "$work/readyz.json" 2>/dev/null)"
say "  /readyz: $(cat "$work/readyz.json")"
term_at=$(date +%s)
kill -TERM "$serve_pid"
set +e
wait "$serve_pid"
serve_status=$?
set -e
serve_pid=''
took=$(($(date +%s) - term_at))
[ "$serve_status" -eq 0 ] || die "serve exited $serve_status after SIGTERM (want 0)"
[ "$took" -lt "${kill_timeout:-30}" ] || die "serve took ${took} s to stop (kill_timeout ${kill_timeout} s)"
say "  stopped with exit 0 in ${took} s"

step "passed in $(($(date +%s) - started)) s"
