#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this machine, from Debian's rabbitmq-server package:
# nodes warren1..3@localhost on AMQP ports 5701..5703 (Erlang distribution 25701..25703),
# data under ${WARREN_CLUSTER_DIR:-/tmp/warren-cluster}. Everything binds to 127.0.0.1.
# WARREN_CLUSTER_NAME (default warren) and WARREN_CLUSTER_PORT_BASE (default 5700) move
# the nodes elsewhere, e.g. to run beside another cluster.
#   scripts/cluster.sh start    start the nodes, join them, print the AMQP URLs (comma list)
#   scripts/cluster.sh stop     stop every node
#   scripts/cluster.sh urls     print the AMQP URLs
set -euo pipefail
# shellcheck source=scripts/rabbitmq-node.sh
source "$(dirname "${BASH_SOURCE[0]}")/rabbitmq-node.sh"
base="${WARREN_CLUSTER_DIR:-/tmp/warren-cluster}"
prefix="${WARREN_CLUSTER_NAME:-warren}"
port_base="${WARREN_CLUSTER_PORT_BASE:-5700}"
nodes=(1 2 3)
node() { node_name "$prefix$1"; }
url() { node_url "$((port_base + $1))"; }
urls() { local out=(); for i in "${nodes[@]}"; do out+=("$(url "$i")"); done; (IFS=,; echo "${out[*]}"); }

case "${1:-}" in
  start)
    for i in "${nodes[@]}"; do start_node "$prefix$i" "$((port_base + i))" "$base/$i"; done
    for i in "${nodes[@]}"; do await_node "$prefix$i" "$base/$i"; done
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
    for i in "${nodes[@]}"; do stop_node "$prefix$i" "$base/$i"; done
    rm -rf "$base"
    ;;
  urls) urls ;;
  *) echo "usage: $0 start|stop|urls" >&2; exit 2 ;;
esac
