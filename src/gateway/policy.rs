//! The route policy (`AUTH_POLICY_FILE`): which requests the gateway lets through anonymously,
//! which need a token (and which scopes), and which it denies.
//!
//! A TOML file of rules tried in order; the first whose `path` (and `methods`, if given)
//! matches decides. `default` decides for a path no rule matches (`authenticated` when
//! absent). Rules match the path [`normalize`](super::path::normalize) returns, never the
//! request's raw path. A file that does not read, parse or make sense stops start-up with
//! [`PolicyError`], which names the file and the line.
//!
//! ```toml
//! default = "authenticated"   # or "anonymous", "deny"
//!
//! [[rule]]
//! path = "/public/**"         # "/exact", "/a/{id}" (one segment), "/a/**" (the prefix and below)
//! access = "anonymous"        # or "authenticated", "deny"
//!
//! [[rule]]
//! path = "/orders/{id}"
//! methods = ["GET"]           # absent: every method; GET covers HEAD
//! scopes = ["orders:read"]    # all required; implies a valid token
//! ```
//!
//! ```
//! use actix_web::http::Method;
//! use api_guard_server::gateway::policy::{Access, Policy};
//!
//! let policy = Policy::parse("[[rule]]\npath = \"/health\"\naccess = \"anonymous\"\n", "p.toml")?;
//! assert_eq!(policy.decide(&Method::GET, "/health"), Access::Anonymous);
//! assert_eq!(policy.decide(&Method::GET, "/orders"), Access::Authenticated { scopes: &[] });
//! # Ok::<(), api_guard_server::gateway::policy::PolicyError>(())
//! ```
//!
//! Decisions, stated once:
//! - a rule with neither `access` nor `scopes` is an error: a security rule says what it does;
//! - `scopes` with `access = "authenticated"` is accepted (it says the same), with
//!   `"anonymous"` or `"deny"` it is an error;
//! - matching is case-sensitive unless the file says `case_sensitive = false` (for an upstream
//!   that routes case-insensitively: Express by default, ASP.NET);
//! - segments compare percent-decoded (`/v1/a:b` matches `/v1/a%3Ab`), since upstreams route
//!   on the decoded path;
//! - a trailing slash is ignored when matching (`/a` matches `/a/`, as Express and Spring
//!   route it), `{name}` matches one non-empty segment, `/a/**` matches `/a`, `/a/` and all
//!   below;
//! - `methods = ["GET"]` also covers HEAD (upstreams answer HEAD with their GET route); the
//!   nine methods of RFC 9110 and PATCH (RFC 5789) are known, upper case.

use std::ops::Range;
use std::path::Path;

use actix_web::http::Method;
use serde::Deserialize;
use toml::Spanned;

use super::path::{decoded, normalize};

/// The route policy: ordered rules and a default.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    default: Grant,
    case_sensitive: bool,
}

/// What a request needs, as the policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// Passes without a token (a token sent anyway is not checked).
    Anonymous,
    /// Needs a valid token carrying every one of `scopes` (none: any valid token).
    Authenticated {
        /// The scopes required, all of them.
        scopes: &'a [String],
    },
    /// Refused (403) whatever the token.
    Deny,
}

/// A policy file that stops start-up. `Display`: `FILE:LINE: what is wrong and what to do`
/// (`FILE: ...` when no line applies, e.g. the file cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    origin: String,
    line: Option<usize>,
    problem: String,
}

impl PolicyError {
    /// The line (from 1) the problem is on, when there is one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What is wrong and what to do, without the file and line.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.origin, self.problem),
            None => write!(f, "{}: {}", self.origin, self.problem),
        }
    }
}

/// What a rule or the default grants.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    Anonymous,
    Authenticated(Vec<String>),
    Deny,
}

impl Grant {
    fn access(&self) -> Access<'_> {
        match self {
            Grant::Anonymous => Access::Anonymous,
            Grant::Authenticated(scopes) => Access::Authenticated { scopes },
            Grant::Deny => Access::Deny,
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    /// `None`: every method.
    methods: Option<Vec<Method>>,
    grant: Grant,
}

/// A compiled `path`: segments, then whether `/**` ends it.
#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<Segment>,
    rest: bool,
}

#[derive(Debug, Clone)]
enum Segment {
    /// Percent-decoded: upstreams route on the decoded path, so `things:delete` and
    /// `things%3Adelete` are one segment to them, and to the rule.
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Any,
}

/// The file as TOML has it; every position kept for the error lines.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default: Option<Spanned<String>>,
    case_sensitive: Option<bool>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path: Spanned<String>,
    methods: Option<Spanned<Vec<Spanned<String>>>>,
    access: Option<Spanned<String>>,
    scopes: Option<Spanned<Vec<Spanned<String>>>>,
}

/// The methods a rule may name.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];

impl Policy {
    /// Reads and parses the policy file at `path`.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: origin.clone(),
            line: None,
            problem: format!("cannot be read ({e}); check the path and its permissions"),
        })?;
        Policy::parse(&text, &origin)
    }

    /// Parses a policy from `text`; `origin` names it in errors (the file name).
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let at = |span: Option<Range<usize>>, problem: String| PolicyError {
            origin: origin.to_owned(),
            line: Some(span.map_or(1, |span| line_of(text, span.start))),
            problem: one_line_escaped(&problem),
        };
        let raw: RawPolicy = toml::from_str(text)
            .map_err(|e| at(e.span(), one_line(e.message()).to_owned() + toml_hint(&e)))?;
        let default = match &raw.default {
            None => Grant::Authenticated(Vec::new()),
            Some(value) => access_word(value.get_ref())
                .ok_or_else(|| at(Some(value.span()), bad_access("default", value.get_ref())))?,
        };
        let rules = raw
            .rule
            .iter()
            .map(|rule| compile_rule(rule).map_err(|(span, problem)| at(Some(span), problem)))
            .collect::<Result<_, _>>()?;
        Ok(Policy {
            rules,
            default,
            case_sensitive: raw.case_sensitive.unwrap_or(true),
        })
    }

    /// The policy when `AUTH_POLICY_FILE` is unset: no rules, every request needs a token.
    pub fn everything_authenticated() -> Policy {
        Policy {
            rules: Vec::new(),
            default: Grant::Authenticated(Vec::new()),
            case_sensitive: true,
        }
    }

    /// What a request with `method` for `normalized_path` (the result of
    /// [`normalize`](super::path::normalize), never a raw path) needs: the first matching
    /// rule's access, else the default.
    pub fn decide(&self, method: &Method, normalized_path: &str) -> Access<'_> {
        self.rules
            .iter()
            .find(|rule| {
                rule.methods
                    .as_ref()
                    .is_none_or(|methods| methods.contains(method))
                    && rule.pattern.matches(normalized_path, self.case_sensitive)
            })
            .map_or(&self.default, |rule| &rule.grant)
            .access()
    }
}

impl Pattern {
    fn matches(&self, path: &str, case_sensitive: bool) -> bool {
        // Empty pieces are the root's and a trailing slash's (a normalised path has no `//`).
        let mut actual = path.split('/').filter(|piece| !piece.is_empty());
        for segment in &self.segments {
            let Some(piece) = actual.next() else {
                return false;
            };
            let fits = match segment {
                Segment::Any => true,
                Segment::Literal(text) if case_sensitive => text.bytes().eq(decoded(piece)),
                Segment::Literal(text) => text
                    .bytes()
                    .map(|b| b.to_ascii_lowercase())
                    .eq(decoded(piece).map(|b| b.to_ascii_lowercase())),
            };
            if !fits {
                return false;
            }
        }
        self.rest || actual.next().is_none()
    }
}

type Located = (Range<usize>, String);

fn compile_rule(rule: &Spanned<RawRule>) -> Result<Rule, Located> {
    let raw = rule.get_ref();
    let pattern = compile_pattern(raw.path.get_ref()).map_err(|problem| {
        (
            raw.path.span(),
            format!(
                "`path = {:?}` is not a pattern: {problem}; write \"/exact\", \"/a/{{id}}\" (one segment) or \"/a/**\" (the prefix and below)",
                raw.path.get_ref()
            ),
        )
    })?;
    let methods = raw.methods.as_ref().map(compile_methods).transpose()?;
    let scopes = raw.scopes.as_ref().map(compile_scopes).transpose()?;
    let access = match &raw.access {
        None => None,
        Some(word) => Some(
            access_word(word.get_ref())
                .ok_or_else(|| (word.span(), bad_access("access", word.get_ref())))?,
        ),
    };
    let grant = match (access, scopes) {
        (None, None) => {
            return Err((
                rule.span(),
                "this rule has neither `access` nor `scopes`; add `access = \"anonymous\"`, \"authenticated\" or \"deny\", or `scopes = [\"...\"]`".to_owned(),
            ));
        }
        (Some(grant), None) => grant,
        (None | Some(Grant::Authenticated(_)), Some(scopes)) => Grant::Authenticated(scopes),
        (Some(other), Some(_)) => {
            let (word, why) = if other == Grant::Anonymous {
                ("anonymous", "a scope can only be checked in a token")
            } else {
                ("deny", "a denied route takes no token")
            };
            let span = raw.access.as_ref().map_or(rule.span(), Spanned::span);
            return Err((
                span,
                format!(
                    "`scopes` together with `access = \"{word}\"`: {why}; remove `access` (scopes imply a valid token) or remove `scopes`"
                ),
            ));
        }
    };
    Ok(Rule {
        pattern,
        methods,
        grant,
    })
}

fn compile_pattern(path: &str) -> Result<Pattern, String> {
    let Some(body) = path.strip_prefix('/') else {
        return Err("it does not start with `/`".to_owned());
    };
    let mut pattern = Pattern {
        segments: Vec::new(),
        rest: false,
    };
    if body.is_empty() {
        return Ok(pattern);
    }
    let pieces: Vec<&str> = body.split('/').collect();
    for (i, piece) in pieces.iter().enumerate() {
        if pattern.rest {
            return Err("`**` may only end a pattern, as in \"/a/**\"".to_owned());
        }
        if *piece == "**" {
            pattern.rest = true;
        } else if piece.contains('*') {
            return Err(
                "`*` is only allowed as a final `/**`; use `{name}` for one segment".to_owned(),
            );
        } else if let Some(inner) = piece.strip_prefix('{') {
            let name = match inner.strip_suffix('}') {
                Some(name) if !name.contains(['{', '}']) => name,
                _ if inner.contains('}') => {
                    return Err(
                        "`{` and `}` may only enclose a whole segment, as in \"/a/{id}\""
                            .to_owned(),
                    );
                }
                _ => return Err("`{` is not closed by `}`".to_owned()),
            };
            if name.is_empty() {
                return Err("a segment name `{}` is empty; name it, as in `{id}`".to_owned());
            }
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "`{{{name}}}` is not a segment name (letters, digits and `_`; one whole segment)"
                ));
            }
            pattern.segments.push(Segment::Any);
        } else if piece.contains(['{', '}']) {
            return Err(
                "`{` and `}` may only enclose a whole segment, as in \"/a/{id}\"".to_owned(),
            );
        } else if piece.is_empty() {
            return Err(if i + 1 == pieces.len() {
                "it ends with `/`; remove it (a rule matches with or without a trailing slash)"
                    .to_owned()
            } else {
                "it has an empty segment (`//`)".to_owned()
            });
        } else {
            pattern.segments.push(Segment::Literal(literal(piece)?));
        }
    }
    Ok(pattern)
}

/// A literal segment as [`normalize`] would pass it, then decoded, as requests' segments
/// are compared.
fn literal(piece: &str) -> Result<String, String> {
    let normal = normalize(&format!("/{piece}")).map_err(|e| e.to_string())?;
    match normal.strip_prefix('/') {
        Some(segment) if !segment.is_empty() && !segment.contains('/') => {
            // `normalize` checked that the escapes decode to UTF-8.
            String::from_utf8(decoded(segment).collect())
                .map_err(|_| format!("`{piece}` does not decode to UTF-8"))
        }
        _ => Err("`.` and `..` segments never reach a rule; remove them".to_owned()),
    }
}

fn compile_methods(list: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<Method>, Located> {
    if list.get_ref().is_empty() {
        return Err((
            list.span(),
            "`methods` is empty, so the rule would match nothing; list methods, e.g. [\"GET\"], or remove `methods` to match every method".to_owned(),
        ));
    }
    let mut methods = Vec::new();
    for name in list.get_ref() {
        let text = name.get_ref();
        if !METHODS.contains(&text.as_str()) {
            let upper = text.to_ascii_uppercase();
            let problem = if METHODS.contains(&upper.as_str()) {
                format!("`{text}`: methods are upper case; write \"{upper}\"")
            } else {
                format!(
                    "`{text}` is not a method a rule can name; use {}",
                    METHODS.join(", ")
                )
            };
            return Err((name.span(), problem));
        }
        methods.push(
            Method::from_bytes(text.as_bytes())
                .map_err(|_| (name.span(), format!("`{text}` is not a method")))?,
        );
    }
    if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
        methods.push(Method::HEAD);
    }
    Ok(methods)
}

fn compile_scopes(list: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<String>, Located> {
    if list.get_ref().is_empty() {
        return Err((
            list.span(),
            "`scopes` is empty; list the scopes required, or write `access = \"authenticated\"` for any valid token".to_owned(),
        ));
    }
    list.get_ref()
        .iter()
        .map(|scope| {
            let text = scope.get_ref();
            // RFC 6749 §3.3 scope-token, as AUTH_REQUIRED_SCOPES checks it.
            let token = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
            if token {
                Ok(text.clone())
            } else {
                Err((
                    scope.span(),
                    format!(
                        "{text:?} is not a scope name (printable ASCII without spaces, quotes or backslashes)"
                    ),
                ))
            }
        })
        .collect()
}

fn access_word(word: &str) -> Option<Grant> {
    match word {
        "anonymous" => Some(Grant::Anonymous),
        "authenticated" => Some(Grant::Authenticated(Vec::new())),
        "deny" => Some(Grant::Deny),
        _ => None,
    }
}

fn bad_access(key: &str, word: &str) -> String {
    format!("`{key} = {word:?}`: write \"anonymous\", \"authenticated\" or \"deny\"")
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn one_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message).trim()
}

/// `problem` with its control characters escaped: text quoted from the file (a TOML string
/// may hold `\n`) never breaks the one error line.
fn one_line_escaped(problem: &str) -> String {
    let mut line = String::with_capacity(problem.len());
    for c in problem.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// A hint for the TOML errors whose fix is not in serde's message.
fn toml_hint(error: &toml::de::Error) -> &'static str {
    let message = error.message();
    if message.contains("unknown field") {
        "; check its spelling"
    } else if message.contains("missing field `path`") {
        "; every [[rule]] needs a `path`"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests;
