#!/usr/bin/env bash
# One throw-away RabbitMQ node on this machine, from Debian's rabbitmq-server package:
# node NAME@localhost, AMQP on 127.0.0.1:PORT, Erlang distribution on PORT+20000, data
# under ${WARREN_NODES_DIR:-/tmp/warren-nodes}/NAME. The tests that stop, restart,
# disconnect or reconfigure a RabbitMQ run on such a node, never on a user's broker.
#   scripts/rabbitmq-node.sh start [NAME [PORT]]  start the node, print its AMQP URL
#   scripts/rabbitmq-node.sh stop  [NAME]         stop the node and delete its data
#   scripts/rabbitmq-node.sh url   [NAME [PORT]]  print the AMQP URL
#   scripts/rabbitmq-node.sh node  [NAME]         print the node name (for rabbitmqctl -n)
# NAME defaults to warren-faults, PORT to 5710. scripts/cluster.sh sources this file for
# start_node / await_node / stop_node.
# Two variables shape a node for one kind of test (TLS, access control, management):
#   WARREN_NODE_PLUGINS     plugins to enable, comma-separated (e.g. rabbitmq_management)
#   WARREN_NODE_EXTRA_CONF  lines appended to its rabbitmq.conf (e.g. an ssl listener)
set -euo pipefail

node_name() { echo "$1@localhost"; }
node_url() { echo "amqp://guest:guest@127.0.0.1:$1/%2f"; }

# start_node NAME PORT DIR: starts the node detached (returns before it has booted).
start_node() {
  local name=$1 port=$2 dir=$3
  mkdir -p "$dir/mnesia" "$dir/log"
  echo "[${WARREN_NODE_PLUGINS:-}]." > "$dir/enabled_plugins"
  printf 'loopback_users = none\nlisteners.tcp.1 = 127.0.0.1:%s\n' "$port" > "$dir/rabbitmq.conf"
  if [ -n "${WARREN_NODE_EXTRA_CONF:-}" ]; then printf '%s\n' "$WARREN_NODE_EXTRA_CONF" >> "$dir/rabbitmq.conf"; fi
  if id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq:rabbitmq "$dir"; fi
  env RABBITMQ_NODENAME="$(node_name "$name")" \
      RABBITMQ_NODE_PORT="$port" \
      RABBITMQ_DIST_PORT="$((20000 + port))" \
      RABBITMQ_MNESIA_BASE="$dir/mnesia" \
      RABBITMQ_LOG_BASE="$dir/log" \
      RABBITMQ_PID_FILE="$dir/pid" \
      RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
      rabbitmq-server -detached >/dev/null 2>&1 || true
}

# await_node NAME DIR: waits (bounded) until the node has booted; fails with its log.
await_node() {
  local node; node="$(node_name "$1")"
  # The node registers with epmd a few seconds after -detached returns.
  for _ in $(seq 180); do rabbitmqctl -n "$node" status >/dev/null 2>&1 && break; sleep 1; done
  rabbitmqctl -n "$node" await_startup --timeout 180 >/dev/null 2>&1 || {
    echo "RabbitMQ node $node did not start; its log:" >&2
    tail -50 "$2"/log/*.log >&2 2>/dev/null || true
    return 1
  }
}

# stop_node NAME DIR: stops the node (if it runs) and deletes its data.
stop_node() {
  rabbitmqctl -n "$(node_name "$1")" shutdown >/dev/null 2>&1 || true
  rm -rf "$2"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  name="${2:-warren-faults}"
  port="${3:-5710}"
  dir="${WARREN_NODES_DIR:-/tmp/warren-nodes}/$name"
  case "${1:-}" in
    start) start_node "$name" "$port" "$dir"; await_node "$name" "$dir"; node_url "$port" ;;
    stop) stop_node "$name" "$dir" ;;
    url) node_url "$port" ;;
    node) node_name "$name" ;;
    *) echo "usage: $0 start|stop|url|node [NAME [PORT]]" >&2; exit 2 ;;
  esac
fi
