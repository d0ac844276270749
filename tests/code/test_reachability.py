"""The checks that turn an absent tracking store into one line (no server needed)."""

import socket

import pytest

from saltseg.errors import SaltError
from saltseg.reachability import check_reachable, problem, redacted


def test_redacted_hides_the_password_and_nothing_else():
    uri = "postgresql://saltseg:s3cr:et@127.0.0.1:5432/mlflow"
    assert redacted(uri) == "postgresql://saltseg:***@127.0.0.1:5432/mlflow"
    assert redacted("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert (
        redacted("postgresql://saltseg@127.0.0.1:5432/mlflow") == "postgresql://saltseg@127.0.0.1:5432/mlflow"
    )


def test_a_closed_port_is_one_error_naming_the_uri_and_a_file_store_is_always_there(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(SaltError, match=rf"^MLflow tracking store {uri} is not reachable \(.*refused"):
        check_reachable(uri)
    assert problem(f"sqlite:///{tmp_path / 'mlflow.db'}") is None
