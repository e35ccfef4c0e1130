"""X.509 test certificates for the SDK suite, made with the openssl command line (the
Python SDK environment has no certificate library): a CA, certificates it issues, and
self-signed device certificates, as PEM files, with their thumbprints."""

import base64
import hashlib
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass
class Issued:
    cert: Path
    key: Path

    def der(self) -> bytes:
        lines = self.cert.read_text().splitlines()
        start = lines.index("-----BEGIN CERTIFICATE-----") + 1
        end = lines.index("-----END CERTIFICATE-----")
        return base64.b64decode("".join(lines[start:end]))

    def sha1(self) -> str:
        return hashlib.sha1(self.der()).hexdigest().upper()

    def sha256(self) -> str:
        return hashlib.sha256(self.der()).hexdigest().upper()


def openssl_missing() -> Optional[str]:
    if shutil.which("openssl") is None:
        return "the X.509 tests need the openssl command line to make certificates; install openssl"
    return None


def _subject(cn: str) -> str:
    # openssl -subj separates attributes with '/': a module's CN `{device}/{module}` escapes it.
    return "/CN=" + cn.replace("/", "\\/")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path, cn: str = "hubtui SDK test CA") -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.pem", directory / "ca-key.pem"
    _openssl(
        "req", "-x509", *EC, "-keyout", str(key), "-out", str(cert), "-days", "3650",
        "-subj", _subject(cn),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )
    return Issued(cert, key)


def self_signed(directory: Path, name: str, cn: str) -> Issued:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _openssl(
        "req", "-x509", *EC, "-keyout", str(key), "-out", str(cert), "-days", "365",
        "-subj", _subject(cn),
        "-addext", "extendedKeyUsage=clientAuth",
    )
    return Issued(cert, key)


def issue(ca: Issued, directory: Path, name: str, cn: str) -> Issued:
    """A device certificate with subject CN `cn`, signed by `ca`."""
    cert, key, csr = (directory / f"{name}.pem", directory / f"{name}-key.pem",
                      directory / f"{name}.csr")
    ext = directory / f"{name}.ext"
    ext.write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    _openssl("req", "-new", *EC, "-keyout", str(key), "-out", str(csr), "-subj", _subject(cn))
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-set_serial", str(secrets.randbits(63)), "-days", "365", "-sha256",
        "-extfile", str(ext), "-out", str(cert),
    )
    return Issued(cert, key)
