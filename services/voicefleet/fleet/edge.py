"""Render the nginx edge config for a list of workers and check it with ``nginx -t``.

One template (``nginx/edge.conf.template``) serves the local fleet and hand-written VM setups alike; only the
values below change. Placeholders are names in double braces because nginx already owns ``$``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_ENV = "VOICEFLEET_EDGE_TEMPLATE"
INSTALL_HINT = "install it with: apt-get install nginx redis-server"
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
# Directories nginx needs inside its prefix; it creates temp subdirectories itself but not their parents.
_PREFIX_DIRS = ("logs", "tmp")


class EdgeError(RuntimeError):
    """The edge cannot be configured or started; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Backend:
    """One worker as the edge sees it."""

    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """Certificate paths for the TLS listener; TLS is off when the edge has none."""

    port: int
    certificate: Path
    certificate_key: Path


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    backends: tuple[Backend, ...]
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    max_fails: int = 2
    """Failed connects within fail_timeout that mark a worker down (ignored by nginx with one worker)."""
    fail_timeout_s: int = 5
    """How long a failing worker is skipped; short, because a restarted worker is healthy within seconds."""
    session_timeout_s: int = 3700
    """proxy_read/send_timeout: longer than the upstream's one-hour session cap."""
    max_conns_per_client: int = 200
    client_max_body_size: str = "1m"
    worker_connections: int = 4096
    worker_processes: str = "auto"
    tls: TlsSettings | None = None
    expose_upstream_header: bool = False
    """Add ``X-Voicefleet-Upstream: host:port`` to responses. Dev fleets and tests only: it names hosts."""


def default_template_path() -> Path:
    """The template ships in ``nginx/`` at the repository root; ``VOICEFLEET_EDGE_TEMPLATE`` overrides it."""
    override = os.environ.get(TEMPLATE_ENV)
    if override:
        return Path(override)
    # services/voicefleet/fleet/edge.py -> repository root is three levels above the package directory.
    return Path(__file__).resolve().parents[3] / "nginx" / "edge.conf.template"


def render_edge_config(template: str, settings: EdgeSettings, prefix: Path) -> str:
    """Fill the template; raises EdgeError on an unknown or unfilled placeholder."""
    if not settings.backends:
        raise EdgeError("the edge needs at least one worker")
    fail_timeout = f"{settings.fail_timeout_s}s"
    values = {
        "prefix": str(prefix),
        "listen": f"{settings.listen_host}:{settings.listen_port}",
        "upstream_servers": "\n".join(
            f"        server {b.address} max_fails={settings.max_fails} fail_timeout={fail_timeout};"
            for b in settings.backends
        ),
        "tls_listen": _tls_lines(settings),
        "debug_headers": (
            "            add_header X-Voicefleet-Upstream $upstream_addr always;"
            if settings.expose_upstream_header
            else "            # (X-Voicefleet-Upstream header off: it would name internal hosts)"
        ),
        "session_timeout": f"{settings.session_timeout_s}s",
        "max_conns_per_client": str(settings.max_conns_per_client),
        "client_max_body_size": settings.client_max_body_size,
        "worker_connections": str(settings.worker_connections),
        "worker_processes": settings.worker_processes,
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise EdgeError(f"edge template has an unknown placeholder {{{{ {name} }}}}")
        return values[name]

    return _PLACEHOLDER.sub(fill, template)


def _tls_lines(settings: EdgeSettings) -> str:
    if settings.tls is None:
        return "        # TLS off. Pass --tls-cert/--tls-key (EdgeSettings.tls) to add an ssl listener here."
    tls = settings.tls
    return "\n".join(
        [
            f"        listen {settings.listen_host}:{tls.port} ssl;",
            f"        ssl_certificate {tls.certificate};",
            f"        ssl_certificate_key {tls.certificate_key};",
            "        ssl_protocols TLSv1.2 TLSv1.3;",
            "        ssl_session_cache shared:edge_tls:10m;",
        ]
    )


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found is None:
        raise EdgeError(f"nginx is not installed; {INSTALL_HINT}")
    return found


def write_prefix(prefix: Path, config_text: str) -> Path:
    """Create the prefix layout and write ``nginx.conf``; returns the config path."""
    for name in _PREFIX_DIRS:
        (prefix / name).mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # A root master runs its workers as an unprivileged user, which must reach the temp dirs.
        for path in (prefix, *(prefix / n for n in _PREFIX_DIRS)):
            path.chmod(0o755)
    conf = prefix / "nginx.conf"
    tmp = conf.with_suffix(".conf.new")
    tmp.write_text(config_text)
    tmp.replace(conf)
    return conf


def nginx_argv(prefix: Path, conf: Path, *extra: str) -> list[str]:
    # -e keeps nginx's startup messages (before error_log is read) out of the system log path.
    return [
        nginx_binary(),
        "-p",
        str(prefix),
        "-c",
        str(conf),
        "-e",
        str(prefix / "logs" / "error.log"),
        *extra,
    ]


def check_config(prefix: Path, conf: Path) -> None:
    """``nginx -t``: raises EdgeError with nginx's own message when the config is invalid."""
    result = subprocess.run(
        nginx_argv(prefix, conf, "-t", "-q"), capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise EdgeError(f"nginx rejected {conf}:\n{result.stderr.strip()}")


def reload(prefix: Path, conf: Path) -> None:
    """Re-read the config without dropping live connections (used when worker ports change)."""
    result = subprocess.run(
        nginx_argv(prefix, conf, "-s", "reload"), capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise EdgeError(f"nginx reload failed:\n{result.stderr.strip()}")
