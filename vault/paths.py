"""Where Consentry keeps things. Computed here and only here; everything else takes explicit Paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "consentry"
HOME_ENV = "CONSENTRY_HOME"
POLICY_ENV = "CONSENTRY_POLICY"


@dataclass(frozen=True)
class Layout:
    """The files of one employee's Consentry installation, all below ``home``."""

    home: Path

    @property
    def vault_db(self) -> Path:
        return self.home / "vault.sqlite3"

    @property
    def key_dir(self) -> Path:
        return self.home / "keys"

    @property
    def kek_file(self) -> Path:
        return self.key_dir / "kek"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def runtime_dir(self) -> Path:
        return self.home / "run"

    @property
    def control_socket(self) -> Path:
        return self.runtime_dir / "agent.sock"

    @property
    def agent_lock(self) -> Path:
        return self.runtime_dir / "agent.lock"

    @property
    def tray_lock(self) -> Path:
        """Held by the running ``consentry tray``, so a second autostart does not add a second icon."""
        return self.runtime_dir / "tray.lock"

    @property
    def agent_status(self) -> Path:
        return self.runtime_dir / "status.json"

    @property
    def policy_cache(self) -> Path:
        """The validated machine policy, keyed by the policy file's hash (see ``vault.policy.load_policy``)."""
        return self.runtime_dir / "policy-cache.json"

    @property
    def page_link(self) -> Path:
        """Where the agent's local page says its address and session token (0600, see kit/page_link.py)."""
        return self.runtime_dir / "page.json"


def default_home() -> Path:
    """``$CONSENTRY_HOME`` if set (tests, demos), else the platform's per-user data directory."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_layout() -> Layout:
    return Layout(default_home())


def default_policy_path() -> Path:
    """``$CONSENTRY_POLICY`` if set, else ``<site config dir>/policy.toml`` (``/etc/xdg/consentry`` on Linux)."""
    override = os.environ.get(POLICY_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.site_config_dir(APP_NAME, appauthor=False)) / "policy.toml"
