//! Locale tags (`es`, `en`, `es-MX`): what `defaults.locale`, a template file's
//! `.<locale>` suffix and a lead's locale may be. Its own module because the config,
//! the templates and the importer all check them, and none of those should depend on
//! another for it.

/// Checks a locale tag: a language of 2 or 3 letters, optionally `-` and a region of
/// 2 letters or 3 digits.
pub fn check_locale(s: &str) -> Result<(), String> {
    let language =
        |l: &str| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic());
    let region = |r: &str| {
        (r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()))
            || (r.len() == 3 && r.chars().all(|c| c.is_ascii_digit()))
    };
    let ok = match s.split_once('-') {
        None => language(s),
        Some((l, r)) => language(l) && region(r),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{s}` is not a locale; write e.g. es, en or es-MX"))
    }
}

#[cfg(test)]
mod tests {
    use super::check_locale;

    #[test]
    fn languages_and_regions_are_locales() {
        for ok in ["es", "en", "ast", "es-MX", "pt-BR", "es-419"] {
            assert!(check_locale(ok).is_ok(), "{ok}");
        }
        for bad in ["", "e", "english", "es-", "es-M", "es-4190", "e1", "es_MX"] {
            assert_eq!(
                check_locale(bad).unwrap_err(),
                format!("`{bad}` is not a locale; write e.g. es, en or es-MX")
            );
        }
    }
}
