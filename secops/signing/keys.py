"""The office's signing key and certificates (adapter): a PKCS#11 token (the key never leaves
it) or a PKCS#12 file, opened for one signing and closed after it.

The PIN comes from a 0600 file (``signing.pin_file``) or a systemd credential
(``signing.pin_credential``: ``$CREDENTIALS_DIRECTORY/NAME``, which systemd makes readable
by the service alone). It is never logged, never put in a message and never passed to a
program. Every failure of the token (module missing, token absent, wrong or locked PIN, no
such key) is a ``SigningError`` (exit 3) that says what to do.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from secops.config.schema import Signing
from secops.errors import SigningError
from secops.files import read_secret


@dataclass(frozen=True)
class Key:
    """An opened key: pyHanko's signer, the signer's certificate, the CAs given with it."""

    signer: Any                        # a pyhanko.sign.signers.Signer
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def quiet_libraries() -> None:
    """pyHanko and its validator log each failed path with a traceback, fontTools each
    table it drops: on our stderr that reads as a crash. Our results say what failed."""
    import logging

    for name in ("pyhanko", "pyhanko_certvalidator", "fontTools"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def load_pem_certificates(path: Path, what: str) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SigningError(f"{what} {path} cannot be read: {e.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise SigningError(f"{what} {path} holds no PEM certificate")
    return certs


def chain_of(sg: Signing) -> list[x509.Certificate]:
    return [c for i, p in enumerate(sg.chain)
            for c in load_pem_certificates(Path(p), f"signing.chain[{i}]")]


def roots_of(sg: Signing, chain: list[x509.Certificate]) -> list[x509.Certificate]:
    """The configured trust roots, else the self-signed certificates in the chain."""
    if sg.trust_roots:
        return [c for i, p in enumerate(sg.trust_roots)
                for c in load_pem_certificates(Path(p), f"signing.trust_roots[{i}]")]
    return [c for c in chain if c.issuer == c.subject]


def read_pin(sg: Signing) -> str:
    if sg.pin_credential is not None:
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if not folder:
            raise SigningError(
                f"signing.pin_credential {sg.pin_credential}: $CREDENTIALS_DIRECTORY is not "
                "set (secops is not running under systemd with LoadCredential=)",
                hint="add 'LoadCredentialEncrypted=" + sg.pin_credential + ":...' to the "
                     "unit, or use signing.pin_file")
        return read_secret(Path(folder) / sg.pin_credential, "signing PIN credential")
    if sg.pin_file is None:
        raise SigningError("signing: no PIN source (pin_file or pin_credential)")
    return read_secret(Path(sg.pin_file), "signing.pin_file")


def to_asn1(cert: x509.Certificate) -> Any:
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def from_asn1(cert: Any) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


@contextmanager
def open_key(sg: Signing) -> Iterator[Key]:
    """The key of ``sg`` for the ``with`` block (a token session is closed after it)."""
    quiet_libraries()
    chain = chain_of(sg)
    cert = (load_pem_certificates(Path(sg.certificate), "signing.certificate")[0]
            if sg.certificate else None)
    if sg.pkcs12 is not None:
        yield _pkcs12_key(sg, cert, chain)
        return
    with _token_key(sg, cert, chain) as key:
        yield key


def _pkcs12_key(sg: Signing, cert: x509.Certificate | None, chain: list[x509.Certificate]
                ) -> Key:
    from asn1crypto import keys as asn1_keys
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        pkcs12,
    )
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    assert sg.pkcs12 is not None and sg.pkcs12_password_file is not None
    password = read_secret(Path(sg.pkcs12_password_file), "signing.pkcs12_password_file")
    try:
        data = Path(sg.pkcs12).read_bytes()
    except OSError as e:
        raise SigningError(f"signing.pkcs12 {sg.pkcs12} cannot be read: {e.strerror}") from None
    try:
        private, own, extra = pkcs12.load_key_and_certificates(data, password.encode("utf-8"))
    except ValueError:
        raise SigningError(f"signing.pkcs12 {sg.pkcs12}: not a PKCS#12 file, or the password "
                           "in signing.pkcs12_password_file does not open it") from None
    cert = cert or own
    if private is None or cert is None:
        raise SigningError(f"signing.pkcs12 {sg.pkcs12} holds no key and certificate")
    chain = [*chain, *extra]
    der = private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    signer = SimpleSigner(signing_cert=to_asn1(cert),
                          signing_key=asn1_keys.PrivateKeyInfo.load(der),
                          cert_registry=SimpleCertificateStore.from_certs(
                              [to_asn1(c) for c in chain]))
    return Key(signer, cert, tuple(chain))


@contextmanager
def _token_key(sg: Signing, cert: x509.Certificate | None, chain: list[x509.Certificate]
               ) -> Iterator[Key]:
    from pkcs11.exceptions import PKCS11Error
    from pyhanko.sign.pkcs11 import PKCS11Signer

    assert sg.pkcs11_module is not None and sg.key_label is not None
    module = Path(sg.pkcs11_module)
    if not module.is_file():
        raise SigningError(
            f"signing.pkcs11_module {module}: no such file: the token's PKCS#11 driver is not "
            "installed here", hint="install the token vendor's driver (docs/signing.md) and "
                                   "check the path with 'pkcs11-tool --module PATH --list-slots'")
    pin = read_pin(sg)
    session = _open_session(sg, str(module), pin)
    try:
        signer = PKCS11Signer(session, key_label=sg.key_label,
                              cert_label=None if cert else sg.key_label,
                              signing_cert=to_asn1(cert) if cert else None,
                              ca_chain=[to_asn1(c) for c in chain])
        try:
            # the key handle now: a missing key is said before anything is signed
            asyncio.run(signer.ensure_objects_loaded())
            own = from_asn1(signer.signing_cert) if cert is None else cert
        except PKCS11Error as e:
            raise SigningError(
                f"token {sg.token_label!r}: no key or certificate labelled {sg.key_label!r} "
                f"({type(e).__name__})",
                hint="list the token's objects: pkcs11-tool --module MODULE --login "
                     "--list-objects") from None
        yield Key(signer, own, tuple(chain))
    finally:
        session.close()


def _open_session(sg: Signing, module: str, pin: str) -> Any:
    from pkcs11.exceptions import (
        PinIncorrect,
        PinLenRange,
        PinLocked,
        PKCS11Error,
        TokenNotPresent,
        TokenNotRecognised,
    )
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign.pkcs11 import open_pkcs11_session

    label = sg.token_label
    try:
        return open_pkcs11_session(module, token_criteria=TokenCriteria(label=label),
                                   user_pin=pin)
    except (PinIncorrect, PinLenRange):
        raise SigningError(f"token {label!r}: the PIN was refused (wrong PIN); the token locks "
                           "itself after a few wrong PINs",
                           hint="check signing.pin_file/pin_credential before trying again"
                           ) from None
    except PinLocked:
        raise SigningError(f"token {label!r}: the PIN is locked after too many wrong PINs",
                           hint="unlock it with the SO PIN (the token vendor's tool)") from None
    except (TokenNotPresent, TokenNotRecognised):
        raise SigningError(f"token {label!r} is not present: plug in the office's USB token",
                           hint="pkcs11-tool --module MODULE --list-slots") from None
    except PKCS11Error as e:
        if "No token" in str(e):
            raise SigningError(
                f"token {label!r} is not present (no token with that label in {module}): "
                "plug in the office's USB token",
                hint=f"pkcs11-tool --module {module} --list-slots shows the tokens and their "
                     "labels") from None
        raise SigningError(f"token {label!r}: {type(e).__name__} from the PKCS#11 module "
                           f"{module}") from None
    except (OSError, RuntimeError) as e:
        raise SigningError(f"signing.pkcs11_module {module} cannot be loaded: {e}") from None
