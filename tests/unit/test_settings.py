"""Settings: config args, environment overrides, clear errors, nothing secret printed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serve_app.settings import Settings, SettingsError, load_settings, redact_url

ROOT = Path(__file__).resolve().parents[2]


def test_config_yaml_args_are_valid_settings() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    (app,) = config["applications"]
    settings = load_settings(app["args"], environ={})
    assert settings.kafka_topic == "votes"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"


def test_environment_overrides_config() -> None:
    settings = load_settings(
        {"kafka_topic": "votes"},
        environ={"VOTES_KAFKA_TOPIC": "other", "VOTES_KAFKA_DELIVERY_TIMEOUT_S": "2.5"},
    )
    assert settings.kafka_topic == "other"
    assert settings.kafka_delivery_timeout_s == 2.5


@pytest.mark.parametrize(
    ("args", "environ", "expected"),
    [
        ({"kafka_topik": "x"}, {}, "unknown setting 'kafka_topik' (from config.yaml args)"),
        (
            {},
            {"VOTES_KAFKA_DELIVERY_TIMEOUT_S": "-1"},
            (
                "setting 'kafka_delivery_timeout_s' (from environment variable "
                "VOTES_KAFKA_DELIVERY_TIMEOUT_S): Input should be greater than 0"
            ),
        ),
        ({"kafka_bootstrap_servers": "localhost"}, {}, "'localhost' is not host:port"),
        ({"redis_url": "http://x"}, {}, "setting 'redis_url'"),
        ({"mongo_url": "postgres://x"}, {}, "must start with mongodb://"),
        ({"kafka_topic": "bad topic"}, {}, "setting 'kafka_topic'"),
    ],
)
def test_a_wrong_setting_is_named(args: dict, environ: dict, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(args, environ=environ)
    assert expected in str(info.value)


def test_secrets_are_redacted() -> None:
    settings = Settings(
        write_token="s3cret-token",
        redis_url="redis://:hunter2@redis:6379/0",
        mongo_url="mongodb://votes:pa55word@mongo:27017/",
    )
    shown = str(settings.redacted())
    for secret in ("s3cret-token", "hunter2", "pa55word"):
        assert secret not in shown
    assert "mongodb://votes:***@mongo:27017/" in shown
    assert "s3cret-token" not in repr(settings)
    assert redact_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_an_empty_token_means_no_auth() -> None:
    assert load_settings({}, environ={"VOTES_WRITE_TOKEN": ""}).write_token is None


SASL = {
    "VOTES_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "VOTES_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "VOTES_KAFKA_SASL_USERNAME": "votes-app",
    "VOTES_KAFKA_SASL_PASSWORD": "kafka-s3cret",
}


def test_kafka_authentication_is_off_by_default() -> None:
    settings = load_settings({}, environ={})
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.kafka_sasl_mechanism is None
    assert settings.kafka_sasl_username is None and settings.kafka_sasl_password is None
    assert settings.kafka_security_config() == {}


def test_kafka_sasl_settings_from_the_environment() -> None:
    settings = load_settings({}, environ=SASL)
    assert settings.kafka_security_config() == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "votes-app",
        "sasl.password": "kafka-s3cret",
    }


def test_the_kafka_password_is_redacted() -> None:
    settings = load_settings({}, environ=SASL)
    for shown in (str(settings.redacted()), repr(settings), str(settings)):
        assert "kafka-s3cret" not in shown
    assert settings.redacted()["kafka_sasl_password"] == "***"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({**SASL, "VOTES_KAFKA_SASL_PASSWORD": ""}, "needs kafka_sasl_password"),
        ({**SASL, "VOTES_KAFKA_SASL_USERNAME": ""}, "needs kafka_sasl_username"),
        ({"VOTES_KAFKA_SASL_USERNAME": "votes-app"}, "kafka_security_protocol is PLAINTEXT"),
        ({**SASL, "VOTES_KAFKA_SASL_MECHANISM": "GSSAPI"}, "setting 'kafka_sasl_mechanism'"),
        ({"VOTES_KAFKA_SECURITY_PROTOCOL": "sasl"}, "setting 'kafka_security_protocol'"),
    ],
)
def test_incomplete_kafka_authentication_fails_at_start(environ: dict, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({}, environ=environ)
    assert expected in str(info.value)
    assert "kafka-s3cret" not in str(info.value)
