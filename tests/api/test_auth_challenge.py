"""Every 401 carries a WWW-Authenticate challenge (RFC 7235 §3.1, RFC 6750 §3)."""

from __future__ import annotations

import pytest
import requests

from tests.api.helpers import assert_error

PLAIN = 'Bearer realm="micforge"'
INVALID_TOKEN = 'Bearer realm="micforge", error="invalid_token"'


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": "Basic dXNlcjpwYXNz"},  # credentials, but not a bearer token
    ],
)
def test_401_without_a_bearer_token_challenges_without_an_error(micforge_server, headers):
    response = requests.get(micforge_server.url + "/api/mic/me", headers=headers, timeout=30)
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == PLAIN


@pytest.mark.parametrize("token", ["mf_unknown_token_value", "not-even-a-token-shape"])
def test_401_for_an_unknown_token_says_invalid_token(micforge_server, token):
    response = micforge_server.client(token).get("/api/mic/me")
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN


def test_401_for_a_revoked_token_says_invalid_token(micforge_server):
    api = micforge_server.client(micforge_server.create_user().token)
    second = api.post("/api/mic/tokens", json={"name": "short-lived"}).json()
    assert api.delete(f"/api/mic/tokens/{second['id']}").status_code == 204
    response = micforge_server.client(second["token"]).get("/api/mic/me")
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN


def test_other_errors_carry_no_challenge(micforge_server):
    api = micforge_server.client(micforge_server.create_user().token)
    response = api.get("/api/mic/projects/no-such-project")
    assert_error(response, 404, "not_found")
    assert "WWW-Authenticate" not in response.headers
