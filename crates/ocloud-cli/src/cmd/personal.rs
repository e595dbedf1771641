//! `ocloud photos …` and `ocloud content upload`: the legacy Personal APIs (spec §5, §6).

use std::path::PathBuf;

use ocloud_client::ApiManager;
use ocloud_client::legacy::{Album, AlbumSummary, MediaObject};
use serde_json::{Value, json};

use crate::output::{Printer, human};

/// `ocloud photos`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PhotosCommand {
    /// List albums.
    #[command(after_help = "Example:\n  ocloud photos albums --json")]
    Albums,
    /// Create an album (a taken title becomes TITLE-n).
    #[command(after_help = "Example:\n  ocloud photos create-album 'Summer 2024'")]
    CreateAlbum {
        /// Title.
        title: String,
    },
    /// List the photos of an album.
    #[command(after_help = "Example:\n  ocloud photos ls 1f")]
    Ls {
        /// Album id (cypheredId).
        album: String,
    },
    /// Details of a photo.
    #[command(after_help = "Example:\n  ocloud photos info 2a")]
    Info {
        /// Media id (cypheredId).
        media: String,
    },
    /// Add photos (JPEG, GIF, BMP, PNG) to an album, or to the inbox.
    #[command(after_help = "Example:\n  ocloud photos add a.jpg b.png --album 1f --title Beach")]
    Add {
        /// Picture files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Album id; default the inbox album.
        #[arg(long)]
        album: Option<String>,
        /// Title (default: each file's name without extension).
        #[arg(long)]
        title: Option<String>,
    },
    /// Download a photo, resized to fit WIDTHxHEIGHT when given.
    #[command(after_help = "Example:\n  ocloud photos get 2a --width 500 --height 500 -o small.jpg")]
    Get {
        /// Media id.
        media: String,
        /// Maximum width.
        #[arg(long)]
        width: Option<u32>,
        /// Maximum height.
        #[arg(long)]
        height: Option<u32>,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

// JSON shapes of `--json`: the XML's fields, camelCase, without XML attribute markers.
fn media_json(m: &MediaObject) -> Value {
    json!({"id": m.cyphered_id, "numericId": m.id, "title": m.title, "creationDate": m.creation_date,
        "filename": m.filename, "filesize": m.filesize, "mimeType": m.mime_type, "width": m.width,
        "height": m.height, "baseUrl": m.base_url.trim()})
}

fn album_json(a: &Album) -> Value {
    json!({"id": a.cyphered_id, "title": a.title, "creationDate": a.creation_date})
}

fn summary_json(a: &AlbumSummary) -> Value {
    json!({"id": a.cyphered_id, "title": a.title, "mediaObjects": a.media_objects.count})
}

/// Runs `photos`.
pub async fn photos(api: &ApiManager, cmd: &PhotosCommand, out: &Printer) -> anyhow::Result<()> {
    let p = api.photos();
    match cmd {
        PhotosCommand::Albums => {
            let albums = p.albums().await?;
            if out.json {
                return out.json_out(&albums.iter().map(summary_json).collect::<Vec<_>>());
            }
            for a in albums {
                println!("{:<14} {:>5} photos  {}", a.cyphered_id, a.media_objects.count, a.title);
            }
        }
        PhotosCommand::CreateAlbum { title } => {
            let a = p.create_album(title).await?;
            if out.json {
                return out.json_out(&album_json(&a));
            }
            println!("{}  {}", a.cyphered_id, a.title);
        }
        PhotosCommand::Ls { album } => {
            let list = p.list(album).await?;
            if out.json {
                return out.json_out(&list.iter().map(media_json).collect::<Vec<_>>());
            }
            for m in list {
                println!("{:<14} {:>5}x{:<5} {:>10}  {}", m.cyphered_id, m.width, m.height, human(m.filesize), m.title);
            }
        }
        PhotosCommand::Info { media } => {
            let m = p.get(media).await?;
            if out.json {
                return out.json_out(&media_json(&m));
            }
            println!("id        {} ({})", m.cyphered_id, m.id);
            println!("title     {}", m.title);
            println!("file      {} ({}, {})", m.filename, m.mime_type, human(m.filesize));
            println!("size      {}x{}", m.width, m.height);
            println!("url       {}", m.base_url.trim());
        }
        PhotosCommand::Add { files, album, title } => {
            let mut added = Vec::new();
            for f in files {
                let m = p
                    .add(f, album.as_deref(), title.as_deref())
                    .await
                    .map_err(|e| anyhow::Error::new(e).context(format!("adding {}", f.display())))?;
                out.note(format!("added {} as {}", f.display(), m.cyphered_id));
                added.push(m);
            }
            if out.json {
                return out.json_out(&added.iter().map(media_json).collect::<Vec<_>>());
            }
        }
        PhotosCommand::Get { media, width, height, output } => {
            let m = p.get(media).await?;
            let n = p.download(&m, *width, *height, output).await?;
            out.note(format!("wrote {} ({})", output.display(), human(n)));
        }
    }
    Ok(())
}

/// `ocloud content`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ContentCommand {
    /// Upload a file through a one-time upload URL (both steps).
    #[command(after_help = "Example:\n  ocloud content upload HelloWorld.jpg")]
    Upload {
        /// The file.
        file: PathBuf,
    },
}

/// Runs `content`.
pub async fn content(api: &ApiManager, cmd: &ContentCommand, out: &Printer) -> anyhow::Result<()> {
    match cmd {
        ContentCommand::Upload { file } => {
            let bar = out.transfer(&file.display().to_string(), std::fs::metadata(file).map(|m| m.len()).unwrap_or(0));
            let c = api
                .content()
                .upload_path(file, bar.sink())
                .await
                .map_err(|e| anyhow::Error::new(e).context(format!("uploading {}", file.display())))?;
            drop(bar);
            if out.json {
                return out.json_out(&json!({"id": c.id, "parentId": c.parent_id, "name": c.name, "fileSize": c.file_size, "creationDate": c.creation_date}));
            }
            println!("stored {} as content {} in folder {} ({} bytes)", c.name, c.id, c.parent_id, c.file_size);
        }
    }
    Ok(())
}
