"""JupyterHub's side of the class hub: its settings, logins and spawner (helpers/classroom/hub.py starts
it with `jupyterhub -f <state>/class/hub/jupyterhub_config.py`, which calls `configure`).

- RosterAuthenticator: NativeAuthenticator whose accounts are the roster's: each
  is made once from hub/accounts.json, authorized, with its first password; what
  a student later sets at /hub/change-password is kept. No one may sign up.
- StudentSpawner: LocalProcessSpawner that runs a student's server as their
  Unix account `wb-<id>`, in ~/course, with WORKBOOK_DOTENV=~/.env; the
  instructor has no server of their own (the admin page opens the students').
"""
from __future__ import annotations

import json
import pwd
from pathlib import Path
from typing import Any

import bcrypt
from jupyterhub.spawner import LocalProcessSpawner
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.orm import UserInfo
from traitlets import Unicode

from helpers.classroom.hub import INSTRUCTOR, unix_name


class RosterAuthenticator(NativeAuthenticator):
    """NativeAuthenticator with the roster's accounts made on start."""

    accounts_file = Unicode(config=True, help="hub/accounts.json: the first password of every account")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        accounts = json.loads(Path(self.accounts_file).read_text())
        for name, password in {INSTRUCTOR: accounts[INSTRUCTOR], **accounts["students"]}.items():
            if UserInfo.find(self.db, name) is None:
                self.db.add(UserInfo(username=name, is_authorized=True,
                                     password=bcrypt.hashpw(password.encode(), bcrypt.gensalt())))
        self.db.commit()


class StudentSpawner(LocalProcessSpawner):
    """A student's server, run as their own Unix account."""

    @property
    def account(self) -> pwd.struct_passwd:
        """The Unix account of this server's user."""
        if self.user.name == INSTRUCTOR:
            raise ValueError("The instructor's account has no server: open a student's from the admin page "
                             "(/hub/admin).")
        return pwd.getpwnam(unix_name(self.user.name))

    def make_preexec_fn(self, name: str) -> Any:
        """Switch to the student's account, not to a Unix user named like the hub user."""
        return super().make_preexec_fn(self.account.pw_name)

    def user_env(self, env: dict) -> dict:
        """The account's USER and HOME, and the student's own .env."""
        home = self.account.pw_dir
        env.update(USER=self.account.pw_name, HOME=home, SHELL="/bin/bash", WORKBOOK_DOTENV=f"{home}/.env")
        return env


def configure(c: Any, root: Path) -> None:
    """Fill JupyterHub's config object `c` from hub/hub.json."""
    facts = json.loads((root / "hub.json").read_text())
    port, python = facts["port"], Path(facts["python"])
    c.JupyterHub.bind_url = f"http://{facts['bind']}:{port}"
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = port + 1
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 2}"
    c.ConfigurableHTTPProxy.command = [facts["proxy"]]
    c.ConfigurableHTTPProxy.pid_file = str(root / "proxy.pid")
    c.JupyterHub.db_url = f"sqlite:///{root / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(root / "cookie_secret")
    c.JupyterHub.pid_file = str(root / "hub-own.pid")
    c.JupyterHub.authenticator_class = RosterAuthenticator
    c.RosterAuthenticator.accounts_file = str(root / "accounts.json")
    c.Authenticator.allowed_users = set(facts["students"])
    c.Authenticator.admin_users = {INSTRUCTOR}
    c.NativeAuthenticator.enable_signup = False
    c.NativeAuthenticator.minimum_password_length = 10
    c.JupyterHub.spawner_class = StudentSpawner
    c.Spawner.cmd = [str(python), "-m", "jupyterhub.singleuser"]
    c.Spawner.notebook_dir = "~/course"
    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = 180           # thirty servers starting at once on two cores
    c.Spawner.http_timeout = 120
    prefix = Path(facts["jupyter_prefix"])       # JupyterLab's settings and files, from the venv
    c.Spawner.environment = {"PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
                             "JUPYTER_CONFIG_PATH": str(prefix / "etc" / "jupyter"),
                             "JUPYTER_DATA_PATH": str(prefix / "share" / "jupyter")}
