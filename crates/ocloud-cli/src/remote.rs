//! Remote paths on the command line: `/Photos/2024/a.jpg` (relative to the root the token
//! sees), or `id:<id>` for an item by id. For `sync` and `check`, which take either side,
//! a remote location is written `cloud:/path` (or `cloud:id:<id>`).

use std::path::PathBuf;

use ocloud_client::{ApiManager, Entry, Error, ListParams};

/// Finds the item a remote argument names.
pub async fn resolve(api: &ApiManager, spec: &str) -> Result<Entry, Error> {
    match spec.strip_prefix("id:") {
        Some(id) => by_id(api, id).await,
        None => api.resolve(spec).await.map_err(|e| match e {
            Error::NotFound(p) if spec.ends_with('/') && !p.ends_with('/') => Error::NotFound(format!("{p}/")),
            e => e,
        }),
    }
}

async fn by_id(api: &ApiManager, id: &str) -> Result<Entry, Error> {
    match api.files().get(id).await {
        Ok(f) => Ok(Entry::from_file(f)),
        Err(Error::Api(a)) if a.is_not_found() => {
            let f = api.folders().get(Some(id), &ListParams { limit: Some(1), ..Default::default() }).await?;
            Ok(Entry::folder(f.id, f.name))
        }
        Err(e) => Err(e),
    }
}

/// The parent folder and the last name of a remote path (`/a/b/c` → (`/a/b`, `c`)).
pub fn split(spec: &str) -> (String, String) {
    let trimmed = spec.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((parent, name)) => (if parent.is_empty() { "/".into() } else { parent.into() }, name.into()),
        None => ("/".into(), trimmed.into()),
    }
}

/// One side of `sync` or `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local folder.
    Local(PathBuf),
    /// A remote folder (path or `id:`).
    Remote(String),
}

impl Location {
    /// `cloud:…` is remote, anything else local.
    pub fn parse(s: &str) -> Location {
        match s.strip_prefix("cloud:") {
            Some("") => Location::Remote("/".into()),
            Some(r) => Location::Remote(r.into()),
            None => Location::Local(PathBuf::from(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(split("/a/b/c.txt"), ("/a/b".into(), "c.txt".into()));
        assert_eq!(split("/c.txt"), ("/".into(), "c.txt".into()));
        assert_eq!(split("c/"), ("/".into(), "c".into()));
        assert_eq!(Location::parse("cloud:/x"), Location::Remote("/x".into()));
        assert_eq!(Location::parse("cloud:"), Location::Remote("/".into()));
        assert_eq!(Location::parse("./x"), Location::Local("./x".into()));
    }
}
