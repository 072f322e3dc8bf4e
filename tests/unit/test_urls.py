"""One way to put a name from outside into a URL path."""

import pytest

from library import urls


def test_a_name_is_one_segment():
    assert urls.segment("bot-x/../alice") == "bot-x%2F..%2Falice"
    assert urls.segment("a b?c#d") == "a%20b%3Fc%23d"
    assert urls.segment("bot-mobu-testuser1") == "bot-mobu-testuser1"


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_names_a_client_would_normalise_away_are_refused(name):
    with pytest.raises(ValueError, match="cannot be a URL path segment"):
        urls.segment(name)
