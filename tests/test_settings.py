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


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HOOK_NAME", "hook;rm", r"HOOK_NAME='hook;rm' is not valid: expected ^[A-Za-z0-9\-_/]{1,255}$"),
        (
            "TRUSTED_ACCOUNTS",
            "12345,111122223333",
            "TRUSTED_ACCOUNTS has entries that are not 12-digit account ids: ['12345']",
        ),
        ("MEMBER_ROLE_NAME", "role name", r"MEMBER_ROLE_NAME='role name' is not valid: expected ^[\w+=,.@-]{1,64}$"),
        ("EXTERNAL_ID", "x", r"EXTERNAL_ID is not valid: expected 2 to 1224 of [\w+=,.@:/-]"),
        ("ON_FAILURE", "abandon", "ON_FAILURE='abandon' is not valid: expected ABANDON or CONTINUE"),
        (
            "MOUNT_ROOTS",
            "/,/mnt/../etc",
            "MOUNT_ROOTS has entries that are not normalized absolute directories other than '/' "
            "(components of [A-Za-z0-9._-], no '.' or '..', at most 120 characters): ['/', '/mnt/../etc']",
        ),
        ("MOUNT_DOCUMENT", "a b", r"MOUNT_DOCUMENT='a b' is not valid: expected ^[a-zA-Z0-9_\-.]{3,128}$"),
        ("COMMAND_TIMEOUT_SECONDS", "29", "COMMAND_TIMEOUT_SECONDS='29' is not valid: expected 30 to 2880"),
        ("IDEMPOTENCY_TABLE", "t", "IDEMPOTENCY_TABLE='t' is not a DynamoDB table name"),
        ("UPDATE_SERVICES", "yes", "UPDATE_SERVICES='yes' is not valid: expected true or false"),
        ("DEREGISTER_SOURCE", "1", "DEREGISTER_SOURCE='1' is not valid: expected true or false"),
        ("RETRY_QUEUE_URL", "http://x", "RETRY_QUEUE_URL='http://x' is not an SQS queue URL"),
        ("MOUNT_ATTEMPTS", "11", "MOUNT_ATTEMPTS='11' is not valid: expected 1 to 10"),
        ("MAX_WAIT_SECONDS", "60", "MAX_WAIT_SECONDS='60' is not valid: expected 120 to 172800"),
        ("SWEEP_REGIONS", "eu-west-1,moon", "SWEEP_REGIONS has entries that are not region names: ['moon']"),
        ("SWEEP_MAX_HOSTS", "0", "SWEEP_MAX_HOSTS='0' is not valid: expected 1 to 1000"),
    ],
)
def test_every_variable_fails_with_its_own_message(variable, value, message):
    with pytest.raises(SettingsError) as raised:
        Settings.from_environ({variable: value})
    assert str(raised.value) == message


def test_every_group_of_settings_is_read():
    settings = Settings.from_environ(
        {
            "MOUNT_ROOTS": "/data, /srv,/data",
            "MOUNT_DOCUMENT": "my-mount",
            "COMMAND_TIMEOUT_SECONDS": "900",
            "MOUNT_ATTEMPTS": "5",
            "MAX_WAIT_SECONDS": "3600",
            "IDEMPOTENCY_TABLE": "efs-automount-idempotency",
            "UPDATE_SERVICES": "TRUE",
            "DEREGISTER_SOURCE": "false",
            "RETRY_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/efs-automount-retries",
            "SWEEP_REGIONS": "us-east-1, eu-west-1",
            "AWS_REGION": "eu-west-1",
            "SWEEP_MAX_HOSTS": "200",
        }
    )
    assert settings.mount_roots == ("/data", "/srv")
    assert (settings.mount_document, settings.command_timeout_seconds) == ("my-mount", 900)
    assert (settings.mount_attempts, settings.max_wait_seconds) == (5, 3600)
    assert (settings.idempotency_table, settings.update_services, settings.deregister_source) == (
        "efs-automount-idempotency",
        True,
        False,
    )
    assert settings.retry_queue_url.endswith("/efs-automount-retries")
    assert (settings.sweep_regions, settings.sweep_max_hosts) == (("us-east-1", "eu-west-1"), 200)
    # The function's own region is swept first when SWEEP_REGIONS leaves it out
    assert Settings.from_environ({"SWEEP_REGIONS": "us-east-1", "AWS_REGION": "eu-west-1"}).sweep_regions == (
        "eu-west-1",
        "us-east-1",
    )
