"""Pure: settings parse once, with defaults, and fail naming the variable."""

from __future__ import annotations

import pytest

from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.settings import Settings, SettingsError


def test_defaults_follow_the_contract():
    settings = Settings.from_environ({})
    assert settings.hook_name == "efs-automount"
    assert settings.trusted_accounts == frozenset()
    assert settings.member_role_name == "efs-automount-member"
    assert settings.external_id is None
    assert settings.on_failure is LifecycleResult.ABANDON


def test_values_are_read_and_trimmed():
    settings = Settings.from_environ(
        {
            "HOOK_NAME": "mount-hook",
            "TRUSTED_ACCOUNTS": " 111122223333, 444455556666 ,",
            "MEMBER_ROLE_NAME": "efs-member",
            "EXTERNAL_ID": "secret-1",
            "ON_FAILURE": "CONTINUE",
        }
    )
    assert settings.trusted_accounts == {"111122223333", "444455556666"}
    assert (settings.hook_name, settings.member_role_name, settings.external_id) == (
        "mount-hook",
        "efs-member",
        "secret-1",
    )
    assert settings.on_failure is LifecycleResult.CONTINUE


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRUSTED_ACCOUNTS", "12345,111122223333"),
        ("ON_FAILURE", "abandon"),
        ("MEMBER_ROLE_NAME", "role name"),
        ("HOOK_NAME", "hook;rm"),
        ("EXTERNAL_ID", "x"),
        ("COMMAND_TIMEOUT_SECONDS", "ten"),
    ],
)
def test_bad_value_fails_naming_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_environ({variable: value})
