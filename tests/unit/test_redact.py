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


def test_secret_shapes_in_urls_headers_and_webhooks_are_masked():
    """Shapes a value can carry a credential in, before anyone registered it."""
    cases = {
        "error: cannot reach http://user:pa55word@host/tap": "http://user:***@host/tap",
        "GET https://h/tap/sync?lang=ADQL&access_token=t0ken123": "access_token=***",
        "https://h/x?X-Amz-Signature=abc123&X-Amz-Credential=AKIA1": "X-Amz-Credential=***",
        "https://h/cb?code=abcdef&state=1": "code=***&state=1",
        "--option 'X-Auth-Token: qwertyuiop'": "X-Auth-Token: ***",
        "headers: {Authorization: 'Bearer abc.def.ghi'}": "Authorization: 'Bearer ***'",
        "Proxy-Authorization: Basic dXNlcjpwYXNz": "Proxy-Authorization: Basic ***",
        "Cookie: jupyterhub-session-id=abcdef123": "Cookie: ***",
        "https://hooks.slack.com/services/T000/B000/XXXXXXXX": "https://hooks.slack.com/***",
        "posting to https://example.org/hooks/abc123def": "https://example.org/hooks/***",
        "https://x-access-token:ghp_abcdef12@github.com/o/r.git": "x-access-token:***@github",
        "https://ghp_abcdefghijklmnopqrstuv@github.com/o/r.git": "https://***@github.com",
    }
    for text, expected in cases.items():
        masked = redact.redact_text(text)
        assert expected in masked, (text, masked)
    for secret in ("pa55word", "t0ken123", "qwertyuiop", "abc.def.ghi", "XXXXXXXX", "abc123def"):
        assert all(secret not in redact.redact_text(t) for t in cases)


def test_ordinary_text_is_left_alone():
    for text in (
        "the token file /x/y is missing",
        "--token-file: no such file",
        "sign in at http://127.0.0.1:8000/hub/login",
        "postgres://gavo@localhost/gavo",
        "monkey key=value",
        "mailto:alice@example.org",
        "flock h1: 0.00% success is below 95%",
    ):
        assert redact.redact_text(text) == text


def test_webhook_urls_are_masked_by_name():
    assert redact.redact_data({"webhook_url": "https://h/x"}) == {"webhook_url": "***"}


def test_a_value_marked_secret_is_masked_whatever_its_key_or_length():
    """The config's Secret strings carry ``is_secret``: too short to register, masked anyway."""
    from library.config import Secret

    data = {"dsn": Secret("Zq9"), "argv": ["echo", Secret("k=Zq9")], "plain": "Zq9"}
    assert redact.redact_data(data) == {"dsn": "***", "argv": ["echo", "***"], "plain": "Zq9"}


def test_numbers_are_not_masked_by_name():
    """By name, only strings are masked: a count named like a token is not a credential."""
    data = {"max_input_tokens": 2047, "min_input_tokens": 0, "use_token": True, "token": "t1"}
    assert redact.redact_data(data) == {
        "max_input_tokens": 2047,
        "min_input_tokens": 0,
        "use_token": True,
        "token": "***",
    }
