//! `/cloud/v1` JSON endpoints (spec §3.2–§3.8): thin handlers, one domain call each.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ocloud_wire::ErrorCode;
use ocloud_wire::model::{CreateFolder, File, FileType, Folder, FreeSpace, Session, SubFolder, UpdateItem};

use super::AppState;
use super::conditional::{Precondition, validators};
use super::error::ApiError;
use super::extract::{Auth, RawQuery, json_body};
use crate::domain::ListParams;

type ApiResult<T> = Result<T, ApiError>;

/// Free space of the caller.
#[utoipa::path(get, path = "/cloud/v1/freespace", responses((status = 200, body = FreeSpace)))]
pub async fn freespace(State(s): State<AppState>, Auth(a): Auth) -> Json<FreeSpace> {
    Json(FreeSpace { freespace: s.svc.freespace(&a) })
}

/// The seven listing parameters of spec §3.4, for the OpenAPI document (the handlers read
/// them with [`RawQuery`], as flags are on when present unless `false` or `0`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQuery {
    /// The app folder as the root, whatever the scopes.
    restrictedmode: Option<String>,
    /// Add downloadUrl (and thumbUrl/previewUrl for pictures) to files.
    showthumbnails: Option<String>,
    /// image, video, audio or other.
    #[param(pattern = "^([Ii][Mm][Aa][Gg][Ee]|[Vv][Ii][Dd][Ee][Oo]|[Aa][Uu][Dd][Ii][Oo]|[Oo][Tt][Hh][Ee][Rr])$")]
    filter: Option<String>,
    /// The whole subtree, each sub-folder with its parentId.
    flat: Option<String>,
    /// Folders only.
    tree: Option<String>,
    /// At most this many entries (sub-folders, then files); 0: no limit.
    limit: Option<u64>,
    /// Skip this many entries.
    offset: Option<u64>,
}

fn list_params(q: &RawQuery) -> ApiResult<ListParams> {
    let filter = match q.get("filter") {
        None | Some("") => None,
        Some(v) => Some(FileType::from_filter(v).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQueryParameter,
                format!("filter={v:?}: expected image, video, audio or other"),
            )
        })?),
    };
    Ok(ListParams {
        restricted: q.flag("restrictedmode"),
        thumbnails: q.flag("showthumbnails"),
        filter,
        flat: q.flag("flat"),
        tree: q.flag("tree"),
        limit: q.number("limit")?,
        offset: q.number("offset")?.unwrap_or(0),
    })
}

/// The root the token sees.
#[utoipa::path(get, path = "/cloud/v1/folders", params(ListQuery), responses((status = 200, body = Folder)))]
pub async fn root_folder(State(s): State<AppState>, Auth(a): Auth, q: RawQuery) -> ApiResult<Response> {
    let p = list_params(&q)?;
    Ok(json_bytes(s.svc.list_json(&a, None, &p).await?))
}

/// Ready JSON bytes as an answer (its header a static value: parsed from a `&str`, it was
/// copied on every cached listing).
fn json_bytes(body: bytes::Bytes) -> Response {
    let mut res = Response::new(Body::from(body));
    res.headers_mut().insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    res
}

/// One folder.
#[utoipa::path(get, path = "/cloud/v1/folders/{id}", params(("id" = String, Path), ListQuery), responses((status = 200, body = Folder)))]
pub async fn folder(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
    q: RawQuery,
) -> ApiResult<Response> {
    let p = list_params(&q)?;
    Ok(json_bytes(s.svc.list_json(&a, Some(&id), &p).await?))
}

/// Creates a folder.
#[utoipa::path(post, path = "/cloud/v1/folders", request_body = CreateFolder, responses((status = 200, body = Folder)))]
pub async fn create_folder(
    State(s): State<AppState>,
    Auth(a): Auth,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Folder>> {
    let req: CreateFolder = json_body(&s, &headers, body).await?;
    Ok(Json(s.svc.create_folder(&a, &req.name, req.parent_folder_id.as_deref()).await?))
}

async fn update_item(
    s: &AppState,
    a: &crate::domain::Access,
    id: &str,
    is_dir: bool,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: UpdateItem = json_body(s, headers, body).await?;
    if req.name.is_none() && req.parent_folder_id.is_none() && req.clone != Some(true) {
        return Err(ApiError::new(ErrorCode::MissingBodyField, "give name, parentFolderId, or both"));
    }
    let (item, parent_id) = s.svc.update(a, id, is_dir, &req).await?;
    Ok(if is_dir {
        Json(SubFolder { id: item.id(), name: item.node.name, parent_id }).into_response()
    } else {
        Json(s.svc.file_json(&item, true, Some(parent_id))).into_response()
    })
}

/// Renames, moves or copies a folder (spec §3.6).
#[utoipa::path(post, path = "/cloud/v1/folders/{id}", params(("id" = String, Path)), request_body = UpdateItem, responses((status = 200, body = SubFolder)))]
pub async fn update_folder(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    update_item(&s, &a, &id, true, &headers, body).await
}

/// Deletes a folder and everything in it.
#[utoipa::path(delete, path = "/cloud/v1/folders/{id}", params(("id" = String, Path)), responses((status = 204)))]
pub async fn delete_folder(State(s): State<AppState>, Auth(a): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.svc.delete(&a, &id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// File information with its content URLs (spec §3.8).
#[utoipa::path(get, path = "/cloud/v1/files/{id}", params(("id" = String, Path)), responses((status = 200, body = File)))]
pub async fn file(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let item = s.svc.resolve(&a, &id, false).await?;
    let v = validators(&item.node);
    match v.evaluate(&headers, true) {
        Precondition::Pass => {}
        Precondition::NotModified => return Ok(v.not_modified()),
        Precondition::Failed(why) => return Err(ApiError::new(ErrorCode::PreconditionFailed, why)),
    }
    let mut res = Json(s.svc.file_json(&item, true, None)).into_response();
    v.apply(res.headers_mut());
    Ok(res)
}

async fn check_file_preconditions(
    s: &AppState,
    a: &crate::domain::Access,
    id: &str,
    headers: &HeaderMap,
) -> ApiResult<()> {
    if !super::conditional::has_preconditions(headers) {
        return Ok(());
    }
    let item = s.svc.resolve(a, id, false).await?;
    match validators(&item.node).evaluate(headers, false) {
        Precondition::Pass => Ok(()),
        Precondition::NotModified | Precondition::Failed(_) => {
            Err(ApiError::new(ErrorCode::PreconditionFailed, format!("precondition failed for file {id}")))
        }
    }
}

/// Renames, moves or copies a file (spec §3.6); honours If-Match and friends.
#[utoipa::path(post, path = "/cloud/v1/files/{id}", params(("id" = String, Path)), request_body = UpdateItem, responses((status = 200, body = File)))]
pub async fn update_file(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_file_preconditions(&s, &a, &id, &headers).await?;
    update_item(&s, &a, &id, false, &headers, body).await
}

/// Deletes a file; honours If-Match and friends.
#[utoipa::path(delete, path = "/cloud/v1/files/{id}", params(("id" = String, Path)), responses((status = 204)))]
pub async fn delete_file(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    check_file_preconditions(&s, &a, &id, &headers).await?;
    s.svc.delete(&a, &id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Legacy session id (spec §3.2); never required by the service.
#[utoipa::path(post, path = "/cloud/v1/session", responses((status = 200, body = Session)))]
pub async fn session(State(s): State<AppState>, Auth(a): Auth) -> ApiResult<Json<Session>> {
    Ok(Json(Session { esid: s.svc.create_session(&a).await? }))
}

/// The OpenAPI document of this API.
pub async fn openapi(State(s): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], s.openapi.clone()).into_response()
}
