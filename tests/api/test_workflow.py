"""End to end over real HTTP: the workflows of API.md against a `micforge serve` process."""

from __future__ import annotations

from tests.api.helpers import (
    assert_error,
    create_project,
    land,
    record,
    start_session,
    upload,
    write_op,
)


def test_user_project_session_blobs_operations_land(micforge_server):
    user = micforge_server.create_user()
    api = micforge_server.client(user.token)
    assert api.get("/api/mic/me").json() == {"id": user.id, "email": user.email}

    project = create_project(api)
    empty = api.get(f"/api/mic/projects/{project}").json()
    assert empty["id"] == project and empty["head"]["position"] == 0
    assert [p["id"] for p in api.get("/api/mic/projects").json()["projects"]] == [project]

    hello = upload(api, project, b"hello\n")
    tool = upload(api, project, b"#!/bin/sh\necho hi\n")
    again = api.post(f"/api/mic/projects/{project}/blobs", data=b"hello\n")
    assert again.status_code == 200 and again.json() == {"hash": hello, "size": 6}

    session = start_session(api, project, "add a greeting")
    assert session["state"] == "open" and session["base_position"] == 0
    assert session["owner"] == user.id and session["landed_position"] is None
    sid = session["id"]
    record(api, project, sid, write_op("README", hello))
    recorded = record(
        api,
        project,
        sid,
        write_op("bin/hi", tool, "exec"),
        {"op": "delete", "path": "never/existed"},
        write_op("README", tool),  # a later op on a path replaces the earlier one
    )
    by_path = {op["path"]: op for op in recorded["operations"]}
    assert by_path["README"]["blob_hash"] == tool and by_path["bin/hi"]["mode"] == "exec"
    assert len([op for op in recorded["operations"] if op["path"] == "README"]) == 1
    decided = api.post(
        f"/api/mic/projects/{project}/sessions/{sid}/decisions", json={"content": "use sh"}
    )
    assert decided.status_code == 200 and decided.json()["decisions"][0]["content"] == "use sh"
    talked = api.post(
        f"/api/mic/projects/{project}/sessions/{sid}/conversation",
        json={"role": "agent", "content": "done"},
    )
    assert talked.json()["conversation"][0]["role"] == "agent"

    landed = land(api, project, sid)
    assert landed.status_code == 200, landed.text
    assert landed.json()["position"] == 1
    assert landed.json()["session"]["state"] == "landed"
    assert landed.json()["session"]["landed_position"] == 1
    # Landing again answers the original position, never a second landing.
    assert land(api, project, sid).json()["position"] == 1

    head = api.get(f"/api/mic/projects/{project}").json()["head"]
    assert head["position"] == 1 and head["tree_hash"] == landed.json()["tree_hash"]
    tree = api.get(f"/api/mic/projects/{project}/tree").json()
    assert [(e["path"], e["mode"], e["size"]) for e in tree["entries"]] == [
        ("README", "file", 18),
        ("bin/hi", "exec", 18),
    ]
    only_bin = api.get(f"/api/mic/projects/{project}/tree", params={"prefix": "bin/"}).json()
    assert [e["path"] for e in only_bin["entries"]] == ["bin/hi"]
    file = api.get(f"/api/mic/projects/{project}/files/bin/hi")
    assert file.status_code == 200 and file.content == b"#!/bin/sh\necho hi\n"
    file_head = api.head(f"/api/mic/projects/{project}/files/bin/hi")
    assert file_head.status_code == 200 and file_head.content == b""
    assert file_head.headers["Content-Length"] == "18"
    assert api.head(f"/api/mic/projects/{project}/files/bin/nope").status_code == 404
    log = api.get(f"/api/mic/projects/{project}/log").json()
    assert log["next"] is None
    assert [(e["position"], e["session_id"], e["goal"], e["owner"]) for e in log["landings"]] == [
        (1, sid, "add a greeting", user.id)
    ]
    assert {"README", "bin/hi"} <= set(log["landings"][0]["paths"])
    diff = api.get(f"/api/mic/projects/{project}/diff", params={"from": 0, "to": 1}).json()
    assert sorted((c["path"], c["change"]) for c in diff["changes"]) == [
        ("README", "added"),
        ("bin/hi", "added"),
    ]

    # A session with no operations lands too, and the tree stays the same.
    empty_session = start_session(api, project, "just a note")
    quiet = land(api, project, empty_session["id"])
    assert quiet.status_code == 200 and quiet.json()["position"] == 2
    assert quiet.json()["tree_hash"] == landed.json()["tree_hash"]
    old = api.get(f"/api/mic/projects/{project}/files/README", params={"at": 1})
    assert old.content == b"#!/bin/sh\necho hi\n"


def test_conflict_reports_real_paths_then_rebase_lands(micforge_server):
    api = micforge_server.client(micforge_server.create_user().token)
    project = create_project(api)
    one, two = upload(api, project, b"one"), upload(api, project, b"two")
    first = start_session(api, project, "first")["id"]
    second = start_session(api, project, "second")["id"]
    record(api, project, first, write_op("shared.txt", one), write_op("a.txt", one))
    record(api, project, second, write_op("shared.txt", two), write_op("b.txt", two))
    assert land(api, project, first).status_code == 200

    conflict = assert_error(land(api, project, second), 409, "conflict")
    assert conflict["paths"] == ["shared.txt"]
    state = api.get(f"/api/mic/projects/{project}/sessions/{second}").json()
    assert state["state"] == "conflicted"

    rebased = api.post(f"/api/mic/projects/{project}/sessions/{second}/rebase")
    assert rebased.status_code == 200, rebased.text
    assert rebased.json()["state"] == "open" and rebased.json()["base_position"] == 1
    assert {op["path"] for op in rebased.json()["operations"]} == {"shared.txt", "b.txt"}
    assert land(api, project, second).json()["position"] == 2
    listed = api.get(f"/api/mic/projects/{project}/sessions", params={"state": "landed"}).json()
    assert {s["id"] for s in listed["sessions"]} == {first, second}


def test_a_file_that_would_also_be_a_directory_is_a_409_conflict(micforge_server):
    api = micforge_server.client(micforge_server.create_user().token)
    project = create_project(api)
    blob = upload(api, project, b"content")
    first = start_session(api, project, "a file named src")["id"]
    record(api, project, first, write_op("src", blob))
    assert land(api, project, first).status_code == 200
    second = start_session(api, project, "files under src/")["id"]
    record(api, project, second, write_op("src/main.py", blob))

    conflict = assert_error(land(api, project, second), 409, "conflict")
    assert conflict["paths"] == ["src", "src/main.py"]
    state = api.get(f"/api/mic/projects/{project}/sessions/{second}").json()
    assert state["state"] == "conflicted"
    tree = api.get(f"/api/mic/projects/{project}/tree").json()
    assert [e["path"] for e in tree["entries"]] == ["src"]

    # Rebased, the session deletes the file and lands: src is a directory now.
    assert api.post(f"/api/mic/projects/{project}/sessions/{second}/rebase").status_code == 200
    record(api, project, second, {"op": "delete", "path": "src"})
    assert land(api, project, second).json()["position"] == 2
    tree = api.get(f"/api/mic/projects/{project}/tree").json()
    assert [e["path"] for e in tree["entries"]] == ["src/main.py"]


def test_sessions_list_paginates_with_opaque_cursor(micforge_server):
    api = micforge_server.client(micforge_server.create_user().token)
    project = create_project(api)
    started = {start_session(api, project, f"goal {i}")["id"] for i in range(5)}
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/api/mic/projects/{project}/sessions", params=params).json()
        assert len(page["sessions"]) <= 2
        seen += [s["id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(started) and len(seen) == 5


def test_roles_read_only_cannot_land_and_strangers_get_404(micforge_server):
    owner = micforge_server.create_user()
    reader = micforge_server.create_user()
    writer = micforge_server.create_user()
    stranger = micforge_server.create_user()
    api = micforge_server.client(owner.token)
    project = create_project(api)
    blob = upload(api, project, b"content")
    sid = start_session(api, project)["id"]
    record(api, project, sid, write_op("f", blob))

    for member, role in ((reader, "read"), (writer, "write")):
        added = api.put(f"/api/mic/projects/{project}/members/{member.id}", json={"role": role})
        assert added.status_code == 200, added.text
        assert added.json()["role"] == role

    as_reader = micforge_server.client(reader.token)
    assert as_reader.get(f"/api/mic/projects/{project}").status_code == 200
    assert as_reader.get(f"/api/mic/projects/{project}/blobs/{blob}").content == b"content"
    assert_error(land(as_reader, project, sid), 403, "forbidden")
    assert_error(as_reader.post(f"/api/mic/projects/{project}/blobs", data=b"x"), 403, "forbidden")
    assert_error(
        as_reader.put(f"/api/mic/projects/{project}/members/{stranger.id}", json={"role": "read"}),
        403,
        "forbidden",
    )
    # A writer may not land someone else's session (only its owner or a project owner).
    assert_error(land(micforge_server.client(writer.token), project, sid), 403, "forbidden")

    as_stranger = micforge_server.client(stranger.token)
    for path in ("", "/sessions", f"/sessions/{sid}", f"/blobs/{blob}", "/tree", "/log"):
        assert_error(as_stranger.get(f"/api/mic/projects/{project}{path}"), 404, "not_found")
    assert_error(land(as_stranger, project, sid), 404, "not_found")
    assert project not in [p["id"] for p in as_stranger.get("/api/mic/projects").json()["projects"]]
    # The id is taken even for someone who cannot see it, and asking gains no access.
    assert_error(as_stranger.post("/api/mic/projects", json={"id": project}), 409, "already_exists")
    assert_error(as_stranger.get(f"/api/mic/projects/{project}"), 404, "not_found")

    removed = api.delete(f"/api/mic/projects/{project}/members/{reader.id}")
    assert removed.status_code == 204
    assert_error(as_reader.get(f"/api/mic/projects/{project}"), 404, "not_found")
    assert land(api, project, sid).status_code == 200


def test_token_lifecycle_and_revocation_is_immediate(micforge_server):
    user = micforge_server.create_user()
    api = micforge_server.client(user.token)
    created = api.post("/api/mic/tokens", json={"name": "ci", "expires_in_days": 7})
    assert created.status_code == 201, created.text
    new = created.json()
    assert set(new) == {"id", "name", "token", "expires_at"} and new["expires_at"]
    listed = api.get("/api/mic/tokens").json()["tokens"]
    assert new["id"] in {t["id"] for t in listed}
    assert all("token" not in t for t in listed)

    second = micforge_server.client(new["token"])
    assert second.get("/api/mic/me").json()["id"] == user.id
    assert api.delete(f"/api/mic/tokens/{new['id']}").status_code == 204
    assert_error(second.get("/api/mic/me"), 401, "unauthorized")
    assert new["id"] not in {t["id"] for t in api.get("/api/mic/tokens").json()["tokens"]}
    # Someone else's token id is not found, so token ids do not leak either.
    other = micforge_server.client(micforge_server.create_user().token)
    assert_error(other.delete(f"/api/mic/tokens/{listed[0]['id']}"), 404, "not_found")


def test_a_token_without_expiry_and_the_document_agree(micforge_server):
    """expires_in_days left out or null: no expiry; /api/openapi.json says null is allowed."""
    api = micforge_server.client(micforge_server.create_user().token)
    for body in ({"name": "forever"}, {"name": "forever too", "expires_in_days": None}):
        created = api.post("/api/mic/tokens", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["expires_at"] is None
    document = api.get("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    days = next(
        schema["properties"]["expires_in_days"]
        for schema in schemas.values()
        if "expires_in_days" in schema.get("properties", {})
        and "name" in schema.get("required", [])
    )
    assert days["nullable"] is True


def test_bodiless_posts_ignore_a_body_of_any_type(micforge_server):
    api = micforge_server.client(micforge_server.create_user().token)
    project = create_project(api)
    base = f"/api/mic/projects/{project}/sessions"
    first, second = start_session(api, project)["id"], start_session(api, project)["id"]
    json_garbage = {"data": b"garbage{", "headers": {"Content-Type": "application/json"}}
    text = {"data": b"hello", "headers": {"Content-Type": "text/plain"}}
    assert api.post(f"{base}/{first}/rebase", **json_garbage).status_code == 200
    assert api.post(f"{base}/{first}/land", **text).json()["position"] == 1
    assert api.post(f"{base}/{second}/abandon", json={}).json()["state"] == "abandoned"
