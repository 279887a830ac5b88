use actix_web::http::Method;
use proptest::prelude::*;

use super::*;
use crate::gateway::bypass::{ATTEMPTS, decode, lax_reading};
use crate::gateway::path::PathError;

/// The policy of the bypass table: `/public/**` anonymous, `/admin/**` needs a scope, the
/// rest a token.
const BYPASS_POLICY: &str = r#"
default = "authenticated"

[[rule]]
path = "/public/**"
access = "anonymous"

[[rule]]
path = "/admin/**"
scopes = ["admin"]
"#;

fn policy(text: &str) -> Policy {
    Policy::parse(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn is_public(path: &str) -> bool {
    path == "/public" || path.starts_with("/public/")
}

#[test]
fn no_bypass_attempt_reaches_a_protected_path_anonymously() {
    let policy = policy(BYPASS_POLICY);
    let mut table = Vec::new();
    let mut failures = Vec::new();
    for attempt in ATTEMPTS {
        let line = match normalize(attempt) {
            Err(e) => format!("{attempt:<36} 400  {e}"),
            Ok(path) => {
                let access = policy.decide(&Method::GET, &path);
                let upstream = lax_reading(&path);
                // Anonymous is only right when every reading stays under /public; and
                // however lax the upstream, it reads the path the policy matched.
                let anonymous_elsewhere =
                    access == Access::Anonymous && !(is_public(&path) && is_public(&upstream));
                if anonymous_elsewhere || upstream != decode(&path) {
                    failures.push(*attempt);
                }
                format!("{attempt:<36} {path:<20} {access:?} (lax upstream reads {upstream})")
            }
        };
        println!("{line}");
        table.push(line);
    }
    assert!(
        failures.is_empty(),
        "bypasses: {failures:?}\n{}",
        table.join("\n")
    );
}

#[test]
fn the_bypass_table_refuses_the_encoded_separators_and_decides_the_rest() {
    let policy = policy(BYPASS_POLICY);
    let admin = Access::Authenticated {
        scopes: &["admin".to_owned()],
    };
    for (attempt, expected) in [
        ("/public/../admin", Ok(admin)),
        ("/public/%2E%2E/admin", Ok(admin)),
        ("/public;/../admin", Err(PathError::Semicolon)),
        ("/public/..;/admin", Err(PathError::Semicolon)),
        ("/public/..%2fadmin", Err(PathError::EncodedSlash)),
        ("/public/..%5cadmin", Err(PathError::Backslash)),
        ("//admin", Ok(admin)),
        ("/admin/", Ok(admin)),
        ("/Admin", Ok(Access::Authenticated { scopes: &[] })),
        ("/public/%c0%ae%c0%ae/admin", Err(PathError::InvalidUtf8)),
        ("/public/%252e%252e/admin", Err(PathError::DoubleEncoded)),
        ("/public/%00/../admin", Err(PathError::Nul)),
        ("/public/x", Ok(Access::Anonymous)),
    ] {
        let decided = normalize(attempt).map(|path| policy.decide(&Method::GET, &path));
        assert_eq!(decided, expected, "{attempt}");
    }
}

#[test]
fn the_example_policy_in_deploy_parses_and_decides_as_its_comments_say() {
    let policy = policy(include_str!("../../../deploy/policy.example.toml"));
    let read = ["orders:read".to_owned()];
    let write = ["orders:write".to_owned()];
    for (method, path, expected) in [
        (Method::GET, "/health", Access::Anonymous),
        (Method::HEAD, "/health", Access::Anonymous),
        (
            Method::POST,
            "/health",
            Access::Authenticated { scopes: &[] },
        ),
        (Method::GET, "/public", Access::Anonymous),
        (Method::GET, "/public/a/b", Access::Anonymous),
        (
            Method::GET,
            "/orders/7",
            Access::Authenticated { scopes: &read },
        ),
        (
            Method::GET,
            "/orders/7/",
            Access::Authenticated { scopes: &read },
        ),
        (
            Method::PUT,
            "/orders/7",
            Access::Authenticated { scopes: &write },
        ),
        (
            Method::GET,
            "/orders/7/lines",
            Access::Authenticated { scopes: &[] },
        ),
        (Method::GET, "/internal/x", Access::Deny),
        (
            Method::GET,
            "/Internal/x",
            Access::Authenticated { scopes: &[] },
        ),
        (Method::GET, "/", Access::Authenticated { scopes: &[] }),
    ] {
        assert_eq!(policy.decide(&method, path), expected, "{method} {path}");
    }
}

#[test]
fn without_a_file_everything_needs_a_token_and_an_empty_file_says_the_same() {
    for policy in [Policy::everything_authenticated(), policy("")] {
        for path in ["/", "/public/x", "/admin"] {
            assert_eq!(
                policy.decide(&Method::GET, path),
                Access::Authenticated { scopes: &[] }
            );
        }
    }
}

#[test]
fn patterns_match_exactly_one_segment_or_the_prefix_and_below() {
    let policy = policy(
        r#"
default = "deny"
[[rule]]
path = "/"
access = "anonymous"
[[rule]]
path = "/a/{id}/b"
scopes = ["one"]
[[rule]]
path = "/c/**"
scopes = ["rest"]
[[rule]]
path = "/caf%c3%a9"
scopes = ["cafe"]
"#,
    );
    let one = Access::Authenticated {
        scopes: &["one".to_owned()],
    };
    let rest = Access::Authenticated {
        scopes: &["rest".to_owned()],
    };
    let cafe = Access::Authenticated {
        scopes: &["cafe".to_owned()],
    };
    for (path, expected) in [
        ("/", Access::Anonymous),
        ("/a/1/b", one),
        ("/a/1/b/", one),
        ("/a/1/2/b", Access::Deny),
        ("/a//b", Access::Deny),
        ("/a/1/b/c", Access::Deny),
        ("/c", rest),
        ("/c/", rest),
        ("/c/d/e", rest),
        ("/cd", Access::Deny),
        ("/caf%C3%A9", cafe),
    ] {
        assert_eq!(policy.decide(&Method::GET, path), expected, "{path}");
    }
    assert_eq!(
        policy.decide(&Method::GET, &normalize("/café").unwrap()),
        cafe
    );
}

#[test]
fn a_rule_matches_every_spelling_an_upstream_decodes_to_its_segment() {
    let policy = policy(
        "[[rule]]\npath = \"/v1/things:delete\"\nscopes = [\"delete\"]\n[[rule]]\npath = \"/files/a+b@c\"\naccess = \"deny\"\n",
    );
    let delete = Access::Authenticated {
        scopes: &["delete".to_owned()],
    };
    for (raw, expected) in [
        ("/v1/things:delete", delete),
        ("/v1/things%3adelete", delete),
        ("/v1/things%3Adelete/", delete),
        ("/files/a%2Bb%40c", Access::Deny),
        ("/files/a+b@c", Access::Deny),
        ("/files/a%20b@c", Access::Authenticated { scopes: &[] }),
    ] {
        let path = normalize(raw).unwrap();
        assert_eq!(policy.decide(&Method::GET, &path), expected, "{raw}");
    }
}

#[test]
fn methods_narrow_a_rule_and_get_covers_head() {
    let policy = policy(
        r#"
[[rule]]
path = "/x"
methods = ["GET", "DELETE"]
access = "anonymous"
[[rule]]
path = "/x"
methods = ["POST"]
access = "deny"
"#,
    );
    for (method, expected) in [
        (Method::GET, Access::Anonymous),
        (Method::HEAD, Access::Anonymous),
        (Method::DELETE, Access::Anonymous),
        (Method::POST, Access::Deny),
        (Method::PUT, Access::Authenticated { scopes: &[] }),
        (
            Method::from_bytes(b"PROPFIND").unwrap(),
            Access::Authenticated { scopes: &[] },
        ),
    ] {
        assert_eq!(policy.decide(&method, "/x"), expected, "{method}");
    }
}

#[test]
fn matching_is_case_sensitive_unless_the_file_says_otherwise() {
    let rules = "[[rule]]\npath = \"/admin/**\"\naccess = \"deny\"\n";
    let sensitive = policy(rules);
    let insensitive = policy(&format!("case_sensitive = false\n{rules}"));
    assert_eq!(sensitive.decide(&Method::GET, "/admin/x"), Access::Deny);
    assert_eq!(
        sensitive.decide(&Method::GET, "/ADMIN/x"),
        Access::Authenticated { scopes: &[] }
    );
    assert_eq!(insensitive.decide(&Method::GET, "/ADMIN/x"), Access::Deny);
    assert_eq!(insensitive.decide(&Method::GET, "/aDmIn"), Access::Deny);
}

#[test]
fn scopes_with_authenticated_are_the_same_rule_as_scopes_alone() {
    let policy =
        policy("[[rule]]\npath = \"/x\"\naccess = \"authenticated\"\nscopes = [\"a\", \"b\"]\n");
    assert_eq!(
        policy.decide(&Method::GET, "/x"),
        Access::Authenticated {
            scopes: &["a".to_owned(), "b".to_owned()]
        }
    );
}

/// Each bad file: its text, the line its error must name, and words the message must hold.
#[test]
fn every_bad_file_is_refused_naming_its_line_and_the_fix() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, usize, &[&str])] = &[
        ("TOML syntax", "default = \"deny\"\n[[rule]\npath = \"/x\"\n", 2, &[]),
        ("an unknown top-level key", "defualt = \"deny\"\n", 1, &["defualt", "check its spelling"]),
        ("an unknown rule key", "[[rule]]\npath = \"/x\"\nacess = \"deny\"\n", 3, &["acess", "access"]),
        ("`rules` for `rule`", "\n[[rules]]\npath = \"/x\"\n", 2, &["rules"]),
        ("a rule without path", "[[rule]]\naccess = \"deny\"\n", 1, &["missing field `path`", "every [[rule]] needs a `path`"]),
        ("a path that is not a string", "[[rule]]\npath = 5\naccess = \"deny\"\n", 2, &[]),
        ("a relative path", "[[rule]]\naccess = \"deny\"\npath = \"admin/**\"\n", 3, &["does not start with `/`"]),
        ("`**` in the middle", "[[rule]]\npath = \"/a/**/b\"\naccess = \"deny\"\n", 2, &["`**` may only end"]),
        ("a single `*`", "[[rule]]\npath = \"/a/*\"\naccess = \"deny\"\n", 2, &["`/**`", "{name}"]),
        ("a partial `**`", "[[rule]]\npath = \"/a**\"\naccess = \"deny\"\n", 2, &["`*`"]),
        ("an unbalanced `{`", "[[rule]]\npath = \"/a/{id\"\naccess = \"deny\"\n", 2, &["not closed"]),
        ("a stray `}`", "[[rule]]\npath = \"/a/id}\"\naccess = \"deny\"\n", 2, &["whole segment"]),
        ("`{name}` followed by text", "[[rule]]\npath = \"/a/{id}x\"\naccess = \"deny\"\n", 2, &["whole segment"]),
        ("`{}` inside a segment", "[[rule]]\npath = \"/a/x{id}\"\naccess = \"deny\"\n", 2, &["whole segment"]),
        ("an empty segment name", "[[rule]]\npath = \"/a/{}\"\naccess = \"deny\"\n", 2, &["empty"]),
        ("a segment name with a slash", "[[rule]]\npath = \"/a/{a-b}\"\naccess = \"deny\"\n", 2, &["`{a-b}`"]),
        ("a double slash", "[[rule]]\npath = \"/a//b\"\naccess = \"deny\"\n", 2, &["empty segment"]),
        ("a trailing slash", "[[rule]]\npath = \"/a/\"\naccess = \"deny\"\n", 2, &["ends with `/`"]),
        ("a dot-dot segment", "[[rule]]\npath = \"/a/../b\"\naccess = \"deny\"\n", 2, &["`..`"]),
        ("an encoded slash", "[[rule]]\npath = \"/a%2fb\"\naccess = \"deny\"\n", 2, &["%2F"]),
        ("a semicolon", "[[rule]]\npath = \"/a;b\"\naccess = \"deny\"\n", 2, &["`;`"]),
        ("an empty method list", "[[rule]]\npath = \"/x\"\naccess = \"deny\"\nmethods = []\n", 4, &["`methods` is empty"]),
        ("an unknown method", "[[rule]]\npath = \"/x\"\naccess = \"deny\"\nmethods = [\"GET\",\n  \"FETCH\"]\n", 5, &["`FETCH`", "GET, HEAD"]),
        ("a lower-case method", "[[rule]]\npath = \"/x\"\nmethods = [\"get\"]\naccess = \"deny\"\n", 3, &["write \"GET\""]),
        ("scopes with anonymous", "[[rule]]\npath = \"/x\"\naccess = \"anonymous\"\nscopes = [\"a\"]\n", 3, &["`scopes` together with `access = \"anonymous\"`"]),
        ("scopes with deny", "[[rule]]\npath = \"/x\"\nscopes = [\"a\"]\naccess = \"deny\"\n", 4, &["`access = \"deny\"`"]),
        ("neither access nor scopes", "default = \"deny\"\n\n[[rule]]\npath = \"/x\"\n", 3, &["neither `access` nor `scopes`"]),
        ("an empty scope list", "[[rule]]\npath = \"/x\"\nscopes = []\n", 3, &["`scopes` is empty"]),
        ("a scope with a space", "[[rule]]\npath = \"/x\"\nscopes = [\"a b\"]\n", 3, &["\"a b\" is not a scope name"]),
        ("an unknown access", "[[rule]]\npath = \"/x\"\naccess = \"public\"\n", 3, &["`access = \"public\"`", "\"anonymous\""]),
        ("an unknown default", "default = \"allow\"\n", 1, &["`default = \"allow\"`"]),
        // The `policy` fuzz target's finding: text quoted from the file broke the line.
        ("a newline in a path", "[[rule]]\npath = \"/a\\\\b\\nc\"\naccess = \"deny\"\n", 2, &["backslash", "\"/a\\\\b\\nc\""]),
        ("a newline in a method", "[[rule]]\npath = \"/x\"\nmethods = [\"G\\nET\"]\naccess = \"deny\"\n", 3, &["`G\\nET` is not a method"]),
        ("case_sensitive that is not a boolean", "case_sensitive = \"no\"\n", 1, &[]),
    ];
    for (case, text, line, needles) in cases {
        let error = Policy::parse(text, "p.toml").err();
        let error = error.unwrap_or_else(|| panic!("{case}: accepted"));
        let message = error.to_string();
        assert_eq!(error.line(), Some(*line), "{case}: {message}");
        assert!(
            message.starts_with(&format!("p.toml:{line}: ")),
            "{case}: {message}"
        );
        assert!(!message.contains('\n'), "{case}: one line: {message:?}");
        for needle in *needles {
            assert!(message.contains(needle), "{case}: {message} lacks {needle}");
        }
    }
}

#[test]
fn a_file_that_cannot_be_read_is_named_without_a_line() {
    let error = Policy::load(Path::new("/nonexistent/policy.toml")).unwrap_err();
    assert_eq!(error.line(), None);
    let message = error.to_string();
    assert!(
        message.starts_with("/nonexistent/policy.toml: cannot be read ("),
        "{message}"
    );
}

fn segment() -> impl Strategy<Value = String> {
    "[a-c]{1,2}"
}

proptest! {
    /// Each rule has its own scope: the decision names the first rule that matches alone.
    #[test]
    fn the_first_matching_rule_decides(
        rules in prop::collection::vec(
            (prop::collection::vec(prop_oneof![segment(), Just("{x}".to_owned())], 0..3), any::<bool>()),
            1..6,
        ),
        path in prop::collection::vec(segment(), 0..4),
    ) {
        let patterns: Vec<String> = rules
            .iter()
            .map(|(segments, rest)| {
                let mut pattern: String = segments.iter().map(|s| format!("/{s}")).collect();
                if *rest {
                    pattern.push_str("/**");
                }
                if pattern.is_empty() {
                    pattern.push('/');
                }
                pattern
            })
            .collect();
        let rule = |i: usize, pattern: &str| {
            format!("[[rule]]\npath = \"{pattern}\"\nscopes = [\"r{i}\"]\n")
        };
        let all: String = patterns.iter().enumerate().map(|(i, p)| rule(i, p)).collect();
        let path = format!("/{}", path.join("/"));
        let whole = policy(&format!("default = \"deny\"\n{all}"));
        let first = patterns.iter().enumerate().find(|(i, pattern)| {
            policy(&format!("default = \"deny\"\n{}", rule(*i, pattern)))
                .decide(&Method::GET, &path) != Access::Deny
        });
        let expected = first.map(|(i, _)| vec![format!("r{i}")]);
        let decided = match whole.decide(&Method::GET, &path) {
            Access::Authenticated { scopes } => Some(scopes.to_vec()),
            _ => None,
        };
        prop_assert_eq!(decided, expected, "{:?} on {}", patterns, path);
    }

    #[test]
    fn a_named_segment_never_matches_across_a_slash(
        one in segment(),
        more in prop::collection::vec(segment(), 1..3),
    ) {
        let policy = policy("default = \"deny\"\n[[rule]]\npath = \"/a/{id}\"\naccess = \"anonymous\"\n");
        prop_assert_eq!(policy.decide(&Method::GET, &format!("/a/{one}")), Access::Anonymous);
        let deeper = format!("/a/{one}/{}", more.join("/"));
        prop_assert_eq!(policy.decide(&Method::GET, &deeper), Access::Deny);
    }

    #[test]
    fn a_trailing_double_star_matches_its_prefix_and_everything_below_only(
        prefix in prop::collection::vec(segment(), 1..3),
        below in prop::collection::vec(segment(), 0..3),
        other in segment(),
    ) {
        let prefix = format!("/{}", prefix.join("/"));
        let policy = policy(&format!(
            "default = \"deny\"\n[[rule]]\npath = \"{prefix}/**\"\naccess = \"anonymous\"\n"
        ));
        let inside = [prefix.clone(), format!("{prefix}/"), format!("{prefix}/{}", below.join("/"))];
        for path in &inside {
            prop_assert_eq!(policy.decide(&Method::GET, path), Access::Anonymous, "{}", path);
        }
        // A longer last segment, or the prefix below another segment, is outside.
        for path in [format!("{prefix}x"), format!("/{other}z{prefix}")] {
            prop_assert_eq!(policy.decide(&Method::GET, &path), Access::Deny, "{}", path);
        }
    }

    /// Paths built from the pieces attacks are made of: whatever `normalize` accepts is a
    /// fixed point, clean, and read alike by the laxest upstream.
    #[test]
    fn normalize_is_idempotent_and_its_output_is_unambiguous(
        pieces in prop::collection::vec(prop::sample::select(vec![
            "/", "/", ".", "..", "%2e", "%2E", "%2f", "a", "A", "%41", "%61", "%25", "%32", "%c0",
            "%ae", "%c3", "%a9", ";", "\\", "%", "é", "\u{FF0E}", " ", "?", "%3a", "~", "%7E",
        ]), 0..12),
    ) {
        let raw = format!("/{}", pieces.concat());
        if let Ok(path) = normalize(&raw) {
            prop_assert_eq!(normalize(&path), Ok(path.clone()), "{}", raw);
            prop_assert!(path.starts_with('/'));
            for bad in ["/../", "/./", "//", "%2F", "%2f", "\0", ";", "\\"] {
                prop_assert!(!path.contains(bad), "{} -> {} holds {:?}", raw, path, bad);
            }
            prop_assert!(!path.ends_with("/..") && !path.ends_with("/."), "{} -> {}", raw, path);
            prop_assert_eq!(lax_reading(&path), decode(&path), "{}", raw);
        }
    }
}
