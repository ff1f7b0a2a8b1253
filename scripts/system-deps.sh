#!/usr/bin/env bash
# System packages the test suite needs, installed only when missing (Debian/Ubuntu, as root):
#   - PostgreSQL server binaries (initdb, postgres, pg_dump, pg_basebackup, pg_rewind, …)
#   - promtool (package `prometheus`), which checks our /metrics output
#   - systemd-analyze (package `systemd`), which verifies the unit `magflock service install` writes
#   - pgbouncer, the managed connection pooler
#   - openssl and haproxy, which check the TLS certificates and the HAProxy template

#   - etcd-server (etcd + etcdctl), the flock store of multi-host tests; iproute2 for their network namespaces
#   - a C compiler (gcc), which builds the realtime native socket writer (npm test builds after this)
# On a machine where they are present this prints one line and changes nothing.
set -euo pipefail
need=()
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v pg_config >/dev/null 2>&1; then
  need+=(postgresql)
fi
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v lz4 >/dev/null 2>&1 || need+=(lz4)   # physical backups decompress with it
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)   # verifies the service unit
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)   # helpers die with the kernel; .js migrations run as nobody
[ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || need+=(pgbouncer)   # the managed pooler
command -v openssl >/dev/null 2>&1 || need+=(openssl)   # TLS tests verify certificates with it
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || need+=(haproxy)   # the health-endpoint/HAProxy template test

command -v etcd >/dev/null 2>&1 || need+=(etcd-server)   # multi-host tests: the flock store
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v ip >/dev/null 2>&1 || need+=(iproute2)   # multi-host tests: network namespaces
command -v "${CC:-cc}" >/dev/null 2>&1 || need+=(gcc)   # the realtime native socket writer (scripts/build-native.mjs)
if [ ${#need[@]} -eq 0 ]; then
  echo "system-deps: postgres and promtool present"
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${need[*]}; install them (Debian: apt-get install -y ${need[*]})" >&2
  exit 1
fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
