//! The interface's HTML: the page shell (the script fills it from the API), the account page,
//! and short messages. Rendered with maud, which escapes every value.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use super::UiState;
use super::assets::{SCRIPT, STYLE};
use super::session::{Session, with_cookies};

/// The Content-Security-Policy of every page: nothing but this origin, no inline script or
/// style, no framing by others.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
    media-src 'self'; connect-src 'self'; frame-src 'self'; font-src 'self'; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

/// A page with the interface's headers.
pub fn respond(markup: Markup) -> Response {
    let mut res = markup.into_string().into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    res
}

/// A page's `<head>`: the stylesheet and script, and the CSRF token of a signed-in page.
pub fn head(title: &str, csrf: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            @if let Some(c) = csrf { meta name="csrf-token" content=(c); }
            title { (title) " · ocloud" }
            link rel="stylesheet" href={ "/ui/assets/" (STYLE.name) };
            script defer src={ "/ui/assets/" (SCRIPT.name) } {}
        }
    }
}

/// A short message page (signed out, a failed sign-in…), with a way back in.
pub fn message(title: &str, text: &str) -> Response {
    respond(html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, None))
            body.message {
                main.card {
                    h1 { (title) }
                    p { (text) }
                    p { a.button href="/ui/signin" { "Sign in" } }
                }
            }
        }
    })
}

fn signout_form(csrf: &str) -> Markup {
    html! {
        form.inline method="post" action="/ui/signout" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" aria-label="Sign out" { "Sign out" }
        }
    }
}

/// The header every signed-in page has.
pub fn top_bar(csrf: &str, extra: Markup) -> Markup {
    html! {
        header.bar {
            a.brand href="/" aria-label="ocloud home" { "ocloud" }
            (extra)
            span.grow {}
            button #theme type="button" aria-label="Toggle dark mode" title="Dark mode (t)" { "◐" }
            a.account href="/ui/account" aria-label="Account" { "Account" }
            (signout_form(csrf))
        }
    }
}

/// `GET /`: the file browser, or the way to sign in.
pub async fn home(State(s): State<UiState>, headers: HeaderMap) -> Response {
    let Some(session) = Session::of(&s.app.svc, &headers).await else {
        return Redirect::to("/ui/signin").into_response();
    };
    let csrf = session.csrf.as_str();
    // The gauge's whole: the account's quota (the API tells only what is free).
    let quota = match s.app.svc.authenticate(Some(&session.access)).await {
        Ok(a) => s.app.svc.quota_of(&a.user),
        Err(_) => return Redirect::to("/ui/signin").into_response(),
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head("Files", Some(csrf)))
            body.app {
                (top_bar(csrf, html! {
                    nav #crumbs aria-label="Breadcrumbs" {}
                    input #search type="search" placeholder="Search this folder…" aria-label="Search";
                }))
                div.toolbar role="toolbar" aria-label="Actions" {
                    label.button for="pick-files" { "Upload" }
                    input #pick-files.hidden type="file" multiple aria-label="Upload";
                    label.button for="pick-folder" { "Upload folder" }
                    input #pick-folder.hidden type="file" multiple webkitdirectory aria-label="Upload folder";
                    button #new-folder type="button" aria-label="New folder" { "New folder" }
                    button #rename type="button" aria-label="Rename" disabled { "Rename" }
                    button #move type="button" aria-label="Move" disabled { "Move" }
                    button #copy type="button" aria-label="Copy" disabled { "Copy" }
                    button #delete type="button" aria-label="Delete" disabled { "Delete" }
                    button #download type="button" aria-label="Download" disabled { "Download" }
                    button #details type="button" aria-label="Details" disabled { "Details" }
                    span.grow {}
                    label.sort { "Sort "
                        select #sort aria-label="Sort by" {
                            option value="name" { "Name" }
                            option value="size" { "Size" }
                            option value="date" { "Date" }
                        }
                    }
                    button #view type="button" aria-label="Grid view" aria-pressed="false" { "Grid" }
                    button #help-button type="button" aria-label="Keyboard shortcuts" { "?" }
                }
                div #space.space role="meter" aria-label="Space used" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0" data-quota=(quota) {
                    div.used {}
                    span.label {}
                }
                main #files aria-label="Files" tabindex="0" {
                    div #list.list role="listbox" aria-multiselectable="true" aria-label="Folder content" {}
                    p #empty.empty hidden { "This folder is empty. Drop files here or use Upload." }
                }
                div #drop.drop hidden { "Drop to upload here" }
                aside #queue.queue aria-label="Uploads" hidden {
                    div.queue-head {
                        h2 { "Uploads" }
                        button #queue-clear type="button" aria-label="Clear finished uploads" { "Clear" }
                        button #queue-hide type="button" aria-label="Hide uploads" { "✕" }
                    }
                    ul #queue-list {}
                }
                div #toast.toast role="status" aria-live="polite" {}
                dialog #dialog aria-labelledby="dialog-title" {
                    form method="dialog" {
                        h2 #dialog-title {}
                        div #dialog-body {}
                        div.actions {
                            button #dialog-cancel value="cancel" type="submit" { "Cancel" }
                            button #dialog-ok.primary value="ok" type="submit" { "OK" }
                        }
                    }
                }
                dialog #viewer.viewer aria-label="Viewer" {
                    div.viewer-bar {
                        span #viewer-title {}
                        span.grow {}
                        button #viewer-prev type="button" aria-label="Previous" { "‹" }
                        button #viewer-next type="button" aria-label="Next" { "›" }
                        button #viewer-close type="button" aria-label="Close" { "✕" }
                    }
                    div #viewer-body.viewer-body {}
                }
                dialog #help aria-labelledby="help-title" {
                    h2 #help-title { "Keyboard shortcuts" }
                    table #help-keys {}
                    form method="dialog" { button type="submit" aria-label="Close" { "Close" } }
                }
            }
        }
    };
    with_cookies(respond(page), &session.renewed)
}
