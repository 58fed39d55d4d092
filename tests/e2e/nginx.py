"""Debian's nginx, run by the tests with the deployment's own site files (``deploy/nginx/``).

The site files are written for the container (``server api:8000``, ``listen 80``, includes and
certificates under ``/etc/nginx/``). ``render_site`` swaps exactly those parts for loopback
ports and a temporary folder, and refuses to render a file in which any of them is missing, so
a change to the deployment's config cannot slip past the tests unrendered.
"""

from __future__ import annotations

import datetime
import grp
import ipaddress
import os
import pwd
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
NGINX_DIR = REPO / "deploy" / "nginx"
NGINX = Path(os.environ.get("IAP_TEST_NGINX", "/usr/sbin/nginx"))

UPSTREAM_LINE = re.compile(r"^(\s*)server api:8000( [^;]*)?;$", re.MULTILINE)


def client_max_body_size() -> int:
    """The largest request body the deployment's nginx lets through, in bytes."""
    text = (NGINX_DIR / "iap-proxy.conf").read_text()
    sizes = re.findall(r"^client_max_body_size (\d+);$", text, re.MULTILINE)
    assert len(sizes) == 1, "iap-proxy.conf must set client_max_body_size once, in bytes"
    return int(sizes[0])


def require_nginx() -> Path:
    """The nginx binary; a missing one skips the test, or fails it where services are required
    (CI), like a missing database."""
    if not NGINX.is_file():
        message = (
            f"no nginx at {NGINX}: `make test` installs Debian's nginx, "
            "or set IAP_TEST_NGINX to an nginx binary"
        )
        if os.environ.get("IAP_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return NGINX


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def self_signed_certificate(folder: Path) -> Certificate:
    """A certificate for 127.0.0.1 and localhost, in nginx's file names (tls.crt, tls.key)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(folder / "tls.crt", folder / "tls.key")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _replace_all(text: str, old: str, new: str, what: str) -> str:
    count = text.count(old)
    assert count >= 1, f"{what}: {old!r} not found; update tests/e2e/nginx.py with the config"
    return text.replace(old, new)


def render_site(
    site: str,
    folder: Path,
    *,
    upstreams: list[str],
    http_port: int,
    https_port: int | None = None,
    certificate: Certificate | None = None,
) -> Path:
    """Render ``deploy/nginx/<site>`` (and the shared ``iap-proxy.conf``) into ``folder`` for
    loopback ``upstreams`` (``host:port``); returns the rendered site file."""
    folder.mkdir(parents=True, exist_ok=True)
    shared = (NGINX_DIR / "iap-proxy.conf").read_text()
    (folder / "iap-proxy.conf").write_text(shared)
    text = (NGINX_DIR / site).read_text()

    match = UPSTREAM_LINE.search(text)
    assert match, f"{site}: no 'server api:8000 ...;' line in its upstream"
    indent, params = match.group(1), match.group(2) or ""
    servers = "\n".join(f"{indent}server {address}{params};" for address in upstreams)
    text = UPSTREAM_LINE.sub(lambda _: servers, text)

    text = _replace_all(text, "listen 80;", f"listen 127.0.0.1:{http_port};", site)
    text = _replace_all(text, "/etc/nginx/iap/", f"{folder}/", site)
    if "listen 443 " in text:
        assert https_port is not None, f"{site} listens on 443: give an https_port"
        assert certificate is not None, f"{site} serves TLS: give a certificate"
        text = _replace_all(text, "listen 443 ", f"listen 127.0.0.1:{https_port} ", site)
        text = _replace_all(text, "/etc/nginx/certs/tls.crt", str(certificate.cert), site)
        text = _replace_all(text, "/etc/nginx/certs/tls.key", str(certificate.key), site)
    leftover = [line for line in text.splitlines() if "/etc/nginx" in line.partition("#")[0]]
    assert not leftover, f"{site}: container paths left after rendering: {leftover}"
    rendered = folder / site
    rendered.write_text(text)
    return rendered


def main_config(folder: Path, site: Path) -> Path:
    """An nginx.conf that runs in the foreground with everything under ``folder`` and includes
    the rendered ``site`` in its http block, as the nginx image's conf.d does. The access log
    names the upstream (API process) that served each request."""
    user = ""
    if os.geteuid() == 0:
        # A root master would run its workers as nobody, who cannot enter the private temp
        # folder where the bodies, logs and certificates are.
        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    config = folder / "nginx.conf"
    config.write_text(
        f"""{user}
daemon off;
master_process on;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    default_type application/octet-stream;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    log_format upstreams '$request_method $request_uri $status $upstream_addr';
    access_log {folder}/access.log upstreams;
    include {site};
}}
"""
    )
    return config


def check_config(nginx: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``config``: parses it and opens its files, binds nothing."""
    return subprocess.run(
        [str(nginx), "-t", "-p", str(config.parent), "-c", str(config), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
