//! HTTPS for clients that hard-code Orange's hosts: `--tls auto` makes a local CA and a
//! certificate for api.orange.com and cloudapi.orange.com; a client that trusts the CA and
//! resolves those hosts to loopback logs in through the pages, lists, uploads and downloads.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;

use ocloud_client::{ApiManager, Endpoints};

use crate::harness::*;
use crate::oauth::{Browser, Setup, admin};

#[tokio::test]
async fn orange_hosts_over_https_with_the_local_ca() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("https://cloudapi.orange.com:{port}");
    let s = Setup::new(&["--tls", "auto", "--listen", &listen, "--public-url", &public], "openid cloud", None);
    assert!(s.server.url.starts_with("https://"), "{}", s.server.url);
    let ca = s.server.data.join("tls/ca.pem");
    let pem = std::fs::read(&ca).unwrap();
    let addr: SocketAddr = listen.parse().unwrap();

    // Plain HTTP to the TLS port: a clear answer, not a hang.
    let mut plain = std::net::TcpStream::connect(addr).unwrap();
    plain.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("this port speaks HTTPS"), "{answer}");
    // Without the CA, the certificate is refused.
    let untrusting = reqwest::Client::builder().resolve("api.orange.com", addr).build().unwrap();
    assert!(untrusting.get(format!("https://api.orange.com:{port}/healthz")).send().await.is_err());

    // An unchanged client of Orange's hosts: only the CA and the hosts-file mapping are added.
    let callback = free_port();
    let redirect = format!("http://127.0.0.1:{callback}/callback");
    let app: serde_json::Value = serde_json::from_str(&admin(
        &s.server,
        &["app", "add", "tls-client", "--redirect-uri", &redirect, "--json"],
        None,
    ))
    .unwrap();
    let orange = Endpoints {
        api: format!("https://api.orange.com:{port}"),
        upload: format!("https://cloudapi.orange.com:{port}"),
        oauth: format!("https://api.orange.com:{port}"),
    };
    let api =
        ApiManager::builder(app["client_id"].as_str().unwrap(), app["client_secret"].as_str().unwrap(), &redirect)
            .endpoints(orange.clone())
            .ca_cert_pem(pem.clone())
            .resolve("api.orange.com", addr)
            .resolve("cloudapi.orange.com", addr)
            .build()
            .unwrap();
    let url = api.init_authorize_code_process("tls").await.unwrap();
    let browser_http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .resolve("api.orange.com", addr);
    let mut b = Browser::with(browser_http, &orange.oauth);
    let mut page = b.get(url.as_str().strip_prefix(&orange.oauth).unwrap()).await;
    page = b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    page = b.submit(&page, "/oauth/v2/consent", &[("decision", "allow")]).await;
    let location = page.header("location").expect("redirect to the client").to_owned();
    let visit = tokio::spawn(async move { reqwest::get(location).await.unwrap().text().await.unwrap() });
    let code = api.wait_and_terminate_authorize_code_process(Some(std::time::Duration::from_secs(30))).await.unwrap();
    visit.await.unwrap();
    api.init_with_authorize_code(&code).await.unwrap();

    assert_eq!(api.freespace().await.unwrap(), 5 << 30);
    let up = api
        .files()
        .upload_reader(std::io::Cursor::new(b"over https".to_vec()), "secure.txt", 10, None, None)
        .await
        .unwrap();
    let info = api.files().get(&up.file_id).await.unwrap();
    let download_url = info.download_url.clone().unwrap();
    assert!(download_url.starts_with(&orange.upload), "{download_url}");
    let mut got = Vec::new();
    api.download_to_writer(&download_url, 0, &mut got, None).await.unwrap();
    assert_eq!(got, b"over https");
    let root = api.folders().get(None, &Default::default()).await.unwrap();
    assert!(root.files.iter().any(|f| f.name == "secure.txt"));

    // The CLI takes the CA file too; without it, one readable line and a non-zero exit.
    let token = s.server.admin_token(&["--user", "alice", "--app", "tests"]);
    let cli = |with_ca: bool| {
        let mut c = std::process::Command::new(BIN);
        c.args(["df", "--api-url", &s.server.url]).env("OCLOUD_TOKEN", &token).env_remove("OCLOUD_CA_CERT");
        c.env("OCLOUD_CONFIG", s.server.data.join("cli.toml"));
        if with_ca {
            c.arg("--ca-cert").arg(&ca);
        }
        c.output().unwrap()
    };
    let ok = cli(true);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Free"));
    let refused = cli(false);
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim().lines().count(),
        1,
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// A self-made CA and a certificate it signs for 127.0.0.1: (CA PEM, certificate PEM, key PEM).
fn own_certificate() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, format!("test CA {}", free_port()));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

/// `--tls-cert`/`--tls-key` serve a certificate of one's own, re-read on SIGHUP (a broken file
/// keeps the one in use).
#[tokio::test]
async fn own_certificate_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (ca1, cert1, key1) = own_certificate();
    std::fs::write(&cert, cert1).unwrap();
    std::fs::write(&key, key1).unwrap();
    let log = dir.path().join("serve.log");
    let s =
        Server::start_logged(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()], "info", &log);
    let trusting = |ca: &str| {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
            .build()
            .unwrap()
    };
    let healthz = format!("{}/healthz", s.url);
    assert_eq!(trusting(&ca1).get(&healthz).send().await.unwrap().status(), 200);

    let (ca2, cert2, key2) = own_certificate();
    std::fs::write(&cert, cert2).unwrap();
    std::fs::write(&key, key2).unwrap();
    let hup = || std::process::Command::new("kill").args(["-HUP", &s.pid().to_string()]).status().unwrap();
    assert!(hup().success());
    // The reload is asynchronous: wait (bounded) until new connections get the new certificate.
    let mut reloaded = false;
    for _ in 0..250 {
        if trusting(&ca2).get(&healthz).send().await.is_ok() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reloaded, "SIGHUP did not load the new certificate");
    assert!(trusting(&ca1).get(&healthz).send().await.is_err(), "the old certificate is gone");
    std::fs::write(&key, "not a key").unwrap();
    assert!(hup().success());
    let mut refused = false;
    for _ in 0..250 {
        if std::fs::read_to_string(&log).unwrap().contains("SIGHUP: keeping the old certificate") {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "the broken key was not reported");
    assert_eq!(trusting(&ca2).get(&healthz).send().await.unwrap().status(), 200, "a broken file keeps the old one");
}

/// The system's CA roots are read at the first TLS handshake, not when the client is built:
/// against a plain `http://` service the CLI works on a machine that has none (it failed to
/// start there before), and over HTTPS it says in one line what is missing.
#[tokio::test]
async fn the_system_roots_are_read_only_for_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (no_file, no_dir) = (dir.path().join("none.pem"), dir.path().join("none"));
    std::fs::write(&no_file, "").unwrap();
    std::fs::create_dir(&no_dir).unwrap();
    let df = |s: &Server, ca: Option<&std::path::Path>| {
        let token = s.admin_token(&["--user", "alice", "--app", "tests"]);
        let mut c = std::process::Command::new(BIN);
        c.args(["df", "--api-url", &s.url]).env("OCLOUD_TOKEN", &token).env_remove("OCLOUD_CA_CERT");
        c.env("OCLOUD_CONFIG", s.data.join("cli.toml")).env("SSL_CERT_FILE", &no_file).env("SSL_CERT_DIR", &no_dir);
        if let Some(ca) = ca {
            c.arg("--ca-cert").arg(ca);
        }
        c.output().unwrap()
    };
    let plain = Server::start(&[]);
    let ok = df(&plain, None);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let (ca, cert, key) = own_certificate();
    let (ca_file, cert_file, key_file) =
        (dir.path().join("ca.pem"), dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let tls = Server::start(&["--tls-cert", cert_file.to_str().unwrap(), "--tls-key", key_file.to_str().unwrap()]);
    let refused = df(&tls, None);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("CA certificates"), "{err}");
    let with_ca = df(&tls, Some(&ca_file));
    assert!(with_ca.status.success(), "{}", String::from_utf8_lossy(&with_ca.stderr));
}
