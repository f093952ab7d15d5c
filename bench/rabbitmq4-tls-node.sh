#!/usr/bin/env bash
# A current RabbitMQ with a TLS listener, for bench/tls-rabbitmq.sh: Debian 13's
# rabbitmq-server (RabbitMQ 4.0 on Erlang/OTP 27) in a Debian 13 root made with
# debootstrap, next to this machine's own (Debian 12: RabbitMQ 3.10 on OTP 25). It shows
# whether RabbitMQ's TLS cost is that of an old Erlang. Needs root, debootstrap
# (Debian's package) and deb.debian.org; the root (about 400 MB) is kept for the next
# start in ${WARREN_TRIXIE_DIR:-/var/tmp/warren-trixie}.
# Node warren-r4@localhost: plain AMQP on 127.0.0.1:5780, AMQPS on 127.0.0.1:5781 (the
# test PKI of scripts/tls-certs.sh, made at start), its own epmd on port 4370 and
# distribution port 25780, so it meets no other node of this machine.
#   bench/rabbitmq4-tls-node.sh start   make the root if needed, start the node, print
#                                       the variables bench/tls-rabbitmq.sh reads
#   bench/rabbitmq4-tls-node.sh stop    stop the node (and its epmd), delete its data,
#                                       unmount what start mounted in the root
# WARREN_NODE_ERL_ARGS: extra Erlang VM flags (e.g. '+sbwt none').
# Example:
#   eval "$(bash bench/rabbitmq4-tls-node.sh start | sed 's/^/export /')"
#   ROUNDS=3 BENCH_SECONDS=4 bash bench/tls-rabbitmq.sh
#   bash bench/rabbitmq4-tls-node.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
root="${WARREN_TRIXIE_DIR:-/var/tmp/warren-trixie}"
node=warren-r4@localhost
in_root() { chroot "$root" env ERL_EPMD_PORT=4370 HOME=/tmp/r4 bash -c "$1"; }
# ctl ARGS: rabbitmqctl against the node, inside the root.
ctl() { in_root "rabbitmqctl -n $node $1"; }
# Stops the node (if it runs) and its epmd.
stop_node() { ctl 'shutdown >/dev/null 2>&1' || true; in_root 'epmd -kill >/dev/null 2>&1' || true; }

mount_root() {
  local m
  for m in proc sys dev dev/pts; do
    mountpoint -q "$root/$m" || mount --bind "/$m" "$root/$m"
  done
}

case "${1:-}" in
  start)
    if [ ! -x "$root/usr/sbin/rabbitmq-server" ]; then
      command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
      debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >/dev/null
      # No service starts inside the root while packages install.
      printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
      chmod +x "$root/usr/sbin/policy-rc.d"
      cp /etc/resolv.conf "$root/etc/"
      mount_root
      in_root 'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rabbitmq-server >/dev/null'
    fi
    mount_root
    # A node left from an earlier start goes first: its data is about to be replaced.
    stop_node
    rm -rf "$root/tmp/r4" "$root/tmp/pki"
    mkdir -p "$root/tmp/r4"
    bash scripts/tls-certs.sh "$root/tmp/pki" >/dev/null
    cat > "$root/tmp/r4/rabbitmq.conf" <<'EOF'
listeners.tcp.default = 127.0.0.1:5780
listeners.ssl.default = 127.0.0.1:5781
ssl_options.cacertfile = /tmp/pki/ca.pem
ssl_options.certfile = /tmp/pki/server.pem
ssl_options.keyfile = /tmp/pki/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
loopback_users = none
EOF
    echo "[]." > "$root/tmp/r4/enabled_plugins"
    in_root "chown -R rabbitmq:rabbitmq /tmp/r4 /tmp/pki
      export RABBITMQ_NODENAME=$node RABBITMQ_DIST_PORT=25780 \
        RABBITMQ_CONFIG_FILE=/tmp/r4/rabbitmq.conf RABBITMQ_MNESIA_BASE=/tmp/r4/mnesia \
        RABBITMQ_LOG_BASE=/tmp/r4/log RABBITMQ_ENABLED_PLUGINS_FILE=/tmp/r4/enabled_plugins \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='${WARREN_NODE_ERL_ARGS:-}'
      rabbitmq-server -detached >/dev/null 2>&1
      for _ in \$(seq 60); do rabbitmqctl -n $node status >/dev/null 2>&1 && break; sleep 1; done
      rabbitmqctl -n $node await_startup --timeout 120 >/dev/null" || {
      echo "RabbitMQ 4 node did not start; its log:" >&2
      tail -30 "$root"/tmp/r4/log/*.log >&2 2>/dev/null || true
      exit 1
    }
    version="$(ctl version)"
    echo "WARREN_TLS_RABBITMQ_URL=amqps://guest:guest@localhost:5781/%2f"
    echo "WARREN_TLS_PLAIN_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5780/%2f"
    echo "WARREN_TLS_CA=$root/tmp/pki/ca.pem"
    echo "WARREN_TLS_BROKER_PID=$(ctl "eval 'list_to_integer(os:getpid()).'")"
    echo "WARREN_TLS_LABEL='RabbitMQ $version (Debian 13, node warren-r4)'"
    ;;
  stop)
    [ -d "$root/tmp/r4" ] || exit 0
    stop_node
    rm -rf "$root/tmp/r4" "$root/tmp/pki"
    for m in dev/pts dev sys proc; do
      if mountpoint -q "$root/$m"; then umount "$root/$m"; fi
    done
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
