#!/usr/bin/env bash
# Prints what a test run must leave as it found it on a RabbitMQ node, one sorted line
# per item: memory and disk limits, vhosts, users, and per vhost its policies, queues,
# exchanges and bindings. .ci/run diffs this before and after the tests.
#   scripts/broker-state.sh [NODE]    NODE: rabbitmqctl -n; default: rabbitmqctl's default node
set -euo pipefail
ctl=(rabbitmqctl -q)
if [ -n "${1:-}" ]; then ctl+=(-n "$1"); fi
ctl() { "${ctl[@]}" "$@" --no-table-headers | sed '/^[[:space:]]*$/d'; }

watermark="$("${ctl[@]}" eval 'vm_memory_monitor:get_vm_memory_high_watermark().' 2>&1)" || {
  echo "broker-state: rabbitmqctl cannot reach node ${1:-(default)}: $watermark" | head -3 >&2; exit 1
}
disk="$("${ctl[@]}" eval 'rabbit_disk_monitor:get_disk_free_limit().')"
echo "memory_high_watermark $watermark"
echo "disk_free_limit $disk"
ctl list_vhosts name | sort | sed 's/^/vhost /'
ctl list_users | sort | sed 's/^/user /'
while IFS= read -r vhost; do
  ctl list_policies -p "$vhost" | sort | sed "s|^|policy $vhost |"
  ctl list_queues -p "$vhost" name durable auto_delete exclusive arguments | sort | sed "s|^|queue $vhost |"
  ctl list_exchanges -p "$vhost" name type durable auto_delete internal arguments | sort | sed "s|^|exchange $vhost |"
  ctl list_bindings -p "$vhost" source_name destination_name destination_kind routing_key | sort \
    | sed "s|^|binding $vhost |"
done < <(ctl list_vhosts name | sort)
