//! Open and click tracking for marketing email: links in the HTML part are rewritten
//! to `{public_url}/t/c/{token}` and a 1×1 image `{public_url}/t/o/{token}` is added.
//! Each token is signed and carries the lead, the template and (for a click) the
//! target, so the redirect goes only where the email pointed: no open redirect, and
//! no database lookup to verify.

use crate::delivery::signing::Signer;

/// Rewrites every `href="http(s)://…"` (or `'…'`, any case) of `html`, but the
/// unsubscribe link, into a signed click link, and appends the open pixel. `lead` is
/// the lead's `id:digest` (see `signing::unsubscribe_payload`), so an id reused after
/// `forget` is not credited with someone else's clicks.
pub fn track(
    html: &str,
    signer: &Signer,
    public_url: &str,
    lead: &str,
    template: &str,
    unsubscribe_url: &str,
) -> String {
    let base = public_url.trim_end_matches('/');
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html;
    while let Some((p, quote)) = find_href(rest) {
        let (head, tail) = rest.split_at(p);
        out.push_str(head);
        let Some(end) = tail.find(quote) else {
            rest = tail;
            break;
        };
        let target = crate::funnel::templates::decode_entities(&tail[..end]);
        let trackable = (target.starts_with("http://") || target.starts_with("https://"))
            && target != unsubscribe_url;
        if trackable {
            let token = signer.sign("click", &format!("{lead}\n{template}\n{target}"));
            out.push_str(&format!("{base}/t/c/{token}"));
        } else {
            out.push_str(&tail[..end]);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    let pixel = format!(
        "<img src=\"{base}/t/o/{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0\">",
        signer.sign("open", &format!("{lead}\n{template}"))
    );
    match out.rfind("</body>") {
        Some(p) => out.insert_str(p, &pixel),
        None => out.push_str(&pixel),
    }
    out
}

/// Where the next `href=` value of `html` starts (just after its quote), and the quote.
fn find_href(html: &str) -> Option<(usize, char)> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = lower[from..].find("href=") {
        let at = from + p + "href=".len();
        match html[at..].chars().next() {
            Some(q @ ('"' | '\'')) => return Some((at + 1, q)),
            _ => from = at,
        }
    }
    None
}

/// The lead a tracking token names: `id:digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub lead: i64,
    pub digest: String,
}

fn who(s: &str) -> Option<Who> {
    let (id, digest) = s.split_once(':')?;
    Some(Who {
        lead: id.parse().ok()?,
        digest: digest.to_string(),
    })
}

/// A click token's (lead, template, target), if genuine.
pub fn click(signer: &Signer, token: &str) -> Option<(Who, String, String)> {
    let payload = signer.verify("click", token)?;
    let mut parts = payload.splitn(3, '\n');
    let lead = who(parts.next()?)?;
    Some((lead, parts.next()?.to_string(), parts.next()?.to_string()))
}

/// An open token's (lead, template), if genuine.
pub fn open(signer: &Signer, token: &str) -> Option<(Who, String)> {
    let payload = signer.verify("open", token)?;
    let (lead, template) = payload.split_once('\n')?;
    Some((who(lead)?, template.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_signed_redirects_to_the_same_place_and_the_rest_is_untouched() {
        let s = Signer::new(b"k");
        let html = "<p><a href=\"https://shop.example/a?x=1&amp;y=2\">A</a> <a href=\"mailto:x@y.z\">m</a> <a href=\"https://u.example/unsub/T\">baja</a> <A HREF='https://shop.example/b'>B</A></p></body>";
        let out = track(
            html,
            &s,
            "https://t.example/e/",
            "7:abc",
            "edu",
            "https://u.example/unsub/T",
        );
        assert!(out.contains("href=\"mailto:x@y.z\""), "{out}");
        assert!(
            out.contains("href=\"https://u.example/unsub/T\""),
            "the unsubscribe link stays direct: {out}"
        );
        assert!(
            out.contains("HREF='https://t.example/e/t/c/"),
            "single quotes and capitals too: {out}"
        );
        let token = out
            .split("https://t.example/e/t/c/")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let seven = Who {
            lead: 7,
            digest: "abc".into(),
        };
        assert_eq!(
            click(&s, token),
            Some((seven, "edu".into(), "https://shop.example/a?x=1&y=2".into()))
        );
        assert!(out.contains("/t/o/") && out.ends_with("</body>"), "{out}");
        // A token cannot be pointed elsewhere.
        use base64::Engine as _;
        let tag = token.split_once('.').unwrap().1;
        let evil = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode("7:abc\nedu\nhttps://evil.example/");
        assert_eq!(click(&s, &format!("{evil}.{tag}")), None);
        assert_eq!(click(&Signer::new(b"other"), token), None);
    }
}
