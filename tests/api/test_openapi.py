"""The OpenAPI document matches the routes the app really serves, in both directions."""

from __future__ import annotations

import re

import pytest
import requests

from micforge.api.rest import create_app
from micforge.api.rest.openapi import OPERATIONS, openapi_document
from micforge.config import Config

_IMPLICIT_METHODS = {"HEAD", "OPTIONS"}  # Flask adds these to every GET rule / every rule


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


@pytest.fixture
def app(tmp_path):
    config = Config(data_dir=tmp_path)
    app = create_app(config)
    yield app
    app.extensions["micforge"].services.close()


def test_every_route_is_documented_and_every_documented_route_exists(app):
    served = {
        (_openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - _IMPLICIT_METHODS
    }
    document = openapi_document()
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "head"
    }
    assert served - documented == set(), "routes missing from /api/openapi.json"
    assert documented - served == set(), "documented routes the app does not serve"
    # HEAD is documented only where API.md lists it, and only on a GET route.
    heads = {path for path, item in document["paths"].items() if "head" in item}
    assert heads == {"/api/mic/projects/{project}/blobs/{hash_hex}"}
    assert all("get" in document["paths"][path] for path in heads)


def test_every_operation_documents_its_path_parameters_and_errors():
    document = openapi_document()
    assert len({op.operation_id for op in OPERATIONS}) == len(OPERATIONS)
    for path, item in document["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == names, (method, path)
            if operation.get("security") != []:
                assert {"401", "429", "503"} <= set(operation["responses"]), (method, path)
                assert "Retry-After" in operation["responses"]["429"]["headers"], (method, path)


def test_the_served_document_is_the_generated_one(micforge_server):
    served = requests.get(micforge_server.url + "/api/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == openapi_document()
    assert served.json()["openapi"].startswith("3.")


_SAMPLE_PATH_VALUES = {
    "project": "some-project",
    "sid": "0" * 32,
    "hash_hex": "0" * 64,
    "token_id": "t_0",
    "user_id": "u_0",
    "path": "src/a.txt",
}


def test_every_operation_but_the_public_ones_needs_a_token(micforge_server):
    document = openapi_document()
    checked = 0
    for path, item in document["paths"].items():
        url = micforge_server.url + re.sub(r"{([^}]+)}", lambda m: _SAMPLE_PATH_VALUES[m[1]], path)
        for method, operation in item.items():
            response = requests.request(method.upper(), url, json={}, timeout=30)
            if operation.get("security") == []:
                assert response.status_code in (200, 304), (method, path, response.status_code)
                continue
            assert response.status_code == 401, (method, path, response.status_code)
            # The document promises the challenge header on every 401, and it is sent.
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
            assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
            checked += 1
    assert checked == sum(1 for op in OPERATIONS if not op.public) + 1  # + HEAD of blobs


# API.md's tables, transcribed (parameter names as in our routes): the contract the
# document and the app must both match.
API_MD_ROUTES = {
    ("get", "/api/mic/me"),
    ("post", "/api/mic/tokens"),
    ("get", "/api/mic/tokens"),
    ("delete", "/api/mic/tokens/{token_id}"),
    ("post", "/api/mic/projects"),
    ("get", "/api/mic/projects"),
    ("get", "/api/mic/projects/{project}"),
    ("put", "/api/mic/projects/{project}/members/{user_id}"),
    ("delete", "/api/mic/projects/{project}/members/{user_id}"),
    ("post", "/api/mic/projects/{project}/sessions"),
    ("get", "/api/mic/projects/{project}/sessions"),
    ("get", "/api/mic/projects/{project}/sessions/{sid}"),
    ("post", "/api/mic/projects/{project}/sessions/{sid}/operations"),
    ("post", "/api/mic/projects/{project}/sessions/{sid}/decisions"),
    ("post", "/api/mic/projects/{project}/sessions/{sid}/conversation"),
    ("post", "/api/mic/projects/{project}/sessions/{sid}/land"),
    ("post", "/api/mic/projects/{project}/sessions/{sid}/abandon"),
    ("post", "/api/mic/projects/{project}/sessions/{sid}/rebase"),
    ("post", "/api/mic/projects/{project}/blobs"),
    ("head", "/api/mic/projects/{project}/blobs/{hash_hex}"),
    ("get", "/api/mic/projects/{project}/blobs/{hash_hex}"),
    ("get", "/api/mic/projects/{project}/tree"),
    ("get", "/api/mic/projects/{project}/files/{path}"),
    ("get", "/api/mic/projects/{project}/log"),
    ("get", "/api/mic/projects/{project}/diff"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/api/openapi.json"),
}


def test_the_document_lists_exactly_the_routes_of_api_md():
    document = openapi_document()
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == API_MD_ROUTES
