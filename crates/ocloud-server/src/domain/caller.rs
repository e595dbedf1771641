//! Who the request being served acts for, noted by [`super::Service::authorize`] for the
//! emulator's request journal. A task-local: outside a journaled request, noting is a no-op.

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static CALLER: RefCell<Option<(String, String)>>;
}

/// Runs `f` (a request being served), returning what it answered and the (user, app) the
/// request was authorized for, if it was.
pub async fn scope<F: Future>(f: F) -> (F::Output, Option<(String, String)>) {
    CALLER
        .scope(RefCell::new(None), async move {
            let out = f.await;
            (out, CALLER.with(|c| c.borrow_mut().take()))
        })
        .await
}

/// Notes the caller of the request being served (if it is journaled).
pub fn note(user: &str, app: &str) {
    let _ = CALLER.try_with(|c| *c.borrow_mut() = Some((user.to_owned(), app.to_owned())));
}
