//! The OpenAPI 3 document of the Cloud API, generated from the handlers' annotations.

use utoipa::OpenApi;

use super::{cloud_v1, upload};

/// The Cloud API v1 as utoipa sees it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orange Cloud API (ocloud)",
        version = "1.5",
        description = "Orange Cloud API v1 as served by ocloud. Bearer token on every call."
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
    components(schemas(ocloud_wire::ErrorBody))
)]
pub struct ApiDoc;

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into())
}
