//! The server-rendered pages of the OAuth flow: login, consent, errors, sign-out. Plain HTML
//! forms with one small stylesheet: usable without JavaScript, readable on a phone.

use crate::domain::oauth::AuthorizeRequest;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
 font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f4f4;color:#222}
main{background:#fff;width:min(420px,92vw);padding:2rem 2rem 1.5rem;border-radius:12px;
 box-shadow:0 4px 24px rgba(0,0,0,.08);border-top:6px solid #ff7900}
h1{font-size:1.35rem;margin:0 0 .25rem}
p.sub{margin:0 0 1.25rem;color:#666}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],input[type=password]{width:100%;padding:.65rem .75rem;font-size:1rem;border:1px solid #bbb;border-radius:8px}
input:focus{outline:2px solid #ff7900;border-color:#ff7900}
button{font-size:1rem;font-weight:600;padding:.7rem 1.2rem;border-radius:8px;border:0;cursor:pointer}
button.primary{background:#ff7900;color:#000}
button.secondary{background:#e8e8e8;color:#222}
.actions{display:flex;gap:.75rem;justify-content:flex-end;margin-top:1.5rem}
.error{background:#fdecea;color:#8a1c12;padding:.6rem .8rem;border-radius:8px;margin:0 0 1rem}
ul.scopes{padding-left:1.2rem;margin:.5rem 0 0}
ul.scopes li{margin:.3rem 0}
footer{margin-top:1.5rem;font-size:.8rem;color:#888;text-align:center}
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · ocloud</title><style>{STYLE}</style></head><body><main>{body}\
         <footer>ocloud · Orange Cloud API</footer></main></body></html>",
        esc(title)
    )
}

fn hidden(req: &AuthorizeRequest, csrf: &str) -> String {
    let mut out = format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf));
    for (k, v) in req.pairs() {
        out.push_str(&format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v)));
    }
    out
}

/// The sign-in form.
pub fn login(app_name: &str, req: &AuthorizeRequest, csrf: &str, error: Option<&str>, username: &str) -> String {
    let err = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default();
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1><p class=\"sub\">to continue to <strong>{}</strong></p>{err}\
             <form method=\"post\" action=\"/oauth/v2/login\">{}\
             <label for=\"username\">User name</label>\
             <input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" autocomplete=\"username\" autofocus required>\
             <label for=\"password\">Password</label>\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <div class=\"actions\"><button class=\"primary\" type=\"submit\">Sign in</button></div></form>",
            esc(app_name),
            hidden(req, csrf),
            esc(username)
        ),
    )
}

/// What a scope lets an application do, in plain words.
pub fn scope_words(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "openid" => "Know who you are (your user name)",
        "cloud" => "Read and write files in its own folder of your cloud",
        "cloudfullread" => "Read all the files and folders of your cloud",
        "cloudfullwrite" => "Create, change and delete any file or folder of your cloud",
        "offline_access" => "Keep this access when you are not using it",
        "profile" | "details" => "See your profile details",
        _ => return None,
    })
}

/// The consent form.
pub fn consent(app_name: &str, user: &str, req: &AuthorizeRequest, csrf: &str) -> String {
    let items: String =
        req.scopes().iter().filter_map(|s| scope_words(s)).map(|w| format!("<li>{}</li>", esc(w))).collect();
    page(
        "Allow access",
        &format!(
            "<h1>Allow {} to access your cloud?</h1><p class=\"sub\">Signed in as <strong>{}</strong></p>\
             <p>This application will be able to:</p><ul class=\"scopes\">{items}</ul>\
             <form method=\"post\" action=\"/oauth/v2/consent\">{}\
             <div class=\"actions\"><button class=\"secondary\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
             <button class=\"primary\" type=\"submit\" name=\"decision\" value=\"allow\">Allow</button></div></form>",
            esc(app_name),
            esc(user),
            hidden(req, csrf)
        ),
    )
}

/// An error that cannot be sent back to the application.
pub fn error(message: &str) -> String {
    page("Cannot continue", &format!("<h1>Cannot continue</h1><p class=\"error\">{}</p>", esc(message)))
}

/// After sign-out.
pub fn logged_out() -> String {
    page("Signed out", "<h1>Signed out</h1><p class=\"sub\">You can close this window.</p>")
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(super::esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
