//! `upload`, `download`, `sync` and `check`, with `rclone copy` semantics: a folder's
//! contents go into the destination folder (created with its parents); a single file goes to
//! the destination path, or into it when it is an existing folder. Files already there with
//! the same name and size are skipped unless `--force`. Transfers run `--transfers` at a
//! time; a failed file does not stop the others, and the command then exits 6 naming them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::{StreamExt as _, TryStreamExt as _};
use ocloud_client::{ApiManager, Entry, Error, UpdateItem};
use tokio::sync::Mutex;

use crate::exit::{Coded, Exit};
use crate::output::{Printer, human};
use crate::remote::{self, Location};

/// Options shared by the transfer commands.
#[derive(Debug, Clone, clap::Args)]
pub struct TransferOpts {
    /// Files transferred at once [default: from the files' median size: 32 under 256 KiB,
    /// 8 under 8 MiB, else 4].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub transfers: Option<u16>,
    /// Transfer even files that exist with the same size.
    #[arg(long)]
    pub force: bool,
}

impl TransferOpts {
    /// `--transfers`, or a number suited to these files. A small file's time is its round
    /// trip and its commit, which the service shares between the uploads in flight (group
    /// commit): many at once pay off. Large files are bound by bandwidth, which a few
    /// streams fill; more would only add memory. The median decides, so a few big files
    /// among many small ones do not slow the small ones down.
    fn transfers_for(&self, tree: &Tree, files: &[String]) -> usize {
        if let Some(t) = self.transfers {
            return t as usize;
        }
        let mut sizes: Vec<u64> = files.iter().filter_map(|f| tree.get(f)).map(|i| i.size).collect();
        sizes.sort_unstable();
        match sizes.get(sizes.len() / 2) {
            Some(&m) if m < 256 << 10 => 32,
            Some(&m) if m < 8 << 20 => 8,
            _ => 4,
        }
    }
}

/// A file or folder on one side, by path relative to the transfer's root (`a/b.txt`, `a/`).
#[derive(Debug, Clone)]
struct Item {
    size: u64,
    is_dir: bool,
    id: String,
}

type Tree = BTreeMap<String, Item>;

fn local_tree(root: &Path) -> anyhow::Result<Tree> {
    let mut out = Tree::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in rd {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = std::fs::metadata(entry.path()).with_context(|| format!("{}", entry.path().display()))?;
            if meta.is_dir() {
                let r = format!("{rel}{name}/");
                out.insert(r.clone(), Item { size: 0, is_dir: true, id: String::new() });
                stack.push((entry.path(), r));
            } else if meta.is_file() && !name.ends_with(".ocloud-part") {
                out.insert(format!("{rel}{name}"), Item { size: meta.len(), is_dir: false, id: String::new() });
            }
        }
    }
    Ok(out)
}

async fn remote_tree(api: &ApiManager, root_id: &str) -> anyhow::Result<Tree> {
    let rows: Vec<(String, Entry)> = api.walk(root_id).try_collect().await?;
    Ok(rows.into_iter().map(|(p, e)| (p, Item { size: e.size, is_dir: e.is_dir, id: e.id })).collect())
}

/// A name from the service that is safe as a local path component.
fn safe_name(rel: &str) -> bool {
    rel.trim_end_matches('/').split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(['\0', '\\']))
}

fn parent_rel(rel: &str) -> &str {
    let t = rel.trim_end_matches('/');
    match t.rfind('/') {
        Some(i) => &rel[..=i],
        None => "",
    }
}

fn name_of(rel: &str) -> &str {
    rel.trim_end_matches('/').rsplit('/').next().unwrap_or(rel)
}

/// What a run did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcome {
    /// Files transferred.
    pub copied: Vec<String>,
    /// Bytes transferred.
    pub bytes: u64,
    /// Files skipped (same size).
    pub skipped: usize,
    /// Files and folders deleted (sync --delete).
    pub deleted: Vec<String>,
    /// Failures: path and reason.
    pub failed: Vec<(String, String)>,
}

impl Outcome {
    fn tally(&mut self, results: Vec<(String, u64, Result<(), String>)>) {
        for (rel, size, r) in results {
            match r {
                Ok(()) => {
                    self.bytes += size;
                    self.copied.push(rel);
                }
                Err(e) => self.failed.push((rel, e)),
            }
        }
    }

    fn finish(self, out: &Printer, verb: &str) -> anyhow::Result<()> {
        if out.json {
            out.json_out(&self)?;
        } else {
            out.note(format!(
                "{verb} {} files ({}), skipped {}, deleted {}, failed {}",
                self.copied.len(),
                human(self.bytes),
                self.skipped,
                self.deleted.len(),
                self.failed.len()
            ));
        }
        if self.failed.is_empty() {
            return Ok(());
        }
        for (path, why) in &self.failed {
            eprintln!("ocloud: failed: {path}: {why}");
        }
        Err(Coded(
            Exit::Partial,
            format!("{} of {} files failed (listed above)", self.failed.len(), self.failed.len() + self.copied.len()),
        )
        .into())
    }
}

/// Uploads one local file into a remote folder as `name`, replacing a file of that name.
async fn put_file(
    api: &ApiManager,
    local: &Path,
    folder_id: &str,
    name: &str,
    existing: Option<&str>,
    out: &Printer,
    size: u64,
) -> Result<(), Error> {
    let bar = out.transfer(name, size);
    let up = api.files().upload_path(local, Some(folder_id), Some(name), bar.sink()).await?;
    if let Some(old) = existing {
        // The service renamed the new file `name(n)`: the old one goes only now that the new
        // one is stored, then the new one takes the name.
        api.files().delete(old).await?;
        if up.file_name != name {
            api.files().update(&up.file_id, &UpdateItem { name: Some(name.to_owned()), ..Default::default() }).await?;
        }
    }
    Ok(())
}

async fn get_file(api: &ApiManager, id: &str, dest: &Path, out: &Printer, size: u64) -> Result<(), Error> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bar = out.transfer(&name, size);
    api.files().download(id, dest, bar.sink()).await.map(|_| ())
}

/// Copies the planned files between a local folder and a remote folder.
struct Copier<'a> {
    api: &'a ApiManager,
    out: &'a Printer,
    transfers: usize,
}

impl Copier<'_> {
    /// Local → remote: `files` (relative paths) from `src` into the remote folder `root_id`
    /// whose current content is `dst`.
    async fn up(
        &self,
        src: &Path,
        root_id: &str,
        src_tree: &Tree,
        dst: &Tree,
        files: Vec<String>,
        outcome: &mut Outcome,
    ) {
        let mut folders: HashMap<String, String> =
            dst.iter().filter(|(_, i)| i.is_dir).map(|(r, i)| (r.clone(), i.id.clone())).collect();
        folders.insert(String::new(), root_id.to_owned());
        // Folders first, so every file has one: level by level, parents before children, and
        // a level's folders side by side (the service commits them together).
        let mut levels: BTreeMap<usize, Vec<&String>> = BTreeMap::new();
        for rel in src_tree.keys().filter(|r| r.ends_with('/') && !folders.contains_key(*r)) {
            levels.entry(rel.matches('/').count()).or_default().push(rel);
        }
        for level in levels.into_values() {
            let mut made: Vec<(&String, Result<String, String>)> = futures_util::stream::iter(level)
                // A folder whose parent could not be made is left out; its files say so.
                .filter_map(|rel| std::future::ready(folders.get(parent_rel(rel)).cloned().map(|p| (rel, p))))
                .map(|(rel, parent)| async move {
                    let made = self.api.folders().create(name_of(rel), Some(&parent)).await;
                    (rel, made.map(|f| f.id).map_err(|e| e.to_string()))
                })
                .buffer_unordered(self.transfers)
                .collect()
                .await;
            made.sort_by(|a, b| a.0.cmp(b.0));
            for (rel, made) in made {
                match made {
                    Ok(id) => {
                        folders.insert(rel.clone(), id);
                    }
                    Err(e) => outcome.failed.push((rel.clone(), e)),
                }
            }
        }
        let results = Arc::new(Mutex::new(Vec::new()));
        futures_util::stream::iter(files)
            .for_each_concurrent(self.transfers, |rel| {
                let (folders, results) = (&folders, results.clone());
                async move {
                    let size = src_tree.get(&rel).map(|i| i.size).unwrap_or(0);
                    let r = match folders.get(parent_rel(&rel)) {
                        None => Err(format!("folder {} could not be created", parent_rel(&rel))),
                        Some(fid) => {
                            let existing = dst.get(&rel).map(|i| i.id.as_str());
                            put_file(self.api, &src.join(&rel), fid, name_of(&rel), existing, self.out, size)
                                .await
                                .map_err(|e| e.to_string())
                        }
                    };
                    results.lock().await.push((rel, size, r));
                }
            })
            .await;
        outcome.tally(Arc::try_unwrap(results).expect("all transfers done").into_inner());
    }

    /// Remote → local.
    async fn down(&self, src: &Tree, dst_root: &Path, files: Vec<String>, outcome: &mut Outcome) {
        for rel in src.keys().filter(|r| r.ends_with('/')) {
            if !safe_name(rel) {
                outcome.failed.push((rel.clone(), "unsafe name for a local path".into()));
                continue;
            }
            if let Err(e) = std::fs::create_dir_all(dst_root.join(rel)) {
                outcome.failed.push((rel.clone(), format!("{}: {e}", dst_root.join(rel).display())));
            }
        }
        let results = Arc::new(Mutex::new(Vec::new()));
        futures_util::stream::iter(files)
            .for_each_concurrent(self.transfers, |rel| {
                let results = results.clone();
                async move {
                    let item = &src[&rel];
                    let r = if safe_name(&rel) {
                        get_file(self.api, &item.id, &dst_root.join(&rel), self.out, item.size)
                            .await
                            .map_err(|e| e.to_string())
                    } else {
                        Err("unsafe name for a local path".into())
                    };
                    results.lock().await.push((rel, item.size, r));
                }
            })
            .await;
        outcome.tally(Arc::try_unwrap(results).expect("all transfers done").into_inner());
    }
}

/// Files of `src` missing from `dst` or of another size (all with `force`).
fn to_copy(src: &Tree, dst: &Tree, force: bool, outcome: &mut Outcome) -> Vec<String> {
    let mut v = Vec::new();
    for (rel, item) in src.iter().filter(|(_, i)| !i.is_dir) {
        match dst.get(rel) {
            Some(d) if !d.is_dir && d.size == item.size && !force => outcome.skipped += 1,
            _ => v.push(rel.clone()),
        }
    }
    v
}

/// `upload LOCAL REMOTE`.
pub async fn upload(api: &ApiManager, local: &Path, dst: &str, o: &TransferOpts, out: &Printer) -> anyhow::Result<()> {
    let meta = std::fs::metadata(local).with_context(|| format!("{}", local.display()))?;
    let mut outcome = Outcome::default();
    if meta.is_file() {
        let fname = local.file_name().map(|n| n.to_string_lossy().into_owned()).context("the file has no name")?;
        let (folder_id, name) = match remote::resolve(api, dst).await {
            Ok(d) if d.is_dir => (d.id, fname),
            Ok(_) => {
                let (parent, name) = remote::split(dst);
                (remote::resolve(api, &parent).await?.id, name)
            }
            // A trailing slash names a folder to put the file in, as rclone does.
            Err(Error::NotFound(_)) if dst.ends_with('/') => (api.create_folder_all(dst).await?, fname),
            Err(Error::NotFound(_)) => {
                let (parent, name) = remote::split(dst);
                (api.create_folder_all(&parent).await?, name)
            }
            Err(e) => return Err(e.into()),
        };
        let listing = api.entries(&folder_id).await?;
        let existing = listing.iter().find(|e| !e.is_dir && e.name == name);
        if let Some(e) = existing
            && e.size == meta.len()
            && !o.force
        {
            outcome.skipped += 1;
        } else {
            match put_file(api, local, &folder_id, &name, existing.map(|e| e.id.as_str()), out, meta.len()).await {
                Ok(()) => {
                    outcome.bytes += meta.len();
                    outcome.copied.push(name);
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("uploading {}", local.display()))),
            }
        }
        return outcome.finish(out, "uploaded");
    }
    let root_id = match dst.strip_prefix("id:") {
        Some(id) => id.to_owned(),
        None => api.create_folder_all(dst).await?,
    };
    let src_tree = local_tree(local)?;
    let dst_tree = remote_tree(api, &root_id).await?;
    let files = to_copy(&src_tree, &dst_tree, o.force, &mut outcome);
    Copier { api, out, transfers: o.transfers_for(&src_tree, &files) }
        .up(local, &root_id, &src_tree, &dst_tree, files, &mut outcome)
        .await;
    outcome.finish(out, "uploaded")
}

/// `download REMOTE LOCAL`.
pub async fn download(
    api: &ApiManager,
    src: &str,
    local: &Path,
    o: &TransferOpts,
    out: &Printer,
) -> anyhow::Result<()> {
    let e = remote::resolve(api, src).await?;
    let mut outcome = Outcome::default();
    if !e.is_dir {
        let into_dir = local.is_dir() || local.as_os_str().to_string_lossy().ends_with('/');
        let dest = if into_dir { local.join(&e.name) } else { local.to_path_buf() };
        if !safe_name(&e.name) {
            return Err(Coded(Exit::Error, format!("{src}: unsafe name {:?} for a local file", e.name)).into());
        }
        let same = std::fs::metadata(&dest).map(|m| m.len() == e.size).unwrap_or(false);
        if same && !o.force {
            outcome.skipped += 1;
        } else {
            get_file(api, &e.id, &dest, out, e.size)
                .await
                .with_context(|| format!("downloading {src} to {}", dest.display()))?;
            outcome.bytes += e.size;
            outcome.copied.push(e.name);
        }
        return outcome.finish(out, "downloaded");
    }
    std::fs::create_dir_all(local).with_context(|| format!("creating {}", local.display()))?;
    let src_tree = remote_tree(api, &e.id).await?;
    let dst_tree = local_tree(local)?;
    let files = to_copy(&src_tree, &dst_tree, o.force, &mut outcome);
    Copier { api, out, transfers: o.transfers_for(&src_tree, &files) }
        .down(&src_tree, local, files, &mut outcome)
        .await;
    outcome.finish(out, "downloaded")
}

/// `sync` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Remote locations are written cloud:/path (or cloud:id:ID); anything else is local.\n\nExamples:\n  ocloud sync ./photos cloud:/Photos --delete --exclude '*.tmp'\n  ocloud sync cloud:/Photos ./backup --dry-run"
)]
pub struct SyncArgs {
    /// Source (local folder or cloud:/folder).
    pub src: String,
    /// Destination (the other kind).
    pub dst: String,
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete destination files that are not in the source (excluded files are kept).
    #[arg(long)]
    pub delete: bool,
    /// Only files whose relative path matches one of these globs.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files whose relative path matches one of these globs.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Skip files larger than this (e.g. 100M).
    #[arg(long, value_parser = crate::size::parse)]
    pub max_size: Option<u64>,
    #[command(flatten)]
    pub opts: TransferOpts,
}

struct Filter {
    include: Option<globset::GlobSet>,
    exclude: globset::GlobSet,
    max_size: Option<u64>,
}

impl Filter {
    fn new(a: &SyncArgs) -> anyhow::Result<Filter> {
        let build = |globs: &[String]| -> anyhow::Result<globset::GlobSet> {
            let mut b = globset::GlobSetBuilder::new();
            for g in globs {
                b.add(
                    globset::GlobBuilder::new(g)
                        .literal_separator(false)
                        .build()
                        .map_err(|e| Coded(Exit::Usage, format!("bad glob {g:?}: {e}")))?,
                );
            }
            Ok(b.build()?)
        };
        Ok(Filter {
            include: (!a.include.is_empty()).then(|| build(&a.include)).transpose()?,
            exclude: build(&a.exclude)?,
            max_size: a.max_size,
        })
    }

    fn keeps(&self, rel: &str, item: &Item) -> bool {
        if item.is_dir {
            return true;
        }
        let name = name_of(rel);
        let matches = |set: &globset::GlobSet| set.is_match(rel) || set.is_match(name);
        self.include.as_ref().is_none_or(matches)
            && !matches(&self.exclude)
            && self.max_size.is_none_or(|m| item.size <= m)
    }

    fn apply(&self, tree: Tree) -> Tree {
        tree.into_iter().filter(|(r, i)| self.keeps(r, i)).collect()
    }
}

/// Resolves both sides of `sync`/`check`: (local root, remote root id, upward?).
async fn sides(api: &ApiManager, src: &str, dst: &str, create_remote: bool) -> anyhow::Result<(PathBuf, String, bool)> {
    let remote_id = |spec: String| async move {
        if let Some(id) = spec.strip_prefix("id:") {
            return Ok::<_, anyhow::Error>(id.to_owned());
        }
        if create_remote {
            return Ok(api.create_folder_all(&spec).await?);
        }
        let e = remote::resolve(api, &spec).await?;
        if !e.is_dir {
            return Err(Coded(Exit::DirNotFound, format!("{spec} is a file, not a folder")).into());
        }
        Ok(e.id)
    };
    match (Location::parse(src), Location::parse(dst)) {
        (Location::Local(l), Location::Remote(r)) => Ok((l, remote_id(r).await?, true)),
        (Location::Remote(r), Location::Local(l)) => Ok((l, remote_id(r).await?, false)),
        _ => Err(Coded(Exit::Usage, "one side must be local and the other remote (cloud:/path)".into()).into()),
    }
}

/// `sync SRC DST`: make DST like SRC.
pub async fn sync(api: &ApiManager, a: &SyncArgs, out: &Printer) -> anyhow::Result<()> {
    let filter = Filter::new(a)?;
    let dst_remote = matches!(Location::parse(&a.dst), Location::Remote(_));
    let (local, remote_id, up) = match sides(api, &a.src, &a.dst, !a.dry_run && dst_remote).await {
        // A dry run into a remote folder that does not exist yet: everything is to copy.
        Err(e)
            if a.dry_run
                && dst_remote
                && e.downcast_ref::<Error>().is_some_and(|e| matches!(e, Error::NotFound(_))) =>
        {
            let Location::Local(l) = Location::parse(&a.src) else { return Err(e) };
            (l, String::new(), true)
        }
        other => other?,
    };
    if !up && !a.dry_run {
        std::fs::create_dir_all(&local).with_context(|| format!("creating {}", local.display()))?;
    }
    if up && !local.is_dir() {
        return Err(Coded(Exit::DirNotFound, format!("{}: no such folder", local.display())).into());
    }
    let local_t = if local.exists() { local_tree(&local)? } else { Tree::new() };
    let remote_t = if remote_id.is_empty() { Tree::new() } else { remote_tree(api, &remote_id).await? };
    let (src_t, dst_t) = if up { (local_t, remote_t) } else { (remote_t, local_t) };
    let (src_t, dst_kept) = (filter.apply(src_t), filter.apply(dst_t.clone()));
    let mut outcome = Outcome::default();
    let files = to_copy(&src_t, &dst_t, a.opts.force, &mut outcome);
    let deletions: Vec<String> =
        if a.delete { dst_kept.keys().filter(|r| !src_t.contains_key(*r)).cloned().collect() } else { Vec::new() };
    if a.dry_run {
        for f in &files {
            out.note(format!("would copy {f}"));
        }
        for d in &deletions {
            out.note(format!("would delete {d}"));
        }
        outcome.copied = files;
        outcome.deleted = deletions;
        if out.json {
            return out.json_out(&outcome);
        }
        out.note(format!(
            "dry run: {} to copy, {} to delete, {} unchanged",
            outcome.copied.len(),
            outcome.deleted.len(),
            outcome.skipped
        ));
        return Ok(());
    }
    let copier = Copier { api, out, transfers: a.opts.transfers_for(&src_t, &files) };
    if up {
        copier.up(&local, &remote_id, &src_t, &dst_t, files, &mut outcome).await;
    } else {
        copier.down(&src_t, &local, files, &mut outcome).await;
    }
    // Files first, then folders deepest first; a folder already gone with its parent is fine.
    let mut dels = deletions;
    dels.sort_by_key(|r| (r.ends_with('/'), std::cmp::Reverse(r.matches('/').count())));
    for rel in dels {
        let r: Result<(), String> = if up {
            let item = &dst_t[&rel];
            let res =
                if item.is_dir { api.folders().delete(&item.id).await } else { api.files().delete(&item.id).await };
            match res {
                Err(Error::Api(e)) if e.is_not_found() => Ok(()),
                other => other.map_err(|e| e.to_string()),
            }
        } else {
            let p = local.join(&rel);
            let res = if rel.ends_with('/') { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            match res {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other.map_err(|e| format!("{}: {e}", p.display())),
            }
        };
        match r {
            Ok(()) => outcome.deleted.push(rel),
            Err(e) => outcome.failed.push((rel, e)),
        }
    }
    outcome.finish(out, "synced")
}

/// `check` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  ocloud check ./photos cloud:/Photos --download")]
pub struct CheckArgs {
    /// One side (local folder or cloud:/folder).
    pub src: String,
    /// The other side.
    pub dst: String,
    /// Compare content too (downloads every remote file and hashes both sides).
    #[arg(long)]
    pub download: bool,
}

/// `check SRC DST`: same files, same sizes (and content with `--download`)?
pub async fn check(api: &ApiManager, a: &CheckArgs, out: &Printer) -> anyhow::Result<()> {
    let (local, remote_id, _) = sides(api, &a.src, &a.dst, false).await?;
    let local_t = local_tree(&local)?;
    let remote_t = remote_tree(api, &remote_id).await?;
    let mut differences: Vec<(String, &'static str)> = Vec::new();
    for (rel, l) in local_t.iter().filter(|(_, i)| !i.is_dir) {
        match remote_t.get(rel) {
            None => differences.push((rel.clone(), "only local")),
            Some(r) if r.size != l.size => differences.push((rel.clone(), "sizes differ")),
            Some(r) if a.download => {
                let local_hash = hash_file(&local.join(rel))?;
                let info = api.files().get(&r.id).await?;
                let url = info.download_url.context("no download URL")?;
                let mut hasher = HashWriter(sha2::Sha256::default());
                api.download_to_writer(&url, 0, &mut hasher, None).await?;
                if format!("{:x}", sha2::Digest::finalize(hasher.0)) != local_hash {
                    differences.push((rel.clone(), "contents differ"));
                }
            }
            Some(_) => {}
        }
    }
    for rel in remote_t.iter().filter(|(_, i)| !i.is_dir).map(|(r, _)| r) {
        if !local_t.contains_key(rel) {
            differences.push((rel.clone(), "only remote"));
        }
    }
    differences.sort();
    if out.json {
        let v: Vec<_> = differences.iter().map(|(p, w)| serde_json::json!({"path": p, "difference": w})).collect();
        out.json_out(&serde_json::json!({ "identical": differences.is_empty(), "differences": v }))?;
    } else {
        for (p, w) in &differences {
            println!("{w}: {p}");
        }
    }
    if differences.is_empty() {
        out.note("no differences");
        Ok(())
    } else {
        Err(Coded(Exit::Error, format!("{} differences", differences.len())).into())
    }
}

fn hash_file(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("{}", path.display()))?;
    Ok(format!("{:x}", h.finalize()))
}

struct HashWriter(sha2::Sha256);

impl tokio::io::AsyncWrite for HashWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        sha2::Digest::update(&mut self.0, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
