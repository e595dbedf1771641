//! `GET /ui/account`: free space (from the API) and the applications connected to the account
//! (its OAuth consents), each with Revoke (`POST /ui/grants/{client_id}/revoke`: the consent
//! and every token of that application for this user). The API has no call for grants, so
//! these two handlers are the interface's only calls into the domain.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, html};
use ocloud_wire::ErrorCode;

use super::UiState;
use super::pages::{head, respond, top_bar};
use super::session::{Session, with_cookies};
use crate::http::error::ApiError;

fn human(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", units[u]) }
}

/// The page.
pub async fn page(State(s): State<UiState>, headers: HeaderMap) -> Response {
    let svc = &s.app.svc;
    let Some(session) = Session::of(svc, &headers).await else { return Redirect::to("/ui/signin").into_response() };
    let access = match svc.authenticate(Some(&session.access)).await {
        Ok(a) => a,
        Err(_) => return Redirect::to("/ui/signin").into_response(),
    };
    let free = svc.freespace(&access);
    let used = access.user.used;
    let grants = match svc.grants_of(access.user.id).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "listing grants");
            Vec::new()
        }
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head("Account", Some(&session.csrf)))
            body.account-page {
                (top_bar(&session.csrf, html! { h1.title { "Account" } }))
                main.card {
                    h2 { "Signed in as " (access.user.name) }
                    p #account-space { (human(used)) " used, " (human(free)) " free" }
                    h2 { "Connected applications" }
                    @if grants.is_empty() {
                        p { "No application is connected to your account." }
                    } @else {
                        ul.grants {
                            @for (app, scope) in &grants {
                                li {
                                    span.app-name { (app.name) }
                                    span.scope { (scope) }
                                    button.revoke type="button" data-client=(app.client_id) aria-label={ "Revoke " (app.name) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
                div #toast.toast role="status" aria-live="polite" {}
            }
        }
    };
    with_cookies(respond(page), &session.renewed)
}

/// `POST /ui/grants/{client_id}/revoke` (from the page: origin and CSRF token).
pub async fn revoke(State(s): State<UiState>, headers: HeaderMap, Path(client_id): Path<String>) -> Response {
    let svc = &s.app.svc;
    let Some(session) = Session::of(svc, &headers).await else {
        return ApiError::new(ErrorCode::MissingCredentials, "not signed in").into_response();
    };
    if !session.allows(svc, &Method::POST, &headers, None) {
        return ApiError::new(ErrorCode::AccessDenied, "a change needs the page's origin and CSRF token")
            .into_response();
    }
    let access = match svc.authenticate(Some(&session.access)).await {
        Ok(a) => a,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if client_id == crate::domain::oauth::WEB_CLIENT_ID {
        return ApiError::new(ErrorCode::InvalidUrlParameter, "sign out to end the web interface's access")
            .into_response();
    }
    match svc.revoke_grants(access.user.id, &client_id).await {
        Ok(true) => with_cookies(StatusCode::NO_CONTENT.into_response(), &session.renewed),
        Ok(false) => ApiError::new(ErrorCode::NotFound, "no such connected application").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
