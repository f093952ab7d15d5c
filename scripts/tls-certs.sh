#!/usr/bin/env bash
# A throw-away test PKI for the TLS tests on RabbitMQ, made with `openssl` at test time
# (nothing here is ever committed). Usage: scripts/tls-certs.sh DIR. Writes, in DIR:
#   ca.pem                  the test CA (clients trust it with --tls-ca / TlsConfig::ca_file)
#   server.pem, server.key  the broker's certificate: DNS:localhost, IP:127.0.0.1
#   expired.pem, .key       same names, valid only during 2020
#   wrong-name.pem, .key    valid, but only for DNS:warren.invalid
#   client.pem, client.key  a client certificate, CN=$TLS_CLIENT_CN (default
#                           warren-tls-client; the EXTERNAL login's user)
#   other-ca.pem            an unrelated CA: trusting it instead is the "bad CA" case
#   other-client.pem, .key  a client certificate signed by the unrelated CA
# Keys are EC P-256, unencrypted (RabbitMQ reads them without a password).
set -euo pipefail
dir="${1:?usage: $0 DIR}"
mkdir -p "$dir"
cd "$dir"

key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.tmp" && openssl pkcs8 -topk8 -nocrypt -in "$1.tmp" -out "$1" && rm -f "$1.tmp"; }

# ca NAME CN: a self-signed CA certificate NAME.pem with key NAME.key and an `openssl ca` db.
ca() {
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem" 2>/dev/null
  mkdir -p "$1.db"
  : >"$1.db/index.txt"
  cat >"$1.db/ca.cnf" <<EOF
[ca]
default_ca = this
[this]
database = $PWD/$1.db/index.txt
new_certs_dir = $PWD/$1.db
certificate = $PWD/$1.pem
private_key = $PWD/$1.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
rand_serial = yes
[any]
commonName = supplied
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = \${ENV::SAN}
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
}

# issue CA NAME CN EXT SAN START END: NAME.pem/NAME.key signed by CA, valid START..END.
issue() {
  local ca=$1 name=$2 cn=$3 ext=$4 san=$5 start=$6 end=$7
  key "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr" 2>/dev/null
  SAN="$san" openssl ca -batch -notext -config "$ca.db/ca.cnf" -extensions "$ext" \
    -startdate "$start" -enddate "$end" -in "$name.csr" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr"
}

now="$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ)"
later="$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)"
ca ca "warren test CA"
ca other-ca "some other CA"
issue ca server localhost server "DNS:localhost,IP:127.0.0.1" "$now" "$later"
issue ca expired localhost server "DNS:localhost,IP:127.0.0.1" 20200101000000Z 20210101000000Z
issue ca wrong-name warren.invalid server "DNS:warren.invalid" "$now" "$later"
cn="${TLS_CLIENT_CN:-warren-tls-client}"
issue ca client "$cn" client "" "$now" "$later"
issue other-ca other-client "$cn" client "" "$now" "$later"
# RabbitMQ runs as the rabbitmq user when there is one: it must read the keys.
chmod 644 ./*.pem ./*.key
