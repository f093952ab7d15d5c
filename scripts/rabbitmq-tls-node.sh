#!/usr/bin/env bash
# The throw-away RabbitMQ node with a TLS listener for the `rabbitmq_tls::` tests:
# node warren-tls@localhost, plain AMQP on 127.0.0.1:5770, AMQPS on 127.0.0.1:5771,
# with a test PKI made now by scripts/tls-certs.sh in /tmp/warren-nodes/warren-tls/pki
# (deleted with the node). The listener serves pki/served.pem (a copy of server.pem, for
# DNS:localhost and IP:127.0.0.1); the tests copy expired.pem or wrong-name.pem over it
# and clear Erlang's PEM cache to have RabbitMQ serve a bad certificate, then put it back.
# Client certificates are verified when given (verify_peer) but not required, and
# EXTERNAL logs in as the certificate's CN (rabbitmq_auth_mechanism_ssl).
#   scripts/rabbitmq-tls-node.sh start   start it; prints the variables the tests read
#   scripts/rabbitmq-tls-node.sh stop    stop it and delete its data and PKI
# WARREN_TLS_NODE_NAME / WARREN_TLS_NODE_PORT (plain; TLS is the next port) move it;
# WARREN_NODE_EXTRA_CONF (scripts/rabbitmq-node.sh) adds lines after the TLS settings.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${WARREN_TLS_NODE_NAME:-warren-tls}"
port="${WARREN_TLS_NODE_PORT:-5770}"
tls_port=$((port + 1))
dir="${WARREN_NODES_DIR:-/tmp/warren-nodes}/$name"
pki="$dir/pki"

case "${1:-}" in
  start)
    bash scripts/tls-certs.sh "$pki"
    cp "$pki/server.pem" "$pki/served.pem"
    cp "$pki/server.key" "$pki/served.key"
    WARREN_NODE_PLUGINS=rabbitmq_auth_mechanism_ssl WARREN_NODE_EXTRA_CONF="\
listeners.ssl.default = 127.0.0.1:$tls_port
ssl_options.cacertfile = $pki/ca.pem
ssl_options.certfile = $pki/served.pem
ssl_options.keyfile = $pki/served.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name${WARREN_NODE_EXTRA_CONF:+
$WARREN_NODE_EXTRA_CONF}" \
      bash scripts/rabbitmq-node.sh start "$name" "$port" >/dev/null
    echo "WARREN_TLS_RABBITMQ_URL=amqps://guest:guest@localhost:$tls_port/%2f"
    echo "WARREN_TLS_PLAIN_RABBITMQ_URL=$(bash scripts/rabbitmq-node.sh url "$name" "$port")"
    echo "WARREN_TLS_CA=$pki/ca.pem"
    node="$(bash scripts/rabbitmq-node.sh node "$name")"
    echo "WARREN_TLS_NODE=$node"
    echo "WARREN_TLS_BROKER_PID=$(rabbitmqctl -n "$node" eval 'list_to_integer(os:getpid()).')"
    ;;
  stop) bash scripts/rabbitmq-node.sh stop "$name" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
