//! `WWW-Authenticate` challenges (RFC 9110 section 11.6.1), read just far enough to find a Bearer
//! challenge's `error` (RFC 6750 section 3): `insufficient_scope` means "not allowed", not "expired".
//!
//! Lenient: what does not parse is skipped, never an error, and nothing here can panic or loop.

/// One challenge: its scheme and its `name=value` parameters (values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// True if any Bearer challenge among the header values says `error="insufficient_scope"`.
pub(crate) fn is_insufficient_scope<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    values
        .flat_map(|v| parse(&String::from_utf8_lossy(v)))
        .any(|c| c.scheme.eq_ignore_ascii_case("bearer") && c.param("error") == Some("insufficient_scope"))
}

/// Parse one header value into its challenges.
pub(crate) fn parse(header: &str) -> Vec<Challenge> {
    let mut cursor = Cursor { rest: header };
    let mut challenges: Vec<Challenge> = Vec::new();
    loop {
        cursor.skip(|c| c == ',' || c == ' ' || c == '\t');
        if cursor.rest.is_empty() {
            return challenges;
        }
        let token = cursor.token();
        if token.is_empty() {
            // Not a token (stray quote, `=`, control character): drop one character and go on.
            cursor.advance_char();
            continue;
        }
        cursor.skip(|c| c == ' ' || c == '\t');
        match (cursor.rest.strip_prefix('='), challenges.last_mut()) {
            // `name=value` belongs to the challenge before it; `name==` (token68 padding) does not.
            (Some(after), Some(challenge)) if !after.starts_with('=') => {
                cursor.rest = after;
                cursor.skip(|c| c == ' ' || c == '\t');
                let value = cursor.value();
                challenge.params.push((token.to_owned(), value));
            }
            (Some(_), _) => cursor.skip(|c| c == '='),
            (None, _) => challenges.push(Challenge {
                scheme: token.to_owned(),
                params: Vec::new(),
            }),
        }
    }
}

struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn skip(&mut self, what: impl Fn(char) -> bool) {
        self.rest = self.rest.trim_start_matches(what);
    }

    fn advance_char(&mut self) {
        let mut chars = self.rest.chars();
        chars.next();
        self.rest = chars.as_str();
    }

    /// An RFC 9110 token (also covers token68 characters but `=`).
    fn token(&mut self) -> &'a str {
        let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/".contains(c);
        let end = self.rest.find(|c: char| !is_tchar(c)).unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        token
    }

    /// A token or a quoted string with `\` escapes; an unterminated quote runs to the end.
    fn value(&mut self) -> String {
        let Some(quoted) = self.rest.strip_prefix('"') else {
            return self.token().to_owned();
        };
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &quoted[i + 1..];
                    return value;
                }
                '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
                c => value.push(c),
            }
        }
        self.rest = "";
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer_error(header: &str) -> Option<String> {
        parse(header)
            .into_iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|c| c.param("error").map(str::to_owned))
    }

    #[test]
    fn rfc_6750_examples() {
        assert_eq!(bearer_error(r#"Bearer realm="example""#), None);
        assert_eq!(
            bearer_error(
                r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#
            )
            .as_deref(),
            Some("invalid_token")
        );
        assert_eq!(
            bearer_error(r#"Bearer error="insufficient_scope", scope="a b""#).as_deref(),
            Some("insufficient_scope")
        );
    }

    #[test]
    fn several_challenges_token68_and_escapes() {
        let challenges = parse(
            r#"Basic abc123==, Newauth realm="apps", type=1, title="Login to \"apps\"", Bearer error=insufficient_scope"#,
        );
        let schemes: Vec<_> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Basic", "Newauth", "Bearer"]);
        assert_eq!(challenges[1].param("title"), Some(r#"Login to "apps""#));
        assert_eq!(challenges[1].param("TYPE"), Some("1"));
        assert_eq!(challenges[2].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn garbage_is_skipped_without_panicking() {
        for header in [
            "",
            ",,,",
            "=",
            "\"",
            "Bearer error=\"unterminated",
            "Bearer ===, =x",
            "é Bearer error=x",
            "\u{0}\u{7f}",
        ] {
            let _ = parse(header);
        }
        assert_eq!(
            bearer_error("Bearer error=\"unterminated").as_deref(),
            Some("unterminated")
        );
        assert!(is_insufficient_scope(
            [&b"Basic x"[..], &b"Bearer error=\"insufficient_scope\""[..]].into_iter()
        ));
        assert!(!is_insufficient_scope(
            [&b"Bearer error=\"invalid_token\""[..]].into_iter()
        ));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn token() -> impl Strategy<Value = String> {
            "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
        }

        proptest! {
            #[test]
            fn any_header_parses_without_panicking(header in any::<String>()) {
                let _ = parse(&header);
            }

            #[test]
            fn rendered_challenges_parse_back(
                challenges in prop::collection::vec(
                    (token(), prop::collection::vec((token(), "[ -~]{0,20}"), 0..4)),
                    1..4,
                )
            ) {
                let rendered: Vec<String> = challenges
                    .iter()
                    .map(|(scheme, params)| {
                        let params: Vec<String> = params
                            .iter()
                            .map(|(name, value)| {
                                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
                                format!("{name}=\"{escaped}\"")
                            })
                            .collect();
                        format!("{scheme} {}", params.join(", "))
                    })
                    .collect();
                let parsed = parse(&rendered.join(", "));
                let expected: Vec<Challenge> = challenges
                    .into_iter()
                    .map(|(scheme, params)| Challenge { scheme, params })
                    .collect();
                prop_assert_eq!(parsed, expected);
            }
        }
    }
}
