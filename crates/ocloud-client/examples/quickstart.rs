//! Log in to `ocloud serve` (or Orange), upload a file, list, download it back.
//!
//! ```sh
//! cargo run --release -- serve          # prints the dev account's client_id and secret
//! OCLOUD_CLIENT_ID=… OCLOUD_CLIENT_SECRET=… cargo run -p ocloud-client --example quickstart -- Cargo.toml
//! ```
//! With `OCLOUD_TOKEN` set (e.g. from `ocloud admin token`) it skips the login.

use std::sync::Arc;

use ocloud_client::{ApiManager, Endpoints, ListParams};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args().nth(1).unwrap_or_else(|| "Cargo.toml".into());
    let base = std::env::var("OCLOUD_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let id = std::env::var("OCLOUD_CLIENT_ID").unwrap_or_default();
    let secret = std::env::var("OCLOUD_CLIENT_SECRET").unwrap_or_default();
    let api = ApiManager::builder(&id, &secret, "http://127.0.0.1:8910/callback")
        .endpoints(Endpoints::single(&base))
        .build()?;

    match std::env::var("OCLOUD_TOKEN") {
        Ok(token) => api.init_with_access_token(&token),
        Err(_) => {
            let url = api.init_authorize_code_process("quickstart").await?;
            println!("Open this URL and sign in:\n  {url}");
            let code = api.wait_and_terminate_authorize_code_process(Some(std::time::Duration::from_secs(300))).await?;
            api.init_with_authorize_code(&code).await?;
        }
    }

    println!("free space: {} bytes", api.freespace().await?);
    let folder = api.create_folder_all("/quickstart").await?;
    let progress: Arc<dyn ocloud_client::Progress> = Arc::new(|n: u64| eprint!("\r+{n} bytes"));
    let up = api.files().upload_path(file.as_ref(), Some(&folder), None, Some(progress)).await?;
    eprintln!();
    println!("uploaded {} as {}", up.file_name, up.file_id);
    for f in api.folders().get(Some(&folder), &ListParams::default()).await?.files {
        println!("  {:>10}  {}", f.size, f.name);
    }
    let dest = std::env::temp_dir().join(&up.file_name);
    let n = api.files().download(&up.file_id, &dest, None).await?;
    println!("downloaded {n} bytes to {}", dest.display());
    Ok(())
}
