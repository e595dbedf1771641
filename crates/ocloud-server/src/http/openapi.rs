//! The OpenAPI 3 document of everything the service answers: the Cloud API (generated from
//! the handlers' annotations and the wire types' schemas), the content URLs, the upload, the
//! OAuth endpoints and pages, the legacy Personal APIs and `/healthz`.
//!
//! utoipa renders the annotated operations and the schemas; this module then completes the
//! document as JSON: operation ids (`folders.get`, `files.upload`…, the names fault rules and
//! the journal use), security per operation (bearer; basic on the token endpoints), every
//! error each operation can give with its body, and the operations that answer HTML, XML or
//! bytes. `tests` checks that every route of the router is in it.

use serde_json::{Value, json};
use utoipa::OpenApi;

use super::{cloud_v1, upload};

/// The Cloud API v1 as utoipa sees it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orange Cloud API (ocloud)",
        version = "1.5",
        description = "Orange Cloud API v1 as served by ocloud, with its OAuth2 server and the legacy Personal Content and Photos APIs. Errors use the shape set by --error-shape (default: the table's fields at the top level and under \"error\")."
    ),
    paths(
        cloud_v1::freespace,
        cloud_v1::root_folder,
        cloud_v1::folder,
        cloud_v1::create_folder,
        cloud_v1::update_folder,
        cloud_v1::delete_folder,
        cloud_v1::file,
        cloud_v1::update_file,
        cloud_v1::delete_file,
        cloud_v1::session,
        upload::upload,
    ),
    components(schemas(
        ocloud_wire::ErrorBody,
        ocloud_wire::error::DualError,
        ocloud_wire::model::TokenResponse,
        ocloud_wire::model::UploadDescription
    ))
)]
pub struct ApiDoc;

/// The document as JSON text; with the emulator's control plane when it is on.
pub fn document(emulator: bool) -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    complete(&mut doc);
    if emulator {
        doc["components"]["securitySchemes"]["admin"] = json!({
            "type": "http", "scheme": "bearer", "description": "the emulator's admin token, printed at start"
        });
        let paths = doc["paths"].as_object_mut().expect("paths");
        for (path, item) in control_paths() {
            paths.insert(path.to_owned(), item);
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into())
}

/// Operation ids of the annotated operations, by (method, path).
const IDS: &[(&str, &str, &str)] = &[
    ("get", "/cloud/v1/freespace", "freespace.get"),
    ("get", "/cloud/v1/folders", "folders.root"),
    ("post", "/cloud/v1/folders", "folders.create"),
    ("get", "/cloud/v1/folders/{id}", "folders.get"),
    ("post", "/cloud/v1/folders/{id}", "folders.update"),
    ("delete", "/cloud/v1/folders/{id}", "folders.delete"),
    ("get", "/cloud/v1/files/{id}", "files.get"),
    ("post", "/cloud/v1/files/{id}", "files.update"),
    ("delete", "/cloud/v1/files/{id}", "files.delete"),
    ("post", "/cloud/v1/session", "session.create"),
    ("post", "/cloud/v1/files/content", "files.upload"),
];

fn error_ref() -> Value {
    json!({"$ref": "#/components/schemas/DualError"})
}

/// One response per status, naming the table's codes it carries.
fn error_response(status: u16) -> Value {
    let codes: Vec<String> = ocloud_wire::ErrorCode::ALL
        .iter()
        .filter(|c| c.status() == status)
        .map(|c| format!("{} {}", c.code(), c.message()))
        .collect();
    json!({
        "description": codes.join("; "),
        "content": {"application/json": {"schema": error_ref()}}
    })
}

/// The statuses a Cloud API operation can answer with an error body.
fn cloud_errors(method: &str, path: &str) -> Vec<u16> {
    // Every authenticated call: bad Authorization 400/26, 401, 403 (scope, blocked, rate
    // limit), Accept 406, URI 414, 500, 503 (starting, stopping, over capacity).
    let mut s = vec![400, 401, 403, 406, 414, 500, 503];
    if path.contains("{id}") || path == "/cloud/v1/folders" || path.ends_with("/content") {
        s.push(404);
    }
    if method == "post" {
        s.extend([408, 413, 415]);
    }
    if path.ends_with("/content") {
        s.push(411);
    }
    if path == "/cloud/v1/files/{id}" {
        s.push(412);
    }
    s.sort();
    s
}

/// Completes the generated document; see the module docs.
fn complete(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer", "description": "An access token of /oauth/v2/token (OFR-…)"},
        "basic": {"type": "http", "scheme": "basic", "description": "client_id and client_secret"}
    });
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        for (method, op) in item.as_object_mut().into_iter().flatten() {
            let Some(op) = op.as_object_mut() else { continue };
            if let Some((_, _, id)) = IDS.iter().find(|(m, p, _)| m == method && p == path) {
                op.insert("operationId".into(), json!(id));
            }
            op.insert("security".into(), json!([{"bearer": []}]));
            if path == "/cloud/v1/files/content" {
                op.insert("requestBody".into(), upload_body());
            }
            let responses = op.entry("responses").or_insert_with(|| json!({}));
            for status in cloud_errors(method, path) {
                responses[status.to_string()] = error_response(status);
            }
            if path == "/cloud/v1/files/content" {
                responses["401"] = json!({
                    "description": "missing, unknown or expired token: the upload host's own body, in every error shape",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LegacyError"}}}
                });
            }
            if method == "get" && path == "/cloud/v1/files/{id}" {
                responses["304"] = json!({"description": "If-None-Match or If-Modified-Since matched"});
            }
            for p in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                if p["in"] == "path" && p["name"] == "id" {
                    p["schema"] = id_schema();
                }
            }
        }
    }
    for (path, item) in extra_paths() {
        paths.insert(path.to_owned(), item);
    }
    // What the gate in front of every route answers: a URI over the limit, a starting or
    // stopping service, and (but for content URLs) an Accept that excludes JSON.
    for item in paths.values_mut() {
        for op in item.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
            let content = op["operationId"] == "content.get";
            let responses = &mut op["responses"];
            for status in [406, 414, 503] {
                if !(content && status == 406) && responses.get(status.to_string()).is_none() {
                    responses[status.to_string()] = error_response(status);
                }
            }
        }
    }
    doc["components"]["schemas"]["LegacyError"] = json!({
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "label", "details"], "properties": {
            "code": {"type": "string", "example": "PDK_RP_0004"},
            "label": {"type": "string", "example": "INVALID_TOKEN"},
            "details": {"type": "string"}}}}
    });
    doc["components"]["schemas"]["OAuthError"] = json!({
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}
    });
}

/// The emulator's control plane (`http::control`).
fn control_paths() -> Vec<(&'static str, Value)> {
    let op = |id: &str, summary: &str, ok: Value, body: Option<Value>| {
        let mut o = json!({
            "operationId": id, "summary": summary, "security": [{"admin": []}],
            "responses": {"401": error_response(401), "406": error_response(406), "414": error_response(414),
                          "500": error_response(500), "503": error_response(503)}
        });
        let status = if ok.get("content").is_some() { "200" } else { "204" };
        o["responses"][status] = ok;
        if let Some(b) = body {
            o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": b}}});
            for s in [400, 408, 413, 415] {
                o["responses"][s.to_string()] = error_response(s);
            }
        }
        o
    };
    let clock = json!({"description": "the service's time", "content": {"application/json": {"schema": {
        "type": "object", "required": ["now", "now_ms", "frozen"],
        "properties": {"now": {"type": "string", "format": "date-time"}, "now_ms": {"type": "integer"}, "frozen": {"type": "boolean"}}}}}});
    let tokens = json!({"description": "the token endpoint's answer", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}}});
    let done = json!({"description": "done"});
    let token_param = json!([{"name": "token", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let mut expire = op("emu.tokens.expire", "Expire a token now (its next use answers 401)", done.clone(), None);
    expire["parameters"] = token_param.clone();
    expire["responses"]["404"] = error_response(404);
    let mut revoke = op("emu.tokens.revoke", "Revoke a token", done, None);
    revoke["parameters"] = token_param;
    revoke["responses"]["404"] = error_response(404);
    let mut reset = op(
        "emu.reset",
        "Empty the installation (with keep=accounts: only the files)",
        json!({"description": "what was kept", "content": {"application/json": {"schema": {"type": "object"}}}}),
        None,
    );
    reset["parameters"] = json!([{"name": "keep", "in": "query", "schema": {"type": "string", "enum": ["accounts"]}}]);
    reset["responses"]["400"] = error_response(400);
    let mut snap = op(
        "emu.snapshots.create",
        "Take a snapshot of the whole installation",
        json!({"description": "its id", "content": {"application/json": {"schema": {"type": "object", "required": ["id"],
            "properties": {"id": {"type": "string"}}}}}}),
        None,
    );
    let created = snap["responses"]["200"].take();
    snap["responses"]["201"] = created;
    snap["responses"].as_object_mut().expect("responses").remove("200");
    let id_param = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let mut restore = op(
        "emu.snapshots.restore",
        "Put everything back as it was at the snapshot",
        json!({"description": "done"}),
        None,
    );
    restore["parameters"] = id_param.clone();
    restore["responses"]["404"] = error_response(404);
    let mut forget = op("emu.snapshots.delete", "Forget a snapshot", json!({"description": "done"}), None);
    forget["parameters"] = id_param;
    forget["responses"]["404"] = error_response(404);
    let matcher_params = json!([
        {"name": "op", "in": "query", "schema": {"type": "string"}},
        {"name": "method", "in": "query", "schema": {"type": "string"}},
        {"name": "path", "in": "query", "schema": {"type": "string"}, "description": "a glob: * matches any run"},
        {"name": "status", "in": "query", "schema": {"type": "integer", "minimum": 100, "maximum": 599}},
        {"name": "user", "in": "query", "schema": {"type": "string"}},
        {"name": "app", "in": "query", "schema": {"type": "string"}},
        {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "entries with a greater id"}
    ]);
    let mut list = op(
        "emu.requests.list",
        "The request journal, oldest first",
        json!({"description": "entries", "content": {"application/json": {"schema": {"type": "object", "required": ["requests"],
            "properties": {"requests": {"type": "array", "items": {"type": "object"}}}}}}}),
        None,
    );
    list["parameters"] = matcher_params;
    list["responses"]["400"] = error_response(400);
    let count = op(
        "emu.requests.count",
        "How many journal entries match",
        json!({"description": "the count", "content": {"application/json": {"schema": {"type": "object", "required": ["count"],
            "properties": {"count": {"type": "integer"}}}}}}),
        Some(json!({"type": "object", "properties": {"op": {"type": "string"}, "method": {"type": "string"},
            "path": {"type": "string"}, "status": {"type": "integer"}, "user": {"type": "string"}, "app": {"type": "string"},
            "since": {"type": "integer"}}})),
    );
    let rules = json!({"description": "the rules, in order, with their accounting", "content": {"application/json": {"schema": {
        "type": "object", "required": ["rules"], "properties": {"rules": {"type": "array", "items": {"type": "object"}}}}}}});
    let rules_body = json!({"type": "object", "required": ["rules"], "properties": {"rules": {"type": "array", "items": {
        "type": "object", "required": ["action"], "properties": {
            "name": {"type": "string"},
            "match": {"type": "object", "properties": {"op": {"type": "string"}, "method": {"type": "string"},
                "path": {"type": "string"}, "user": {"type": "string"}, "app": {"type": "string"},
                "token": {"type": "string"}, "test_id": {"type": "string"}}},
            "when": {"type": "object", "properties": {"nth": {"type": "array", "items": {"type": "integer"}},
                "probability": {"type": "number", "minimum": 0, "maximum": 1}, "times": {"type": "integer", "minimum": 1}}},
            "action": {"type": "object", "description": "one of: {\"error\": code}, {\"token\": \"expired\"|\"revoked\"}, {\"quota\": \"exceeded\"}, {\"latency\": {\"ms\", \"jitter_ms\"}}, {\"stall\": {\"after\", \"ms\", \"body\"}}, {\"reset\": {\"after\", \"body\"}}, {\"truncate\": {\"after\", \"body\"}}, {\"corrupt\": {\"after\", \"bytes\", \"body\"}}, {\"bandwidth\": {\"bytes_per_s\", \"body\"}}; body: request or response (default)"}}}}}});
    let json_ok = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"type": "object"}}}});
    let settings_body = json!({"type": "object", "properties": {
        "token_ttl": {"type": "integer", "minimum": 1}, "quota": {"type": "integer", "minimum": 0},
        "rate_limit": {"type": "integer", "minimum": 0}, "max_upload_size": {"type": "integer", "minimum": 0},
        "error_shape": {"type": "string", "enum": ["flat", "wrapped", "both", "legacy"]},
        "expired_token_code": {"type": "integer", "enum": [41, 42]},
        "auto_login": {"type": ["string", "null"]}, "auto_consent": {"type": "boolean"}, "seed": {"type": "integer", "minimum": 0}}});
    let mut patch_settings = op(
        "emu.settings.set",
        "Change settings at once (all or nothing)",
        json_ok("the settings in force"),
        Some(settings_body),
    );
    patch_settings["responses"]["400"] = error_response(400);
    let mut codes = op("emu.oauth.codes", "The last authorization code issued to a client", json_ok("the code"), None);
    codes["parameters"] = json!([{"name": "client_id", "in": "query", "required": true, "schema": {"type": "string"}}]);
    codes["responses"]["400"] = error_response(400);
    codes["responses"]["404"] = error_response(404);
    let matcher_query = list["parameters"].clone();
    let mut tail = op(
        "emu.requests.tail",
        "The requests to come, as server-sent events",
        json!({"description": "one `request` event per request", "content": {"text/event-stream": {"schema": {"type": "string"}}}}),
        None,
    );
    tail["parameters"] = matcher_query.clone();
    let mut har = op("emu.requests.har", "The journal as an HTTP Archive (HAR 1.2)", json_ok("a HAR document"), None);
    har["parameters"] = matcher_query;
    let mut export = op(
        "emu.snapshots.export",
        "A snapshot as a tar archive (tables and content), streamed",
        json!({"description": "the archive", "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}),
        None,
    );
    export["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    export["responses"]["404"] = error_response(404);
    let mut import = op(
        "emu.snapshots.import",
        "Load an archive of export as a new snapshot",
        json!({"description": "its id", "content": {"application/json": {"schema": {"type": "object", "required": ["id"],
            "properties": {"id": {"type": "string"}}}}}}),
        None,
    );
    import["requestBody"] =
        json!({"required": true, "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}});
    import["responses"]["201"] = import["responses"]["200"].take();
    import["responses"].as_object_mut().expect("responses").remove("200");
    import["responses"]["400"] = error_response(400);
    vec![
        (
            "/_ocloud/v1/settings",
            json!({"get": op("emu.settings.get", "The settings in force", json_ok("the settings"), None), "patch": patch_settings}),
        ),
        ("/_ocloud/v1/oauth/codes", json!({"get": codes})),
        (
            "/_ocloud/v1/requests/unmatched",
            json!({"get": op("emu.requests.unmatched",
            "Requests no route took, each with the nearest known route", json_ok("entries"), None)}),
        ),
        ("/_ocloud/v1/requests/tail", json!({"get": tail})),
        ("/_ocloud/v1/requests/har", json!({"get": har})),
        ("/_ocloud/v1/snapshots/{id}/export", json!({"get": export})),
        ("/_ocloud/v1/snapshots/import", json!({"post": import})),
        (
            "/_ocloud/v1/faults",
            json!({
                "get": op("emu.faults.get", "The fault rules", rules.clone(), None),
                "put": op("emu.faults.set", "Replace every fault rule", rules.clone(), Some(rules_body.clone())),
                "patch": op("emu.faults.add", "Append fault rules", rules, Some(rules_body)),
                "delete": op("emu.faults.clear", "Remove every fault rule", json!({"description": "done"}), None),
            }),
        ),
        (
            "/_ocloud/v1/requests",
            json!({"get": list, "delete": op("emu.requests.clear", "Empty the journal", json!({"description": "done"}), None)}),
        ),
        ("/_ocloud/v1/requests/count", json!({"post": count})),
        ("/_ocloud/v1/snapshots", json!({"post": snap})),
        ("/_ocloud/v1/snapshots/{id}/restore", json!({"post": restore})),
        ("/_ocloud/v1/snapshots/{id}", json!({"delete": forget})),
        (
            "/_ocloud/v1/clock",
            json!({
                "get": op("emu.clock.get", "The service's clock", clock.clone(), None),
                "put": op("emu.clock.set", "Set the clock (frozen by default)", clock.clone(), Some(json!({"type": "object", "properties": {
                    "now": {"type": "string", "format": "date-time"}, "now_ms": {"type": "integer"}, "frozen": {"type": "boolean"}}}))),
            }),
        ),
        (
            "/_ocloud/v1/clock/advance",
            json!({
                "post": op("emu.clock.advance", "Move the clock forward", clock, Some(json!({"type": "object", "properties": {
                    "seconds": {"type": "number"}, "ms": {"type": "integer"}}}))),
            }),
        ),
        (
            "/_ocloud/v1/tokens",
            json!({
                "post": op("emu.tokens.mint", "Tokens for a user and an app (created if missing)", tokens, Some(json!({
                    "type": "object", "required": ["user", "app"], "properties": {
                        "user": {"type": "string"}, "app": {"type": "string"}, "scope": {"type": "string"},
                        "ttl": {"type": "integer", "minimum": 0}}}))),
            }),
        ),
        ("/_ocloud/v1/tokens/{token}/expire", json!({"post": expire})),
        ("/_ocloud/v1/tokens/{token}/revoke", json!({"post": revoke})),
        ("/_ocloud/v1/reset", json!({"post": reset})),
        (
            "/_ocloud/v1/seed",
            json!({
                "post": op("emu.seed", "Load a fixture: users, apps, tokens, folders and files (idempotent)",
                    json!({"description": "what was created", "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "users": {"type": "integer"}, "apps": {"type": "integer"}, "tokens": {"type": "integer"}, "files": {"type": "integer"}}}}}}),
                    Some(json!({"type": "object", "properties": {
                        "users": {"type": "array", "items": {"type": "object", "required": ["name"]}},
                        "apps": {"type": "array", "items": {"type": "object", "required": ["name", "client_id", "client_secret"]}},
                        "tokens": {"type": "array", "items": {"type": "object", "required": ["user", "app", "access_token"]}},
                        "files": {"type": "array", "items": {"type": "object", "required": ["user", "path"]}}}}))),
            }),
        ),
    ]
}

/// The two upload forms of spec §3.9.
fn upload_body() -> Value {
    json!({"required": true, "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"], "properties": {
                "description": {"type": "string", "description": "JSON of UploadDescription: {\"name\", \"size\" (decimal string), \"folder\"?}; before the file part"},
                "file": {"type": "string", "format": "binary", "description": "the content; exactly `size` bytes when the description gives it"}}},
            "encoding": {"description": {"contentType": "application/json"}}
        },
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary"},
            "description": "form B: the raw content, with ?name= and optionally &folder=, and a Content-Length"
        }
    }})
}

/// An item id: unpadded base64url of its path (spec §3.1).
fn id_schema() -> Value {
    // Unpadded base64 has no length of 1 modulo 4.
    json!({"type": "string", "pattern": "^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?$",
        "description": "unpadded base64url of the item's path"})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}, "description": description})
}

fn required_query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": true, "schema": {"type": "string"}, "description": description})
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn header(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "header", "required": false, "schema": {"type": "string"}, "description": description})
}

fn body(description: &str, content_type: &str) -> Value {
    json!({"description": description, "content": {content_type: {"schema": {"type": "string"}}}})
}

fn xml(description: &str) -> Value {
    body(description, "text/xml")
}

fn html(description: &str) -> Value {
    body(description, "text/html")
}

fn oauth_error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}})
}

fn form(properties: Value, required: &[&str]) -> Value {
    json!({"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": properties, "required": required}}}})
}

/// The operations the annotations do not cover: content URLs, OAuth, legacy APIs, health.
fn extra_paths() -> Vec<(&'static str, Value)> {
    let redirect = json!({"description": "redirect to the client's redirect URI with code (or error) and state",
        "headers": {"Location": {"schema": {"type": "string"}}}});
    let legacy_params = [
        query(
            "action",
            "the action (getContentUploadURL; or GetAlbumsList, CreateAlbum, GetAlbum, GetMediaObjsList, GetMediaObj)",
        ),
        query("token", "an access token of the OAuth server"),
    ];
    vec![
        (
            "/cloud/v1/files/{id}/{kind}/{opaque}",
            json!({"get": {
                "operationId": "content.get",
                "summary": "The bytes of a file, its thumbnail or its preview (downloadUrl, thumbUrl, previewUrl)",
                "security": [{"bearer": []}],
                "parameters": [
                    path_param("id", id_schema()),
                    path_param("kind", json!({"type": "string", "enum": ["content", "thumb", "preview"]})),
                    path_param("opaque", json!({"type": "string"})),
                    header("Range", "one byte range: bytes=first-last, first-, -suffix"),
                    header("If-Range", "ETag or date"),
                    header("If-None-Match", "ETag"),
                    header("If-Modified-Since", "HTTP date"),
                    header("If-Match", "ETag"),
                    header("If-Unmodified-Since", "HTTP date")
                ],
                "responses": {
                    "200": body("the whole content, with the file's MIME type", "*/*"),
                    "206": body("one range (Content-Range)", "*/*"),
                    "304": {"description": "not modified"},
                    "400": error_response(400), "401": error_response(401), "403": error_response(403),
                    "404": error_response(404), "412": error_response(412),
                    "416": {"description": "range past the end (Content-Range: bytes */size), empty body"},
                    "500": error_response(500), "503": error_response(503)
                }
            }}),
        ),
        (
            "/cloud/v1/openapi.json",
            json!({"get": {
                "operationId": "openapi.get", "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }}),
        ),
        (
            "/healthz",
            json!({"get": {
                "operationId": "health.get", "summary": "200 once ready and both backends answer",
                "responses": {"200": body("ok", "text/plain"), "503": error_response(503)}
            }}),
        ),
        (
            "/oauth/v2/authorize",
            json!({"get": {
                "operationId": "oauth.authorize",
                "summary": "Authorization request (spec §2.1): the login and consent pages, or a redirect",
                "parameters": [
                    required_query("response_type", "code"), required_query("client_id", "the app's client id"),
                    required_query("redirect_uri", "a registered redirect URI, exactly"),
                    query("scope", "openid, cloud, cloudfullread, cloudfullwrite, offline_access (space or +)"),
                    query("state", "echoed"), query("prompt", "none, login, consent, or login consent"),
                    query("code_challenge", "PKCE"), query("code_challenge_method", "S256 or plain")
                ],
                "responses": {"200": html("the login or consent page"), "302": redirect, "400": html("unknown client or redirect URI: an error page, never a redirect")}
            }}),
        ),
        (
            "/oauth/v2/login",
            json!({"post": {
                "operationId": "oauth.login", "summary": "The login page's form (CSRF-protected, cookie session)",
                "requestBody": form(json!({"csrf": {"type": "string"}, "username": {"type": "string"}, "password": {"type": "string"}}), &["csrf", "username", "password"]),
                "responses": {"200": html("the consent page, or the login page again with the reason"), "302": redirect, "400": html("a stale or forged form"), "403": html("CSRF check failed"), "415": body("not a form", "text/plain"), "429": html("too many failed attempts: wait")}
            }}),
        ),
        (
            "/oauth/v2/consent",
            json!({"post": {
                "operationId": "oauth.consent", "summary": "The consent page's form",
                "requestBody": form(json!({"csrf": {"type": "string"}, "decision": {"type": "string", "enum": ["allow", "deny"]}}), &["csrf", "decision"]),
                "responses": {"302": redirect, "400": html("a stale or forged form"), "403": html("CSRF check failed"), "415": body("not a form", "text/plain")}
            }}),
        ),
        (
            "/oauth/v2/token",
            json!({"post": {
                "operationId": "oauth.token", "summary": "Token request (spec §2.2): authorization_code or refresh_token",
                "security": [{"basic": []}, {}],
                "requestBody": form(json!({
                    "grant_type": {"type": "string", "enum": ["authorization_code", "refresh_token"]},
                    "code": {"type": "string"}, "redirect_uri": {"type": "string"}, "code_verifier": {"type": "string"},
                    "refresh_token": {"type": "string"}, "scope": {"type": "string"},
                    "client_id": {"type": "string"}, "client_secret": {"type": "string"}}), &["grant_type"]),
                "responses": {
                    "200": {"description": "tokens", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}}},
                    "400": oauth_error("invalid_grant, invalid_request, unsupported_grant_type"),
                    "401": oauth_error("invalid_client"), "500": oauth_error("server_error")
                }
            }}),
        ),
        (
            "/oauth/v2/revoke",
            json!({"post": {
                "operationId": "oauth.revoke", "summary": "RFC 7009: an access token alone, a refresh token with its grant",
                "security": [{"basic": []}, {}],
                "requestBody": form(json!({"token": {"type": "string"}, "token_type_hint": {"type": "string"},
                    "client_id": {"type": "string"}, "client_secret": {"type": "string"}}), &["token"]),
                "responses": {"200": {"description": "revoked, or unknown"}, "400": oauth_error("invalid_request"),
                    "401": oauth_error("invalid_client"), "500": oauth_error("server_error")}
            }}),
        ),
        (
            "/oauth/v2/logout",
            json!({
                "get": {"operationId": "oauth.logout", "summary": "Ends the browser session", "responses": {"200": html("signed out")}},
                "post": {"operationId": "oauth.logout.post", "summary": "Ends the browser session", "responses": {"200": html("signed out")}}
            }),
        ),
        (
            "/personal/content/v1",
            json!({
                "get": {"operationId": "content.api", "summary": "Personal Content API (spec §5): getContentUploadURL",
                    "parameters": [legacy_params[0].clone(), legacy_params[1].clone(),
                        query("content_name", "file name"), query("content_size", "size in bytes")],
                    "responses": {"200": xml("getContentUploadURLResponse with the URL and the downloadUploadKey cookie"),
                        "500": xml("getContentUploadURLResponse/error: PA003, PA004, PA900, MD327, MD803, MD804, MD113")}},
                "post": {"operationId": "content.api.post", "summary": "The same, parameters in a form body (at most 64 KiB)",
                    "requestBody": form(json!({"action": {"type": "string"}, "token": {"type": "string"},
                        "content_name": {"type": "string"}, "content_size": {"type": "string"}}), &[]),
                    "responses": {"200": xml("getContentUploadURLResponse"), "500": xml("getContentUploadURLResponse/error")}}
            }),
        ),
        (
            "/personal/content/v1/upload/{key}",
            json!({"post": {
                "operationId": "content.upload", "summary": "The one-time upload URL: multipart part file_content, with the downloadUploadKey cookie",
                "parameters": [path_param("key", json!({"type": "string"})),
                    {"name": "downloadUploadKey", "in": "cookie", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {"type": "object",
                    "properties": {"file_content": {"type": "string", "format": "binary"}}, "required": ["file_content"]}}}},
                "responses": {"200": xml("the stored content"), "400": xml("mum: the reason")}
            }}),
        ),
        (
            "/personal/photos/v1",
            json!({
                "get": {"operationId": "photos.api", "summary": "Personal Photos API (spec §6)",
                    "parameters": [legacy_params[0].clone(), legacy_params[1].clone(),
                        query("TIT", "album title (CreateAlbum)"), query("Album", "album id"), query("MOB", "media object id")],
                    "responses": {"200": xml("action code=…"), "400": xml("error-code 1101, 1102, 1106, 1401"),
                        "403": xml("error-code 1104 (rate limit)"), "404": xml("error-code 1201, 1301"),
                        "413": xml("error-code 1103"), "500": xml("error-code 1500")}},
                "post": {"operationId": "photos.api.post", "summary": "The same with a form body, or AddMediaObj as multipart (file F)",
                    "requestBody": {"content": {
                        "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"action": {"type": "string"}, "token": {"type": "string"}}}},
                        "multipart/form-data": {"schema": {"type": "object", "properties": {"action": {"type": "string"}, "token": {"type": "string"},
                            "Album": {"type": "string"}, "F_title": {"type": "string"}, "F": {"type": "string", "format": "binary"}}}}}},
                    "responses": {"200": xml("action code=…"), "400": xml("error"), "403": xml("error"), "404": xml("error"), "413": xml("error"), "500": xml("error")}}
            }),
        ),
        (
            "/personal/photos/v1/photo",
            json!({"get": {
                "operationId": "photos.photo", "summary": "A photo's bytes (baseUrl), resized with width and height",
                "parameters": [query("cid", "media object id"), query("app", "app name"), query("token", "access token (or a Bearer header)"),
                    query("width", "pixels"), query("height", "pixels")],
                "responses": {"200": body("the picture", "*/*"), "400": xml("error"), "404": xml("error"), "500": xml("error")}
            }}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_operation_has_an_id_errors_and_is_unique() {
        let doc: serde_json::Value = serde_json::from_str(&super::document(true)).unwrap();
        let mut ids = std::collections::HashSet::new();
        let mut count = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                assert!(ids.insert(id.to_owned()), "{id} twice");
                assert!(op["responses"].as_object().is_some_and(|r| r.len() >= 2), "{id}: one response only");
                count += 1;
            }
        }
        assert!(count >= 25, "{count} operations");
        assert_eq!(
            doc["paths"]["/cloud/v1/files/{id}"]["get"]["responses"]["412"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/DualError"
        );
        let folders = &doc["paths"]["/cloud/v1/folders/{id}"]["get"]["parameters"];
        for p in ["restrictedmode", "showthumbnails", "filter", "flat", "tree", "limit", "offset"] {
            assert!(folders.as_array().unwrap().iter().any(|x| x["name"] == p), "{p} on /folders/{{id}}");
        }
    }
}
