"""Secrets are masked by value and by name."""

from library import redact


def test_registered_values_and_shapes_are_masked():
    with redact.isolated_registry():
        redact.register_secret("abcdef0123456789")
        redact.register_secret("abc")  # too short to mask safely
        text = redact.redact_text("token abcdef0123456789 and abc; Authorization: token zzzzzzzz9")
        assert "abcdef0123456789" not in text and "zzzzzzzz9" not in text and " abc;" in text
        assert redact.redact_text("GET /x?token=qqqqqqqq&a=1") == "GET /x?token=***&a=1"


def test_data_masked_by_key_name():
    data = {"hub": {"token": "t1", "token_file": "/path"}, "password": None, "names": ["x"]}
    masked = redact.redact_data(data)
    assert masked == {
        "hub": {"token": "***", "token_file": "/path"},
        "password": None,
        "names": ["x"],
    }
