//! Open and click tracking for marketing email: links in the HTML part are rewritten
//! to `{public_url}/t/c/{token}` and a 1×1 image `{public_url}/t/o/{token}` is added.
//! Each token is signed and carries the lead, the template and (for a click) the
//! target, so the redirect goes only where the email pointed: no open redirect, and
//! no database lookup to verify.

use crate::signing::Signer;

/// Rewrites every `href="http(s)://…"` of `html` (but the unsubscribe link) into a
/// signed click link, and appends the open pixel.
pub fn track(
    html: &str,
    signer: &Signer,
    public_url: &str,
    lead: i64,
    template: &str,
    unsubscribe_url: &str,
) -> String {
    let base = public_url.trim_end_matches('/');
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html;
    while let Some(p) = rest.find("href=\"") {
        let (head, tail) = rest.split_at(p + "href=\"".len());
        out.push_str(head);
        let Some(end) = tail.find('"') else {
            rest = tail;
            break;
        };
        let target = crate::templates::decode_entities(&tail[..end]);
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

/// A click token's (lead, template, target), if genuine.
pub fn click(signer: &Signer, token: &str) -> Option<(i64, String, String)> {
    let payload = signer.verify("click", token)?;
    let mut parts = payload.splitn(3, '\n');
    let lead = parts.next()?.parse().ok()?;
    Some((lead, parts.next()?.to_string(), parts.next()?.to_string()))
}

/// An open token's (lead, template), if genuine.
pub fn open(signer: &Signer, token: &str) -> Option<(i64, String)> {
    let payload = signer.verify("open", token)?;
    let (lead, template) = payload.split_once('\n')?;
    Some((lead.parse().ok()?, template.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_signed_redirects_to_the_same_place_and_the_rest_is_untouched() {
        let s = Signer::new(b"k");
        let html = "<p><a href=\"https://shop.example/a?x=1&amp;y=2\">A</a> <a href=\"mailto:x@y.z\">m</a> <a href=\"https://u.example/unsub/T\">baja</a></p></body>";
        let out = track(
            html,
            &s,
            "https://t.example/e/",
            7,
            "edu",
            "https://u.example/unsub/T",
        );
        assert!(out.contains("href=\"mailto:x@y.z\""), "{out}");
        assert!(
            out.contains("href=\"https://u.example/unsub/T\""),
            "the unsubscribe link stays direct: {out}"
        );
        let token = out
            .split("https://t.example/e/t/c/")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(
            click(&s, token),
            Some((7, "edu".into(), "https://shop.example/a?x=1&y=2".into()))
        );
        assert!(out.contains("/t/o/") && out.ends_with("</body>"), "{out}");
        // A token cannot be pointed elsewhere.
        assert_eq!(click(&s, &token.replace('a', "b")), None);
        assert_eq!(click(&Signer::new(b"other"), token), None);
    }
}
