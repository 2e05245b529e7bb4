"""The local MariaDB refuses, in one sentence, a socket path longer than Unix allows."""
import socket

import pytest

from helpers.core.errors import StackError
from helpers.infra.mariadb import SOCKET_PATH_MAX, LocalMariaDB, check_socket_path
from helpers.infra.processes import free_port


def path_of_length(base, length: int):
    """A path under `base` whose string form has exactly `length` characters."""
    name = "s" * (length - len(str(base)) - 1)
    return base / name


def test_the_limit_is_the_kernels(tmp_path):
    fits, too_long = path_of_length(tmp_path, SOCKET_PATH_MAX), path_of_length(tmp_path, SOCKET_PATH_MAX + 1)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(fits))
    with socket.socket(socket.AF_UNIX) as sock, pytest.raises(OSError):
        sock.bind(str(too_long))
    check_socket_path(fits)
    with pytest.raises(StackError, match=rf"has {SOCKET_PATH_MAX + 1} characters.*WORKBOOK_STATE_DIR"):
        check_socket_path(too_long)


def test_a_deep_state_folder_fails_before_anything_starts(tmp_path):
    root = tmp_path / ("deep-folder-" * 8) / "mariadb"
    server = LocalMariaDB(root, free_port())
    assert len(str(server.socket)) > SOCKET_PATH_MAX
    with pytest.raises(StackError, match="Unix allows"):
        server.start()
    assert not root.exists()                 # no data directory was initialised
