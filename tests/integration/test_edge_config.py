"""The edge template renders into a config nginx accepts, with the choices the fleet relies on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from edge.harness import needs_nginx

from voicefleet.fleet import edge

pytestmark = [pytest.mark.integration]


def settings(**overrides: object) -> edge.EdgeSettings:
    backends = (
        edge.Backend("127.0.0.1", 9101),
        edge.Backend("127.0.0.1", 9102),
        edge.Backend("10.0.0.7", 8000),
    )
    return edge.EdgeSettings(backends=backends, listen_port=18080, **overrides)  # type: ignore[arg-type]


def render(prefix: Path, **overrides: object) -> str:
    return edge.render_edge_config(edge.default_template_path().read_text(), settings(**overrides), prefix)


def test_render_fills_every_placeholder_with_the_fleet_choices(tmp_path: Path) -> None:
    text = render(tmp_path)
    assert "{{" not in text and "}}" not in text
    assert "ip_hash;" in text
    for address in ("127.0.0.1:9101", "127.0.0.1:9102", "10.0.0.7:8000"):
        assert f"server {address} max_fails=2 fail_timeout=5s;" in text
    assert "map $http_upgrade $connection_upgrade" in text
    assert "proxy_http_version 1.1;" in text
    assert "proxy_read_timeout 3700s;" in text and "proxy_send_timeout 3700s;" in text
    assert "proxy_buffering off;" in text
    assert "proxy_next_upstream error timeout http_502 http_503;" in text
    assert "daemon off;" in text
    assert f"pid {tmp_path}/nginx.pid;" in text
    # Production renders do not reveal worker addresses to clients, and TLS stays off without certificates.
    assert "add_header X-Voicefleet-Upstream" not in text
    assert "ssl_certificate" not in text


def test_every_path_nginx_writes_is_inside_the_prefix(tmp_path: Path) -> None:
    for line in render(tmp_path).splitlines():
        words = line.split()
        if words and (words[0] in {"pid", "error_log", "access_log"} or words[0].endswith("_temp_path")):
            assert words[1] == "off;" or words[1].startswith(str(tmp_path)), line


def test_unknown_placeholder_and_empty_worker_list_are_refused(tmp_path: Path) -> None:
    with pytest.raises(edge.EdgeError, match="unknown placeholder"):
        edge.render_edge_config("listen {{ nope }};", settings(), tmp_path)
    with pytest.raises(edge.EdgeError, match="at least one worker"):
        edge.render_edge_config("", edge.EdgeSettings(backends=()), tmp_path)


@needs_nginx
def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    conf = edge.write_prefix(tmp_path, render(tmp_path, expose_upstream_header=True))
    edge.check_config(tmp_path, conf)


@needs_nginx
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_nginx_accepts_the_tls_listener_with_real_certificates(tmp_path: Path) -> None:
    cert, key = tmp_path / "edge.crt", tmp_path / "edge.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    prefix = tmp_path / "prefix"
    text = render(prefix, tls=edge.TlsSettings(18443, cert, key))
    assert "listen 127.0.0.1:18443 ssl;" in text and f"ssl_certificate {cert};" in text
    edge.check_config(prefix, edge.write_prefix(prefix, text))


@needs_nginx
def test_nginx_rejection_is_reported_with_its_message(tmp_path: Path) -> None:
    conf = edge.write_prefix(tmp_path, render(tmp_path).replace("ip_hash;", "ip_hash_typo;"))
    with pytest.raises(edge.EdgeError, match="ip_hash_typo"):
        edge.check_config(tmp_path, conf)
