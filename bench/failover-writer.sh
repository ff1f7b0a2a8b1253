#!/usr/bin/env bash
# Copy of ../shared/anchors/patroni/writer.sh (same loop, same log format) with the libpq
# DSN taken from $WRITER_DSN, so MagFlock is measured with exactly the client Patroni was.
# Client write loop via psql: ONE persistent psql session (like an app with one
# pooled connection) fed through FIFOs; one INSERT every 50 ms. If the session
# dies (server killed, demoted, read-only, timeout 5 s) it is reconnected on the
# next tick with libpq multi-host + target_session_attrs=read-write, i.e. to
# whichever node is the read-write primary now. Log line per attempt:
#   seq start_us end_us rc server_port          (rc 0 = acknowledged)
# usage: failover-writer.sh RUNID LOGFILE STOPFILE MAX_SECONDS   (bounded in time; stops itself)
RUN=$1; LOG=$2; STOP=$3; MAX=${4:-240}
DSN=${WRITER_DSN:?set WRITER_DSN}
DIR=$(mktemp -d "$(dirname "$STOP")/writer.XXXXXX")
trap '' PIPE
PID=""; W=""; R=""
connect() {
  rm -f "$DIR/in" "$DIR/out"; mkfifo "$DIR/in" "$DIR/out"
  timeout "$MAX" psql "$DSN" -XAtq -v ON_ERROR_STOP=1 <"$DIR/in" >"$DIR/out" 2>/dev/null &
  PID=$!
  exec {W}>"$DIR/in" {R}<"$DIR/out"
}
disconnect() { # -> sets PRC to psql's exit status
  exec {W}>&- {R}<&-
  kill -TERM "$PID" 2>/dev/null; wait "$PID"; PRC=$?; PID=""
}
exec {SLEEPFD}<> <(:)   # read -t on this fd = fork-free sleep
t=$EPOCHREALTIME; start=${t/./}; end=$(( start + MAX * 1000000 )); i=0
: > "$LOG"
while [ ! -e "$STOP" ]; do
  t=$EPOCHREALTIME; t0=${t/./}
  [ "$t0" -gt "$end" ] && break
  i=$((i + 1))
  [ -z "$PID" ] && connect
  line=""
  if { echo "insert into anchor_bench(run, seq) values ('$RUN', $i) returning inet_server_port();" >&"$W"; } 2>/dev/null \
     && read -r -t 5 -u "$R" line && [[ "$line" =~ ^[0-9]+$ ]]; then
    rc=0
  else
    disconnect; rc=${PRC:-1}; [ "$rc" = 0 ] && rc=1
  fi
  t=$EPOCHREALTIME; t1=${t/./}
  echo "$i $t0 $t1 $rc ${line:-none}" >> "$LOG"
  next=$(( t0 + 50000 )); t=$EPOCHREALTIME; now=${t/./}
  if [ "$now" -lt "$next" ]; then printf -v d '0.%06d' $(( next - now )); read -r -t "$d" -u "$SLEEPFD" || true; fi
done
[ -n "$PID" ] && disconnect
rm -rf "$DIR"
