#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this machine, from Debian's rabbitmq-server package:
# nodes warren1..3@localhost on AMQP ports 5701..5703 (Erlang distribution 25701..25703),
# data under ${WARREN_CLUSTER_DIR:-/tmp/warren-cluster}. Everything binds to 127.0.0.1.
#   scripts/cluster.sh start    start the nodes, join them, print the AMQP URLs (comma list)
#   scripts/cluster.sh stop     stop every node
#   scripts/cluster.sh urls     print the AMQP URLs
set -euo pipefail
base="${WARREN_CLUSTER_DIR:-/tmp/warren-cluster}"
host=localhost
nodes=(1 2 3)
node() { echo "warren$1@$host"; }
url() { echo "amqp://guest:guest@127.0.0.1:$((5700 + $1))/%2f"; }
urls() { local out=(); for i in "${nodes[@]}"; do out+=("$(url "$i")"); done; (IFS=,; echo "${out[*]}"); }

start_node() {
  local i=$1 dir="$base/$1"
  mkdir -p "$dir/mnesia" "$dir/log"
  : > "$dir/enabled_plugins.conf"; echo "[]." > "$dir/enabled_plugins"
  printf 'loopback_users = none\nlisteners.tcp.1 = 127.0.0.1:%s\n' "$((5700 + i))" > "$dir/rabbitmq.conf"
  if id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq:rabbitmq "$dir"; fi
  env RABBITMQ_NODENAME="$(node "$i")" \
      RABBITMQ_NODE_PORT="$((5700 + i))" \
      RABBITMQ_DIST_PORT="$((25700 + i))" \
      RABBITMQ_MNESIA_BASE="$dir/mnesia" \
      RABBITMQ_LOG_BASE="$dir/log" \
      RABBITMQ_PID_FILE="$dir/pid" \
      RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
      rabbitmq-server -detached >/dev/null 2>&1 || true
}

case "${1:-}" in
  start)
    for i in "${nodes[@]}"; do start_node "$i"; done
    for i in "${nodes[@]}"; do
      # The node registers with epmd a few seconds after -detached returns.
      for _ in $(seq 180); do rabbitmqctl -n "$(node "$i")" status >/dev/null 2>&1 && break; sleep 1; done
      rabbitmqctl -n "$(node "$i")" await_startup --timeout 180 >/dev/null
    done
    for i in 2 3; do
      n="$(node "$i")"
      if ! rabbitmqctl -n "$n" cluster_status 2>/dev/null | grep -q "$(node 1)"; then
        rabbitmqctl -n "$n" stop_app >/dev/null 2>&1
        rabbitmqctl -n "$n" join_cluster "$(node 1)" >/dev/null 2>&1
        rabbitmqctl -n "$n" start_app >/dev/null 2>&1
      fi
    done
    running=$(rabbitmqctl -n "$(node 1)" cluster_status --formatter json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))')
    [ "$running" = 3 ] || { echo "cluster has $running running nodes, expected 3" >&2; exit 1; }
    urls
    ;;
  stop)
    for i in "${nodes[@]}"; do rabbitmqctl -n "$(node "$i")" shutdown >/dev/null 2>&1 || true; done
    rm -rf "$base"
    ;;
  urls) urls ;;
  *) echo "usage: $0 start|stop|urls" >&2; exit 2 ;;
esac
