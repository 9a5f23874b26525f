//! Open and click tracking for marketing email: links in the HTML part are rewritten
//! to `{public_url}/t/c/{token}` and a 1×1 image `{public_url}/t/o/{token}` is added.
//! Each token is signed and carries the lead, the template and (for a click) the
//! target, so the redirect goes only where the email pointed: no open redirect, and
//! no database lookup to verify.

use crate::delivery::signing::Signer;

/// Rewrites the `href` of every `<a>` of `html` that leads to an `http(s)://` page, but
/// the unsubscribe link, into a signed click link, and adds the open pixel before the
/// last `</body>` (or at the end of a fragment without one). `lead` is the lead's
/// `id:digest` (see `signing::unsubscribe_payload`), so an id reused after `forget` is
/// not credited with someone else's clicks.
///
/// The HTML is parsed by `lol_html`, so only real anchors are touched, whatever their
/// quoting or case: not an `href=` in text, a comment or a `<link>`. Should parsing
/// ever fail, the links stay direct (the email still works, only its clicks go
/// uncounted) and the pixel is added all the same.
pub fn track(
    html: &str,
    signer: &Signer,
    public_url: &str,
    lead: &str,
    template: &str,
    unsubscribe_url: &str,
) -> String {
    let base = public_url.trim_end_matches('/');
    let click_url = |target: &str| {
        let token = signer.sign("click", &format!("{lead}\n{template}\n{target}"));
        format!("{base}/t/c/{token}")
    };
    let mut out = match rewrite_links(html, unsubscribe_url, &click_url) {
        Ok(out) => out,
        Err(error) => {
            tracing::warn!(template, %error, "links left untracked: the HTML could not be rewritten");
            html.to_string()
        }
    };
    let pixel = format!(
        "<img src=\"{base}/t/o/{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0\">",
        signer.sign("open", &format!("{lead}\n{template}"))
    );
    match last_body_end(&out) {
        Some(p) => out.insert_str(p, &pixel),
        None => out.push_str(&pixel),
    }
    out
}

/// `html` with each trackable anchor's `href` replaced by `click_url(target)`, the
/// target being the link as the reader's client resolves it (entities decoded).
fn rewrite_links(
    html: &str,
    unsubscribe_url: &str,
    click_url: &dyn Fn(&str) -> String,
) -> Result<String, lol_html::errors::RewritingError> {
    let anchors = lol_html::element!("a[href]", |el| {
        let Some(raw) = el.get_attribute("href") else {
            return Ok(());
        };
        let target = crate::funnel::templates::decode_entities(&raw);
        let trackable = (target.starts_with("http://") || target.starts_with("https://"))
            && target != unsubscribe_url;
        if trackable {
            el.set_attribute("href", &click_url(&target))?;
        }
        Ok(())
    });
    lol_html::rewrite_str(
        html,
        lol_html::RewriteStrSettings::new().append_element_content_handler(anchors),
    )
}

/// Where the last `</body>` (any case) of `html` starts.
fn last_body_end(html: &str) -> Option<usize> {
    html.as_bytes()
        .windows("</body".len())
        .rposition(|w| w.eq_ignore_ascii_case(b"</body"))
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
        // lol_html writes a rewritten value in double quotes.
        assert!(
            out.contains("HREF=\"https://t.example/e/t/c/"),
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

    fn tracked(html: &str) -> String {
        track(
            html,
            &Signer::new(b"k"),
            "https://t.example",
            "7:abc",
            "edu",
            "https://u.example/unsub/T",
        )
    }

    /// The targets of the click links in `out`, in order.
    fn targets(out: &str) -> Vec<String> {
        out.split("https://t.example/t/c/")
            .skip(1)
            .map(|rest| {
                let token = rest.split(['"', '\'']).next().unwrap();
                click(&Signer::new(b"k"), token).unwrap().2
            })
            .collect()
    }

    #[test]
    fn single_quoted_and_uppercase_hrefs_are_tracked() {
        let out = tracked("<a href='https://a.example/'>a</a><A HREF=\"https://b.example/\">b</A>");
        assert_eq!(
            targets(&out),
            ["https://a.example/", "https://b.example/"],
            "{out}"
        );
        assert!(!out.contains("href='https://a.example/'"), "{out}");
    }

    #[test]
    fn mailto_fragment_and_relative_links_are_left_alone() {
        let html = "<a href=\"mailto:x@y.z\">m</a><a href=\"#top\">t</a><a href=\"/local\">l</a><a name=\"x\">n</a>";
        let out = tracked(html);
        assert!(targets(&out).is_empty(), "{out}");
        assert!(out.starts_with(html), "untouched: {out}");
    }

    #[test]
    fn an_escaped_ampersand_is_decoded_in_the_target() {
        let out = tracked("<a href=\"https://shop.example/?a=1&amp;b=2\">x</a>");
        assert_eq!(targets(&out), ["https://shop.example/?a=1&b=2"]);
    }

    #[test]
    fn href_outside_an_anchor_is_not_a_link() {
        let html = "<p>write href=\"https://not.example/\" in text</p><!-- <a href=\"https://c.example/\"> --><link href=\"https://s.example/x.css\">";
        let out = tracked(html);
        assert!(targets(&out).is_empty(), "{out}");
        assert!(out.starts_with(html), "{out}");
    }

    #[test]
    fn the_pixel_goes_before_the_body_ends_whatever_its_case_or_at_the_end() {
        let out = tracked("<html><BODY><p>x</p></BODY></html>");
        let pixel = out.find("/t/o/").unwrap();
        assert!(pixel < out.find("</BODY>").unwrap(), "{out}");
        let out = tracked("<p>fragment</p>");
        assert!(out.starts_with("<p>fragment</p><img "), "{out}");
        assert!(out.ends_with('>'), "{out}");
    }
}
