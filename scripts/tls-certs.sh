#!/usr/bin/env bash
# Makes a throw-away test PKI in DIR with openssl (nothing here is a secret; never commit
# the output):
#   ca.pem                  a test CA
#   server.pem server.key   the broker's certificate, for localhost and 127.0.0.1
#   client.pem client.key   a client certificate with CN=${TLS_CLIENT_CN:-guest}
#   other-ca.pem            another CA, which signed nothing here (the "unknown CA" case)
#   other-client.pem .key   a client certificate (CN=guest) from that other CA
# Usage: bash scripts/tls-certs.sh DIR
set -euo pipefail
dir="${1:?usage: tls-certs.sh DIR}"
mkdir -p "$dir"
cd "$dir"
cn="${TLS_CLIENT_CN:-guest}"
days=30

ca() { # NAME SUBJECT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=$2" -keyout "$1.key" -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
}
leaf() { # NAME CA SUBJECT EXT...
  local name=$1 issuer=$2 subject=$3
  shift 3
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$subject" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  printf '%s\n' "$@" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -CAcreateserial \
    -days "$days" -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

ca ca "Warren test CA"
ca other-ca "Some other CA"
leaf server ca localhost "basicConstraints=CA:FALSE" "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  "extendedKeyUsage=serverAuth"
leaf client ca "$cn" "basicConstraints=CA:FALSE" "extendedKeyUsage=clientAuth"
leaf other-client other-ca "$cn" "basicConstraints=CA:FALSE" "extendedKeyUsage=clientAuth"
rm -f ./*.srl
