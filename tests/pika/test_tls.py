"""pika over TLS to `warren broker --tls-listen` (the embedded broker only: it runs
whatever WARREN_BROKERS says). Python's `ssl` module checks the broker's certificate
against a throw-away CA that scripts/tls-certs.sh makes with openssl for the session.

- a broker that verifies peers (--tls-verify-peer): pika logs in with a password
  without a client certificate and with one, and with EXTERNAL by the certificate's
  CN (pika's ExternalCredentials); EXTERNAL without a certificate is refused;
- a broker that requires client certificates (--tls-fail-if-no-peer-cert): a client
  without one, or with one from another CA, fails the TLS handshake.
"""
import os
import signal
import ssl
import subprocess
from pathlib import Path

import pika
import pytest
from pika.exceptions import AMQPConnectionError, ProbableAccessDeniedError

import helpers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "tls-certs.sh"), str(d)],
        check=True,
        env={**os.environ, "TLS_CLIENT_CN": "guest"},
    )
    return d


def _start(pki, *flags):
    binary = helpers.warren_bin()
    if not binary:
        pytest.fail("no warren binary (set WARREN_BIN or build target/{release,debug}/warren)")
    port = helpers.free_port()
    argv = [binary, "broker", "--listen", f"127.0.0.1:{helpers.free_port()}",
            "--tls-listen", f"127.0.0.1:{port}", "--tls-cert", str(pki / "server.pem"),
            "--tls-key", str(pki / "server.key"), "--tls-ca", str(pki / "ca.pem"), *flags]
    proc = helpers.Proc(argv, name="warren broker (TLS)")
    if not helpers.wait_port("127.0.0.1", port, timeout=10, proc=proc.p):
        proc.stop(signal.SIGTERM, timeout=3)
        pytest.fail(f"warren broker did not listen for TLS on {port} within 10 s\n{proc.describe()}")
    return proc, port


@pytest.fixture(scope="module")
def verifying(pki):
    proc, port = _start(pki, "--tls-verify-peer")
    yield port
    proc.stop(signal.SIGTERM, timeout=5)


@pytest.fixture(scope="module")
def requiring(pki):
    proc, port = _start(pki, "--tls-fail-if-no-peer-cert")
    yield port
    proc.stop(signal.SIGTERM, timeout=5)


def _params(pki, port, credentials, client=None):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if client:
        ctx.load_cert_chain(str(pki / f"{client}.pem"), str(pki / f"{client}.key"))
    return pika.ConnectionParameters(
        host="localhost", port=port, credentials=credentials,
        ssl_options=pika.SSLOptions(ctx, server_hostname="localhost"),
        connection_attempts=1, socket_timeout=5, blocked_connection_timeout=5)


def _round_trip(params):
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.basic_publish(exchange="", routing_key=q, body=b"over tls")
        for _ in range(50):
            method, _props, body = ch.basic_get(q, auto_ack=True)
            if method:
                assert body == b"over tls"
                return
            conn.sleep(0.02)
        pytest.fail("the message did not come back")
    finally:
        conn.close()


GUEST = pika.PlainCredentials("guest", "guest")


def test_password_login_without_a_client_certificate(pki, verifying):
    _round_trip(_params(pki, verifying, GUEST))


def test_password_login_with_a_client_certificate(pki, verifying):
    _round_trip(_params(pki, verifying, GUEST, client="client"))


def test_external_login_by_the_certificates_common_name(pki, verifying):
    # scripts/tls-certs.sh issues the client certificate to CN=guest.
    _round_trip(_params(pki, verifying, pika.credentials.ExternalCredentials(), client="client"))


def test_external_without_a_certificate_is_refused(pki, verifying):
    params = _params(pki, verifying, pika.credentials.ExternalCredentials())
    with pytest.raises((ProbableAccessDeniedError, AMQPConnectionError)):
        pika.BlockingConnection(params).close()


def test_no_client_certificate_where_one_is_required(pki, requiring):
    with pytest.raises(AMQPConnectionError):
        pika.BlockingConnection(_params(pki, requiring, GUEST)).close()


def test_a_client_certificate_from_another_ca_is_refused(pki, requiring):
    with pytest.raises(AMQPConnectionError):
        pika.BlockingConnection(_params(pki, requiring, GUEST, client="other-client")).close()


def test_a_required_certificate_admits_password_and_external_logins(pki, requiring):
    _round_trip(_params(pki, requiring, GUEST, client="client"))
    _round_trip(_params(pki, requiring, pika.credentials.ExternalCredentials(), client="client"))
