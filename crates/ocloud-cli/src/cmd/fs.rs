//! Remote file-system commands: `df`, `ls`, `tree`, `stat`, `mkdir`, `rm`, `mv`, `cp`,
//! `rename`, `cat`.

use futures_util::TryStreamExt as _;
use ocloud_client::{ApiManager, Entry, Error, UpdateItem};
use serde::Serialize;

use crate::exit::{Coded, Exit};
use crate::output::{Printer, human};
use crate::remote;

/// One entry of `ls --json` / `stat --json` — the stable, documented shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonEntry {
    /// Path relative to the listed folder (`a/b.txt`; folders end with `/`).
    pub path: String,
    /// Name.
    pub name: String,
    /// Item id.
    pub id: String,
    /// Folder or file.
    pub is_dir: bool,
    /// `PICTURE`, `VIDEO`, `AUDIO`, `FILE`; absent for folders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<ocloud_client::FileType>,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Last change (`yyyy-MM-ddTHH:mm:ss±hhmm`); absent for folders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
}

fn json_entry(path: String, e: &Entry) -> JsonEntry {
    JsonEntry {
        path,
        name: e.name.clone(),
        id: e.id.clone(),
        is_dir: e.is_dir,
        r#type: e.file_type(),
        size: e.size,
        modified: e.file.as_ref().map(|f| f.last_update_date.clone()),
    }
}

/// `df`.
pub async fn df(api: &ApiManager, out: &Printer) -> anyhow::Result<()> {
    let free = api.freespace().await?;
    if out.json {
        out.json_out(&serde_json::json!({ "freespace": free }))
    } else {
        println!("Free: {} ({free} bytes)", human(free));
        Ok(())
    }
}

/// `ls`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  ocloud ls /Photos -l\n  ocloud ls -R --json / | jq '.[].path'")]
pub struct LsArgs {
    /// Folder (or file) to list.
    #[arg(default_value = "/")]
    pub path: String,
    /// Long format: size, date, name.
    #[arg(short, long)]
    pub long: bool,
    /// Recursive.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// Runs `ls`.
pub async fn ls(api: &ApiManager, a: &LsArgs, out: &Printer) -> anyhow::Result<()> {
    let top = remote::resolve(api, &a.path).await?;
    let rows: Vec<(String, Entry)> = if !top.is_dir {
        vec![(top.name.clone(), top)]
    } else if a.recursive {
        api.walk(&top.id).try_collect().await?
    } else {
        api.entries(&top.id)
            .await?
            .into_iter()
            .map(|e| (if e.is_dir { format!("{}/", e.name) } else { e.name.clone() }, e))
            .collect()
    };
    if out.json {
        let v: Vec<JsonEntry> = rows.iter().map(|(p, e)| json_entry(p.clone(), e)).collect();
        return out.json_out(&v);
    }
    for (path, e) in rows {
        if a.long {
            let date = e.file.as_ref().map(|f| f.last_update_date.as_str()).unwrap_or("-");
            println!("{:>12}  {:<24}  {path}", if e.is_dir { "-".into() } else { e.size.to_string() }, date);
        } else {
            println!("{path}");
        }
    }
    Ok(())
}

/// `tree`.
pub async fn tree(api: &ApiManager, path: &str, out: &Printer) -> anyhow::Result<()> {
    let top = remote::resolve(api, path).await?;
    if out.json {
        let rows: Vec<(String, Entry)> = api.walk(&top.id).try_collect().await?;
        let v: Vec<JsonEntry> = rows.iter().map(|(p, e)| json_entry(p.clone(), e)).collect();
        return out.json_out(&v);
    }
    println!("{}", if top.name.is_empty() { "/".to_owned() } else { format!("{}/", top.name) });
    let (mut dirs, mut files) = (0, 0);
    // Depth-first: (folder id, prefix), with an explicit stack.
    let mut stack =
        vec![(top.id.clone(), String::new(), api.entries(&top.id).await?.into_iter().rev().collect::<Vec<_>>())];
    while let Some((_, prefix, pending)) = stack.last_mut() {
        let Some(e) = pending.pop() else {
            stack.pop();
            continue;
        };
        let last = pending.is_empty();
        let prefix = prefix.clone();
        println!("{prefix}{}{}{}", if last { "└── " } else { "├── " }, e.name, if e.is_dir { "/" } else { "" });
        if e.is_dir {
            dirs += 1;
            let kids = api.entries(&e.id).await?.into_iter().rev().collect();
            stack.push((e.id, format!("{prefix}{}", if last { "    " } else { "│   " }), kids));
        } else {
            files += 1;
        }
    }
    println!("\n{dirs} folders, {files} files");
    Ok(())
}

/// `stat`.
pub async fn stat(api: &ApiManager, path: &str, out: &Printer) -> anyhow::Result<()> {
    let e = remote::resolve(api, path).await?;
    let file = if e.is_dir { None } else { Some(api.files().get(&e.id).await?) };
    if out.json {
        return match &file {
            Some(f) => out.json_out(f),
            None => out.json_out(&json_entry(path.to_owned(), &e)),
        };
    }
    println!("name      {}", e.name);
    println!("id        {}", e.id);
    match file {
        Some(f) => {
            println!("type      {:?}", f.file_type);
            println!("size      {} ({} bytes)", human(f.size), f.size);
            println!("created   {}", f.creation_date);
            println!("modified  {}", f.last_update_date);
            if !f.metadata.as_object().is_none_or(|m| m.is_empty()) {
                println!("metadata  {}", f.metadata);
            }
        }
        None => println!("type      folder"),
    }
    Ok(())
}

/// `mkdir`.
pub async fn mkdir(api: &ApiManager, path: &str, parents: bool, out: &Printer) -> anyhow::Result<()> {
    let id = if parents {
        api.create_folder_all(path).await?
    } else {
        let (parent, name) = remote::split(path);
        let p = parent_folder(api, &parent).await?;
        api.folders()
            .create(&name, Some(&p.id))
            .await
            .map_err(|e| anyhow::Error::new(e).context(format!("creating {path}")))?
            .id
    };
    out.note(format!("created {path}"));
    if out.json {
        out.json_out(&serde_json::json!({ "id": id }))?;
    }
    Ok(())
}

async fn parent_folder(api: &ApiManager, parent: &str) -> anyhow::Result<Entry> {
    match remote::resolve(api, parent).await {
        Ok(e) if e.is_dir => Ok(e),
        Ok(_) => Err(Coded(Exit::DirNotFound, format!("{parent} is a file, not a folder")).into()),
        Err(Error::NotFound(p)) => {
            Err(Coded(Exit::DirNotFound, format!("{p}: no such folder (use -p to create parents)")).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// `rm`.
pub async fn rm(api: &ApiManager, path: &str, recursive: bool, out: &Printer) -> anyhow::Result<()> {
    let e = remote::resolve(api, path).await?;
    if e.is_dir {
        if !recursive {
            return Err(
                Coded(Exit::Usage, format!("{path} is a folder: use rm -r to delete it with its content")).into()
            );
        }
        if e.id == api.resolve("/").await?.id {
            return Err(Coded(Exit::Usage, "refusing to delete the root folder".into()).into());
        }
        api.folders().delete(&e.id).await?;
    } else {
        api.files().delete(&e.id).await?;
    }
    out.note(format!("deleted {path}"));
    Ok(())
}

/// `mv` and `cp`: into DST when it is a folder, else to the path DST (renamed).
pub async fn mv_cp(api: &ApiManager, src: &str, dst: &str, copy: bool, out: &Printer) -> anyhow::Result<()> {
    let s = remote::resolve(api, src).await?;
    let (folder, name) = match remote::resolve(api, dst).await {
        Ok(d) if d.is_dir => (d, s.name.clone()),
        Ok(_) => return Err(Coded(Exit::Error, format!("{dst} already exists")).into()),
        Err(Error::NotFound(_)) => {
            let (parent, name) = remote::split(dst);
            (parent_folder(api, &parent).await?, name)
        }
        Err(e) => return Err(e.into()),
    };
    let change = UpdateItem {
        name: (name != s.name || copy).then_some(name),
        parent_folder_id: Some(folder.id.clone()),
        clone: copy.then_some(true),
    };
    let new_id = if s.is_dir {
        api.folders().update(&s.id, &change).await?.id
    } else {
        api.files().update(&s.id, &change).await?.id
    };
    out.note(format!("{} {src} → {dst}", if copy { "copied" } else { "moved" }));
    if out.json {
        out.json_out(&serde_json::json!({ "id": new_id }))?;
    }
    Ok(())
}

/// `rename`.
pub async fn rename(api: &ApiManager, path: &str, new_name: &str, out: &Printer) -> anyhow::Result<()> {
    if new_name.contains('/') {
        return Err(Coded(Exit::Usage, format!("{new_name:?}: a new name has no '/' (use mv to move)")).into());
    }
    let e = remote::resolve(api, path).await?;
    let id = if e.is_dir {
        api.folders().rename(&e.id, new_name).await?.id
    } else {
        api.files().rename(&e.id, new_name).await?.id
    };
    out.note(format!("renamed {path} → {new_name}"));
    if out.json {
        out.json_out(&serde_json::json!({ "id": id }))?;
    }
    Ok(())
}

/// `cat`: the file's bytes on stdout.
pub async fn cat(api: &ApiManager, path: &str) -> anyhow::Result<()> {
    let e = remote::resolve(api, path).await?;
    if e.is_dir {
        return Err(Coded(Exit::Usage, format!("{path} is a folder")).into());
    }
    let f = api.files().get(&e.id).await?;
    let url = f.download_url.ok_or_else(|| anyhow::anyhow!("{path}: no download URL"))?;
    let mut stdout = tokio::io::stdout();
    api.download_to_writer(&url, 0, &mut stdout, None).await?;
    Ok(())
}
