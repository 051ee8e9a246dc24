"""A test PKI for the PAdES tests and the signing benchmark: a CA and certificates made
with ``cryptography``, a SoftHSM2 token (its own SOFTHSM2_CONF in a temp folder) holding
the signer's key, generated on the token, an RFC 3161 TSA on a loopback port (pyHanko's
in-process test time stamper behind ``http.server``), and the CAs' CRLs on another
(``CrlServer``: built and signed by the CA for each request, from what it has revoked).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so",
                   "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
USER_PIN = "246810"
SO_PIN = "13579135"
TOKEN = "secops-test"
KEY = "office-sign"
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
PublicKey = rsa.RSAPublicKey


def softhsm_module() -> str | None:
    return next((m for m in SOFTHSM_MODULES if Path(m).is_file()), None)


def name(cn: str, *, org: str = "UBND xã Tân Kỳ", title: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
             x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if title:
        attrs.append(x509.NameAttribute(NameOID.TITLE, title))
    return x509.Name(attrs)


@dataclass(frozen=True)
class Ca:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    def issue(self, public: PublicKey, subject: x509.Name, *, not_before: datetime,
              not_after: datetime, signing: bool = True, tsa: bool = False,
              ca: bool = False, crl_url: str | None = None, ocsp_url: str | None = None
              ) -> x509.Certificate:
        """A certificate for ``public``; with ``crl_url``, a CRL distribution point there;
        with ``ocsp_url``, an OCSP responder (authority information access)."""
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
             .public_key(public).serial_number(x509.random_serial_number())
             .not_valid_before(not_before).not_valid_after(not_after)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
             .add_extension(x509.KeyUsage(
                 digital_signature=signing or tsa, content_commitment=signing,
                 key_encipherment=not signing and not tsa and not ca, data_encipherment=False,
                 key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                 decipher_only=False), critical=True))
        if tsa:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                                critical=True)
        if crl_url:
            b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(crl_url)], relative_name=None,
                reasons=None, crl_issuer=None)]), critical=False)
        if ocsp_url:
            b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]),
                critical=False)
        return b.sign(self.key, hashes.SHA256())

    def ocsp(self, request: bytes, revoked: list[tuple[int, datetime]], now: datetime
             ) -> bytes:
        """The CA's own OCSP answer (DER) to ``request``: good, or revoked when its serial
        is in ``revoked``; the request's nonce echoed."""
        from cryptography.x509 import ocsp

        req = ocsp.load_der_ocsp_request(request)
        when = dict(revoked).get(req.serial_number)
        # the builder takes the certificate asked about, which a request names only by its
        # serial and issuer: a stand-in with that serial from this CA answers for it
        stand_in = (x509.CertificateBuilder().subject_name(self.cert.subject)
                    .issuer_name(self.cert.subject).public_key(self.key.public_key())
                    .serial_number(req.serial_number).not_valid_before(now - DAY)
                    .not_valid_after(now + DAY).sign(self.key, hashes.SHA256()))
        b = ocsp.OCSPResponseBuilder().add_response(
            cert=stand_in, issuer=self.cert, algorithm=req.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if when else ocsp.OCSPCertStatus.GOOD,
            this_update=now - 5 * MINUTE, next_update=now + DAY, revocation_time=when,
            revocation_reason=x509.ReasonFlags.key_compromise if when else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.cert)
        for ext in req.extensions:
            if isinstance(ext.value, x509.OCSPNonce):
                b = b.add_extension(ext.value, critical=False)
        return b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def crl(self, revoked: list[tuple[int, datetime]], now: datetime) -> bytes:
        """The CA's CRL (DER) listing ``revoked`` (serial, when), valid for a week."""
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
             .last_update(now - 5 * MINUTE).next_update(now + 7 * DAY)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), critical=False)
             .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False))
        for serial, when in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise),
                               critical=False).build())
        return b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def make_ca(cn: str, now: datetime) -> Ca:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = name(cn, org="Ban Cơ yếu Chính phủ (test)")
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - 3650 * DAY).not_valid_after(now + 3650 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Ca(key, cert)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(pem(*certs))
    return path


# -- SoftHSM2 --------------------------------------------------------------------------------

def init_token(folder: Path, module: str) -> PublicKey:
    """A SoftHSM2 token in ``folder`` (SOFTHSM2_CONF is set for this process: set it before
    the module is first loaded) with an RSA key generated on it; its public key."""
    import pkcs11

    tokens = folder / "tokens"
    tokens.mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN,
                    "--pin", USER_PIN, "--so-pin", SO_PIN], check=True, capture_output=True,
                   timeout=30, env={**os.environ, "SOFTHSM2_CONF": str(conf)})
    lib = pkcs11.lib(module)
    token = lib.get_token(token_label=TOKEN)
    with token.open(rw=True, user_pin=USER_PIN) as session:
        pub, _ = session.generate_keypair(pkcs11.KeyType.RSA, 2048, label=KEY, store=True)
        n = int.from_bytes(pub[pkcs11.Attribute.MODULUS], "big")
        e = int.from_bytes(pub[pkcs11.Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


# -- the TSA -----------------------------------------------------------------------------------

def serve_http(handler: type[BaseHTTPRequestHandler]
               ) -> tuple[ThreadingHTTPServer, threading.Thread, str]:
    """``handler`` served on a free loopback port from a thread of its own (each request in a
    daemon thread): the server, its thread and its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_address[1]}"


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test's output clean (no line per request)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def stop_http(server: ThreadingHTTPServer, thread: threading.Thread) -> None:
    """Stop a server from :func:`serve_http` and wait for its thread."""
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


class Tsa:
    """An RFC 3161 service on 127.0.0.1 (started once, stopped by ``stop``)."""

    def __init__(self, ca: Ca, now: datetime, crl_url: str | None = None) -> None:
        from asn1crypto import keys as asn1_keys
        from asn1crypto import tsp
        from asn1crypto import x509 as asn1_x509
        from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cert = ca.issue(key.public_key(), name("TSA thử nghiệm"), not_before=now - DAY,
                             not_after=now + 365 * DAY, signing=False, tsa=True,
                             crl_url=crl_url)

        def asn1(c: x509.Certificate) -> Any:
            return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

        der = key.private_bytes(serialization.Encoding.DER,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        stamper = DummyTimeStamper(
            tsa_cert=asn1(self.cert), tsa_key=asn1_keys.PrivateKeyInfo.load(der),
            certs_to_embed=SimpleCertificateStore.from_certs([asn1(ca.cert)]))
        self.requests = 0
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = tsp.TimeStampReq.load(body)
                resp = asyncio.run(stamper.async_request_tsa_response(req)).dump()
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(resp)))
                self.end_headers()
                self.wfile.write(resp)
        self.server, self.thread, base = serve_http(Handler)
        self.url = f"{base}/tsa"

    def stop(self) -> None:
        stop_http(self.server, self.thread)


# -- the CRLs ----------------------------------------------------------------------------------

class CrlServer:
    """The CAs' CRLs over HTTP on 127.0.0.1 (started once, stopped by ``stop``): ``/NAME.crl``
    is the CRL of the CA published under NAME, built and signed for each request, and
    ``POST /NAME.ocsp`` its OCSP responder. A name
    can instead answer with something that is no CRL (``garbage``) or not at all until
    ``stop`` (``hang``: a responder that accepts the connection and never answers)."""

    def __init__(self) -> None:
        self.cas: dict[str, Ca] = {}
        self.revoked: dict[str, list[tuple[int, datetime]]] = {}
        self.broken: dict[str, str] = {}
        self.requests: dict[str, int] = {}
        self.released = threading.Event()
        lock = threading.Lock()
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # OCSP: /NAME.ocsp
                name = self.path.lstrip("/").removesuffix(".ocsp")
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    outer.requests[name] = outer.requests.get(name, 0) + 1
                    ca, revoked = outer.cas.get(name), list(outer.revoked.get(name, []))
                if ca is None:
                    self.send_error(404)
                    return
                answer = ca.ocsp(body, revoked, utcnow())
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self) -> None:
                name = self.path.lstrip("/").removesuffix(".crl")
                with lock:
                    outer.requests[name] = outer.requests.get(name, 0) + 1
                    how = outer.broken.get(name)
                    ca, revoked = outer.cas.get(name), list(outer.revoked.get(name, []))
                if how == "hang":
                    outer.released.wait(timeout=120)
                    return
                if how == "garbage":
                    body = b"<html><body>502 Bad Gateway</body></html>"
                elif ca is None:
                    self.send_error(404)
                    return
                else:
                    body = ca.crl(revoked, utcnow())
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        self.server, self.thread, self.base = serve_http(Handler)

    def publish(self, name: str, ca: Ca) -> str:
        """Serve ``ca``'s CRL under ``name``; its URL (for the certificates it issues)."""
        self.cas[name] = ca
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}.crl"

    def ocsp_url(self, name: str) -> str:
        """The OCSP responder of the CA published under ``name`` (the CA signs its answers)."""
        return f"{self.base}/{name}.ocsp"

    def break_(self, name: str, how: str) -> str:
        """``name`` answers badly (``garbage`` or ``hang``); its URL."""
        self.broken[name] = how
        return self.url(name)

    def revoke(self, name: str, cert: x509.Certificate, when: datetime) -> None:
        self.revoked.setdefault(name, []).append((cert.serial_number, when))

    def total_requests(self) -> int:
        return sum(self.requests.values())

    def stop(self) -> None:
        self.released.set()
        stop_http(self.server, self.thread)


class DripServer:
    """An HTTP service on a loopback port that answers 200 and then its body a byte every
    ``every`` seconds, for ever: each read gets data within any sane timeout, the whole
    answer never comes (a time-stamping service that holds a report hostage)."""

    def __init__(self, every: float = 0.3) -> None:
        stop = self.stopping = threading.Event()

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                while not stop.wait(every):
                    try:
                        self.wfile.write(b"0")
                        self.wfile.flush()
                    except OSError:
                        return
        self.server, self.thread, base = serve_http(Handler)
        self.url = f"{base}/tsa"

    def stop(self) -> None:
        self.stopping.set()
        stop_http(self.server, self.thread)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
