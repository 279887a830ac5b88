//! Start-up with a bad setting: the real binary, an empty environment, a fresh working
//! directory. Exit code 2 and one `error: ` line naming the variable; never a panic.

use std::io::Read;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use crate::helpers::{binary_in, wait_at_most};

const VALID_ISSUER: &str = "https://a.example/oauth2/default";

/// What the binary did: its exit code and everything it printed.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary in `dir` with only `env` (and `PATH`) and `args`, for at most 10 s.
fn run_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Outcome {
    let mut command = binary_in(dir);
    command.envs(env.iter().copied()).args(args);
    let mut child = command.spawn().expect("the binary starts");
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    let (stdout, stderr) = drain(&mut child);
    let status = status.unwrap_or_else(|| {
        panic!("api-guard {args:?} with {env:?} did not exit within 10 s; stderr: {stderr}")
    });
    Outcome {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Runs the binary in a fresh temporary directory.
fn run(env: &[(&str, &str)], args: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().expect("a temporary directory");
    run_in(dir.path(), env, args)
}

fn drain(child: &mut Child) -> (String, String) {
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).expect("stdout is text");
    }
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).expect("stderr is text");
    }
    (stdout, stderr)
}

/// Asserts exit code 2, exactly one stderr line starting with `error: ` that contains every
/// one of `needles`, and no panic. Returns the line.
#[track_caller]
fn assert_one_error_line(outcome: &Outcome, needles: &[&str], case: &str) -> String {
    let stderr = &outcome.stderr;
    assert!(!stderr.contains("panicked"), "{case}: panicked: {stderr}");
    assert_eq!(outcome.code, Some(2), "{case}: exit code; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{case}: stderr must be one line: {stderr:?}"
    );
    let line = lines[0];
    assert!(line.starts_with("error: "), "{case}: {line:?}");
    for needle in needles {
        assert!(
            line.contains(needle),
            "{case}: {line:?} does not name {needle:?}"
        );
    }
    line.to_owned()
}

/// A bad start-up: what it is, its environment besides `PATH`, its arguments, and what its
/// error line must contain.
type Case<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [&'a str],
    &'a [&'a str],
);

#[test]
fn every_bad_setting_stops_start_up_with_exit_code_2_and_one_line_naming_it() {
    let issuer = ("AUTH_ISSUER", VALID_ISSUER);
    // A setting that is wrongly accepted must not collide with a real port: bind port 0.
    let port_0 = ("BIND_ADDR", "127.0.0.1:0");
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("no issuer at all", &[port_0], &[], &["AUTH_ISSUER", "OKTA_DOMAIN", "--dev"]),
        ("an http issuer on a public host", &[("AUTH_ISSUER", "http://example.com/oauth2/default"), port_0], &[], &["AUTH_ISSUER", "https"]),
        ("an issuer that is not a URL", &[("AUTH_ISSUER", "not a url"), port_0], &[], &["AUTH_ISSUER", "`not a url`"]),
        ("both AUTH_ISSUER and OKTA_DOMAIN", &[issuer, ("OKTA_DOMAIN", "dev-1.okta.com"), port_0], &[], &["AUTH_ISSUER", "OKTA_DOMAIN"]),
        ("an Okta domain with a path", &[("OKTA_DOMAIN", "https://dev-1.okta.com/some/path"), port_0], &[], &["OKTA_DOMAIN"]),
        ("a shared-secret algorithm", &[issuer, ("AUTH_ALGORITHMS", "HS256"), port_0], &[], &["AUTH_ALGORITHMS", "`HS256`"]),
        ("the `none` algorithm", &[issuer, ("AUTH_ALGORITHMS", "none"), port_0], &[], &["AUTH_ALGORITHMS", "`none`"]),
        ("a leeway that is not a number", &[issuer, ("AUTH_LEEWAY_SECS", "abc"), port_0], &[], &["AUTH_LEEWAY_SECS", "`abc`"]),
        ("a leeway of more than 300 s", &[issuer, ("AUTH_LEEWAY_SECS", "100000"), port_0], &[], &["AUTH_LEEWAY_SECS", "300"]),
        ("an empty audience", &[issuer, ("AUTH_AUDIENCE", ""), port_0], &[], &["AUTH_AUDIENCE", "at least one"]),
        ("a bind address that is not one", &[issuer, ("BIND_ADDR", "nonsense")], &[], &["BIND_ADDR", "`nonsense`"]),
        ("zero workers", &[issuer, ("WORKERS", "0"), port_0], &[], &["WORKERS", "`0`"]),
        ("CORS `*` mixed with an origin after it", &[issuer, ("CORS_ALLOWED_ORIGINS", "*,https://a.example"), port_0], &[], &["CORS_ALLOWED_ORIGINS", "one or the other"]),
        ("CORS `*` mixed with an origin before it", &[issuer, ("CORS_ALLOWED_ORIGINS", "https://a.example *"), port_0], &[], &["CORS_ALLOWED_ORIGINS", "one or the other"]),
        ("AUTH_REQUIRE_AT_JWT that is not a boolean", &[issuer, ("AUTH_REQUIRE_AT_JWT", "maybe"), port_0], &[], &["AUTH_REQUIRE_AT_JWT", "`maybe`"]),
        ("a CORS origin with a path", &[issuer, ("CORS_ALLOWED_ORIGINS", "https://a.example/path"), port_0], &[], &["CORS_ALLOWED_ORIGINS", "https://a.example/path"]),
        ("an http JWKS URL on a public host", &[issuer, ("AUTH_JWKS_URI", "http://example.com/keys"), port_0], &[], &["AUTH_JWKS_URI", "https"]),
        ("--dev on an address other machines reach", &[("BIND_ADDR", "0.0.0.0:0")], &["--dev"], &["BIND_ADDR", "loopback"]),
        ("an Okta authorization server id with a slash", &[("OKTA_DOMAIN", "dev-1.okta.com"), ("OKTA_AUTH_SERVER", "a/b"), port_0], &[], &["OKTA_AUTH_SERVER", "`a/b`"]),
        ("a required scope with a quote", &[issuer, ("AUTH_REQUIRED_SCOPES", "read \"all\""), port_0], &[], &["AUTH_REQUIRED_SCOPES", "scope name"]),
        ("a zero refresh floor", &[issuer, ("AUTH_JWKS_MIN_REFRESH_SECS", "0"), port_0], &[], &["AUTH_JWKS_MIN_REFRESH_SECS", "`0`"]),
        ("a refresh ceiling of a year", &[issuer, ("AUTH_JWKS_MAX_REFRESH_SECS", "31536000"), port_0], &[], &["AUTH_JWKS_MAX_REFRESH_SECS", "`31536000`"]),
        ("a ceiling below the floor", &[issuer, ("AUTH_JWKS_MIN_REFRESH_SECS", "600"), ("AUTH_JWKS_MAX_REFRESH_SECS", "60"), port_0], &[], &["AUTH_JWKS_MAX_REFRESH_SECS", "AUTH_JWKS_MIN_REFRESH_SECS"]),
        ("a zero cooldown", &[issuer, ("AUTH_JWKS_COOLDOWN_SECS", "0"), port_0], &[], &["AUTH_JWKS_COOLDOWN_SECS", "`0`"]),
        ("a max staleness that is not a number", &[issuer, ("AUTH_JWKS_MAX_STALE_SECS", "1d"), port_0], &[], &["AUTH_JWKS_MAX_STALE_SECS", "`1d`"]),
        ("a malformed log filter", &[issuer, ("RUST_LOG", "x==="), port_0], &[], &["RUST_LOG", "`x===`"]),
        ("an unknown DPoP mode", &[issuer, ("AUTH_DPOP", "maybe"), port_0], &[], &["AUTH_DPOP", "`maybe`", "required"]),
        ("DPoP nonces without a secret", &[issuer, ("DPOP_NONCES", "true"), port_0], &[], &["DPOP_NONCE_SECRET", "DPOP_NONCES=true"]),
        ("a short DPoP nonce secret", &[issuer, ("DPOP_NONCES", "true"), ("DPOP_NONCE_SECRET", "short"), port_0], &[], &["DPOP_NONCE_SECRET", "32 bytes"]),
        ("a zero DPoP window", &[issuer, ("DPOP_WINDOW_SECS", "0"), port_0], &[], &["DPOP_WINDOW_SECS", "`0`"]),
        ("a replay store that is not redis://host:port", &[issuer, ("DPOP_REPLAY_STORE", "http://127.0.0.1:6379"), port_0], &[], &["DPOP_REPLAY_STORE", "redis://host:port"]),
        ("an unknown log format", &[issuer, ("LOG_FORMAT", "yaml"), port_0], &[], &["LOG_FORMAT", "`yaml`", "json"]),
        ("a drain as long as the shutdown timeout", &[issuer, ("SHUTDOWN_DRAIN_SECS", "30"), port_0], &[], &["SHUTDOWN_DRAIN_SECS", "SHUTDOWN_TIMEOUT_SECS"]),
        ("a zero shutdown timeout", &[issuer, ("SHUTDOWN_TIMEOUT_SECS", "0"), port_0], &[], &["SHUTDOWN_TIMEOUT_SECS", "`0`"]),
        ("a zero keep-alive", &[issuer, ("KEEP_ALIVE_SECS", "0"), port_0], &[], &["KEEP_ALIVE_SECS", "`0`"]),
        ("a trusted proxy that is a host name", &[issuer, ("TRUSTED_PROXIES", "10.0.0.0/8,lb.internal"), port_0], &[], &["TRUSTED_PROXIES", "`lb.internal`"]),
        ("a metrics address without a port", &[issuer, ("METRICS_ADDR", "127.0.0.1"), port_0], &[], &["METRICS_ADDR", "`127.0.0.1`"]),
        ("a public URL with a path", &[issuer, ("PUBLIC_URL", "https://api.example.com/api"), port_0], &[], &["PUBLIC_URL", "has a path"]),
        ("an http public URL on a public host", &[issuer, ("PUBLIC_URL", "http://api.example.com"), port_0], &[], &["PUBLIC_URL", "https"]),
        ("a public URL with a query", &[issuer, ("PUBLIC_URL", "https://api.example.com?x=1"), port_0], &[], &["PUBLIC_URL", "query"]),
        ("a token URL that is not a URL", &[issuer, ("AUTH_TOKEN_URL", "v1/token"), port_0], &[], &["AUTH_TOKEN_URL", "`v1/token`"]),
        ("an http token URL on a public host", &[issuer, ("AUTH_TOKEN_URL", "http://example.com/v1/token"), port_0], &[], &["AUTH_TOKEN_URL", "https"]),
        ("an empty dev client secret", &[("DEV_CLIENT_SECRET", " "), port_0], &["--dev"], &["DEV_CLIENT_SECRET", "empty"]),
        ("AUTH_ISSUER and the Okta starter's OKTA_OAUTH2_ISSUER differ", &[issuer, ("OKTA_OAUTH2_ISSUER", "https://b.example/oauth2/default"), port_0], &[], &["AUTH_ISSUER", "OKTA_OAUTH2_ISSUER", "differs"]),
        ("AUTH_AUDIENCE and OKTA_OAUTH2_AUDIENCE differ", &[issuer, ("AUTH_AUDIENCE", "api://a"), ("OKTA_OAUTH2_AUDIENCE", "api://b"), port_0], &[], &["AUTH_AUDIENCE", "OKTA_OAUTH2_AUDIENCE", "differs"]),
        ("an empty OKTA_OAUTH2_AUDIENCE", &[issuer, ("OKTA_OAUTH2_AUDIENCE", ""), port_0], &[], &["AUTH_AUDIENCE", "at least one"]),
        ("the issuer only in express-openid-connect's ISSUER_BASE_URL", &[("ISSUER_BASE_URL", VALID_ISSUER), port_0], &[], &["no issuer configured", "ISSUER_BASE_URL is set", "set AUTH_ISSUER"]),
        ("a CA file that does not exist", &[issuer, ("AUTH_CA_FILE", "no-such-ca.pem"), port_0], &[], &["AUTH_CA_FILE", "no-such-ca.pem", "cannot read"]),
        ("the issuer only in OIDC_ISSUER", &[("OIDC_ISSUER", VALID_ISSUER), port_0], &[], &["no issuer configured", "OIDC_ISSUER is set", "set AUTH_ISSUER"]),
        ("a socks proxy", &[issuer, ("HTTPS_PROXY", "socks5://proxy:1080"), port_0], &[], &["HTTPS_PROXY", "CONNECT only", "http://host:port"]),
        ("a lower-case proxy URL with a path", &[issuer, ("https_proxy", "http://proxy:3128/x"), port_0], &[], &["HTTPS_PROXY", "path or query"]),
        ("introspection without its client id", &[issuer, ("AUTH_INTROSPECTION", "opaque"), port_0], &[], &["AUTH_INTROSPECTION_CLIENT_ID", "is required with AUTH_INTROSPECTION=opaque"]),
        ("introspection without its client secret", &[issuer, ("AUTH_INTROSPECTION", "always"), ("AUTH_INTROSPECTION_CLIENT_ID", "c"), port_0], &[], &["AUTH_INTROSPECTION_CLIENT_SECRET", "is required"]),
        ("an unknown introspection mode", &[issuer, ("AUTH_INTROSPECTION", "sometimes"), port_0], &[], &["AUTH_INTROSPECTION", "`sometimes`", "opaque"]),
        ("an introspection timeout of zero", &[issuer, ("AUTH_INTROSPECTION", "opaque"), ("AUTH_INTROSPECTION_CLIENT_ID", "c"), ("AUTH_INTROSPECTION_CLIENT_SECRET", "s3cret-xyz"), ("AUTH_INTROSPECTION_TIMEOUT_MS", "0"), port_0], &[], &["AUTH_INTROSPECTION_TIMEOUT_MS", "`0`"]),
        ("an http introspection URL on a public host", &[issuer, ("AUTH_INTROSPECTION", "opaque"), ("AUTH_INTROSPECTION_CLIENT_ID", "c"), ("AUTH_INTROSPECTION_CLIENT_SECRET", "s3cret-xyz"), ("AUTH_INTROSPECTION_URL", "http://example.com/introspect"), port_0], &[], &["AUTH_INTROSPECTION_URL", "https"]),
        ("an upstream URL with a path", &[issuer, ("UPSTREAM_URL", "http://127.0.0.1:3000/api"), port_0], &[], &["UPSTREAM_URL", "has a path"]),
        ("an upstream that is not http", &[issuer, ("UPSTREAM_URL", "127.0.0.1:3000"), port_0], &[], &["UPSTREAM_URL", "http://"]),
        ("a zero body limit", &[issuer, ("UPSTREAM_MAX_BODY_BYTES", "0"), port_0], &[], &["UPSTREAM_MAX_BODY_BYTES", "`0`"]),
        ("a non-boolean token forwarding", &[issuer, ("UPSTREAM_FORWARD_TOKEN", "yes"), port_0], &[], &["UPSTREAM_FORWARD_TOKEN", "`yes`"]),
        ("a zero upstream timeout", &[issuer, ("UPSTREAM_TIMEOUT_SECS", "0"), port_0], &[], &["UPSTREAM_TIMEOUT_SECS", "`0`"]),
        ("a policy file that does not exist", &[issuer, ("AUTH_POLICY_FILE", "no-such-policy.toml"), port_0], &[], &["AUTH_POLICY_FILE (--policy-file): no-such-policy.toml: cannot be read"]),
    ];
    for (case, env, args, needles) in cases {
        let outcome = run(env, args);
        assert_one_error_line(&outcome, needles, case);
    }
}

#[test]
fn the_introspection_secret_is_in_neither_help_nor_errors() {
    let secret = "s3cret-from-the-environment";
    let help = run(&[("AUTH_INTROSPECTION_CLIENT_SECRET", secret)], &["--help"]);
    assert_eq!(help.code, Some(0), "stderr: {}", help.stderr);
    assert!(!help.stdout.contains(secret), "{}", help.stdout);
    let refused = run(
        &[
            ("AUTH_ISSUER", VALID_ISSUER),
            ("AUTH_INTROSPECTION", "always"),
            ("AUTH_INTROSPECTION_CLIENT_ID", "c"),
            ("AUTH_INTROSPECTION_CLIENT_SECRET", secret),
            ("AUTH_INTROSPECTION_URL", "http://example.com/introspect"),
            ("BIND_ADDR", "127.0.0.1:0"),
        ],
        &[],
    );
    assert_eq!(refused.code, Some(2));
    assert!(!refused.stderr.contains(secret), "{}", refused.stderr);
}

#[test]
fn a_malformed_dotenv_line_stops_start_up_naming_the_line_number_but_not_its_content() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let secret_looking = "THIS IS NOT AN ASSIGNMENT";
    std::fs::write(
        dir.path().join(".env"),
        format!("AUTH_ISSUER={VALID_ISSUER}\n{secret_looking}\n"),
    )
    .expect(".env is written");
    let outcome = run_in(dir.path(), &[("BIND_ADDR", "127.0.0.1:0")], &[]);
    let line = assert_one_error_line(&outcome, &[".env", "line 2"], "malformed .env");
    assert!(
        !outcome.stderr.contains(secret_looking),
        "the line's content is echoed: {line}"
    );
    assert!(
        !outcome.stderr.contains("NOT AN ASSIGNMENT"),
        "part of the line's content is echoed: {line}"
    );
}

#[test]
fn a_ca_file_that_is_not_pem_certificates_stops_start_up() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").expect("ca.pem is written");
    let env = [
        ("AUTH_ISSUER", VALID_ISSUER),
        ("AUTH_CA_FILE", "ca.pem"),
        ("BIND_ADDR", "127.0.0.1:0"),
    ];
    let outcome = run_in(dir.path(), &env, &[]);
    assert_one_error_line(&outcome, &["AUTH_CA_FILE", "no PEM"], "a CA file of text");
}

#[test]
fn a_bad_policy_file_stops_start_up_naming_the_file_and_the_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str)] = &[
        ("an unknown key", "default = \"deny\"\n\n[[rule]]\npath = \"/x\"\nacess = \"deny\"\n", "policy.toml:5: unknown field `acess`"),
        ("`**` in the middle", "[[rule]]\npath = \"/a/**/b\"\naccess = \"deny\"\n", "policy.toml:2: `path = \"/a/**/b\"` is not a pattern"),
        ("scopes with anonymous", "[[rule]]\npath = \"/x\"\naccess = \"anonymous\"\nscopes = [\"a\"]\n", "policy.toml:3: `scopes` together with `access = \"anonymous\"`"),
        ("TOML syntax", "[[rule]\n", "policy.toml:1: "),
    ];
    for (case, text, needle) in cases {
        std::fs::write(dir.path().join("policy.toml"), text).expect("policy.toml is written");
        let env = [
            ("AUTH_ISSUER", VALID_ISSUER),
            ("AUTH_POLICY_FILE", "policy.toml"),
            ("BIND_ADDR", "127.0.0.1:0"),
        ];
        let outcome = run_in(dir.path(), &env, &[]);
        let line = assert_one_error_line(&outcome, &[needle], case);
        assert!(
            line.starts_with("error: AUTH_POLICY_FILE (--policy-file): policy.toml:"),
            "{case}: {line}"
        );
    }
}

#[test]
fn a_dotenv_file_in_the_working_directory_is_read() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join(".env"),
        format!("AUTH_ISSUER={VALID_ISSUER}\nAUTH_LEEWAY_SECS=abc\n"),
    )
    .expect(".env is written");
    let outcome = run_in(dir.path(), &[("BIND_ADDR", "127.0.0.1:0")], &[]);
    assert_one_error_line(
        &outcome,
        &["AUTH_LEEWAY_SECS", "`abc`"],
        "AUTH_LEEWAY_SECS from .env",
    );
}

#[test]
fn a_dotenv_file_in_a_parent_directory_is_not_read() {
    let parent = tempfile::tempdir().expect("a temporary directory");
    let working = parent.path().join("service");
    std::fs::create_dir(&working).expect("a working directory");
    std::fs::write(
        parent.path().join(".env"),
        format!("AUTH_ISSUER={VALID_ISSUER}\nAUTH_LEEWAY_SECS=abc\n"),
    )
    .expect(".env is written");
    let outcome = run_in(&working, &[("BIND_ADDR", "127.0.0.1:0")], &[]);
    // Had the parent's .env been read, the error would be about AUTH_LEEWAY_SECS.
    assert_one_error_line(
        &outcome,
        &["AUTH_ISSUER", "no issuer configured"],
        ".env one directory up",
    );
}

#[test]
fn a_setting_given_as_a_flag_is_checked_like_its_variable() {
    let outcome = run(
        &[("AUTH_ISSUER", VALID_ISSUER), ("BIND_ADDR", "127.0.0.1:0")],
        &["--leeway-secs", "abc"],
    );
    assert_one_error_line(
        &outcome,
        &["AUTH_LEEWAY_SECS", "--leeway-secs", "`abc`"],
        "--leeway-secs abc",
    );
}

#[test]
fn help_lists_every_variable_of_the_configuration_contract_with_its_default() {
    let outcome = run(&[], &["--help"]);
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    let help = &outcome.stdout;
    // (variable, the default as `--help` shows it, or `None` where there is none)
    let table: &[(&str, Option<&str>)] = &[
        ("AUTH_ISSUER", None),
        ("OKTA_DOMAIN", None),
        ("OKTA_AUTH_SERVER", Some("[default: default]")),
        ("OKTA_OAUTH2_ISSUER", None),
        ("AUTH_AUDIENCE", Some("Default: api://default")),
        ("OKTA_OAUTH2_AUDIENCE", None),
        ("AUTH_JWKS_URI", Some("Default: discovered")),
        ("AUTH_TOKEN_URL", Some("Default: the `token_endpoint`")),
        ("PUBLIC_URL", Some("Default: http:// and the request's")),
        (
            "AUTH_ALGORITHMS",
            Some("[default: RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,EdDSA]"),
        ),
        ("AUTH_LEEWAY_SECS", Some("[default: 60]")),
        ("AUTH_REQUIRED_SCOPES", Some("Default: none")),
        ("BIND_ADDR", Some("[default: 127.0.0.1:8080]")),
        ("WORKERS", Some("Default: the number of cores")),
        ("CORS_ALLOWED_ORIGINS", Some("Default: none")),
        ("RUST_LOG", Some("[default: info]")),
        ("LOG_FORMAT", Some("[default: text]")),
        ("SHUTDOWN_TIMEOUT_SECS", Some("[default: 30]")),
        ("SHUTDOWN_DRAIN_SECS", Some("[default: 10]")),
        ("KEEP_ALIVE_SECS", Some("[default: 75]")),
        ("TRUSTED_PROXIES", Some("Default: none")),
        ("METRICS_ADDR", Some("Default: /metrics on BIND_ADDR")),
        ("AUTH_INTROSPECTION", Some("[default: off]")),
        (
            "AUTH_INTROSPECTION_URL",
            Some("Default: the `introspection_endpoint`"),
        ),
        ("AUTH_INTROSPECTION_CLIENT_ID", None),
        ("AUTH_INTROSPECTION_CLIENT_SECRET", None),
        ("AUTH_INTROSPECTION_CACHE_SECS", Some("[default: 60]")),
        ("AUTH_INTROSPECTION_TIMEOUT_MS", Some("[default: 5000]")),
        ("UPSTREAM_URL", Some("Default: unset")),
        ("UPSTREAM_FORWARD_TOKEN", Some("[default: false]")),
        ("UPSTREAM_PRESERVE_HOST", Some("[default: false]")),
        ("UPSTREAM_CONNECT_TIMEOUT_SECS", Some("[default: 5]")),
        ("UPSTREAM_TIMEOUT_SECS", Some("[default: 60]")),
        ("UPSTREAM_MAX_BODY_BYTES", Some("[default: 67108864]")),
        ("AUTH_DPOP", Some("[default: allowed]")),
        ("DPOP_WINDOW_SECS", Some("[default: 180]")),
        ("DPOP_REPLAY_STORE", Some("empty for this process only")),
        (
            "AUTH_POLICY_FILE",
            Some("Default: none, every request needs a valid token"),
        ),
    ];
    for (variable, default) in table {
        let entry = help_entry(help, variable)
            .unwrap_or_else(|| panic!("--help does not list {variable}:\n{help}"));
        if let Some(default) = default {
            assert!(
                entry.contains(default),
                "{variable}: {default:?} missing from {entry:?}"
            );
        }
    }
}

#[test]
fn help_groups_the_settings_under_headings_lists_choices_and_shows_no_empty_default() {
    let outcome = run(&[], &["--help"]);
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    let help = &outcome.stdout;
    // Each heading once, in this order, and each setting under its own.
    let headings = [
        ("Issuer and tokens:", "AUTH_ISSUER"),
        ("Key store:", "AUTH_CA_FILE"),
        ("Server:", "BIND_ADDR"),
        ("Gateway:", "UPSTREAM_URL"),
        ("DPoP and introspection:", "AUTH_DPOP"),
        ("Logging and metrics:", "LOG_FORMAT"),
        ("Shutdown:", "SHUTDOWN_DRAIN_SECS"),
        ("Development:", "DEV_CLIENT_SECRET"),
    ];
    let mut last = 0;
    for (i, (heading, setting)) in headings.iter().enumerate() {
        let at = help
            .lines()
            .position(|line| line == *heading)
            .unwrap_or_else(|| panic!("no heading {heading:?} in:\n{help}"));
        assert!(at > last, "{heading:?} is out of order:\n{help}");
        last = at;
        let section_end = headings
            .get(i + 1)
            .and_then(|(next, _)| help.lines().position(|line| line == *next))
            .unwrap_or(usize::MAX);
        let setting_at = help
            .lines()
            .position(|line| line.contains(&format!("[env: {setting}")))
            .unwrap_or_else(|| panic!("{setting} not in --help"));
        assert!(
            (at..section_end).contains(&setting_at),
            "{setting} is not under {heading:?}:\n{help}"
        );
    }
    assert!(
        !help.contains("[default: \"\"]"),
        "an empty default:\n{help}"
    );
    let log_format = help_entry(help, "LOG_FORMAT").expect("LOG_FORMAT is listed");
    assert!(
        log_format.contains("[possible values: text, json"),
        "{log_format}"
    );
    // Another tool's names are read only to say what to set instead.
    for foreign in ["ISSUER_BASE_URL", "OIDC_ISSUER"] {
        assert!(!help.contains(foreign), "{foreign} is offered:\n{help}");
    }
    // This build has the development issuer (the suite needs it), so it offers --dev.
    assert!(help.contains("--dev "), "{help}");
}

/// The entry of `--help` (from its flag to the next flag) that names `[env: VARIABLE`.
fn help_entry(help: &str, variable: &str) -> Option<String> {
    let mut entries: Vec<String> = Vec::new();
    for line in help.lines() {
        let flag = line.trim_start();
        if flag.starts_with("--")
            || flag.starts_with("-h,")
            || flag.starts_with("-V,")
            || entries.is_empty()
        {
            entries.push(String::new());
        }
        if let Some(entry) = entries.last_mut() {
            entry.push(' ');
            entry.push_str(line.trim());
        }
    }
    let tag = format!("[env: {variable}");
    entries.into_iter().find(|entry| {
        entry
            .match_indices(&tag)
            .any(|(at, _)| matches!(entry.as_bytes().get(at + tag.len()), Some(b'=' | b']')))
    })
}

#[test]
fn help_never_shows_the_proxy_credentials_of_the_environment() {
    let outcome = run(
        &[("HTTPS_PROXY", "http://ops:s3cret-pass@proxy.example:3128")],
        &["--help"],
    );
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert!(
        outcome.stdout.contains("--https-proxy"),
        "{}",
        outcome.stdout
    );
    assert!(!outcome.stdout.contains("s3cret"), "{}", outcome.stdout);
}

#[test]
fn a_bad_list_of_issuers_stops_start_up_with_exit_code_2_naming_the_setting() {
    let port_0 = ("BIND_ADDR", "127.0.0.1:0");
    let (a, b) = (VALID_ISSUER, "https://a.example/oauth2/aus0second");
    let twice = format!("{a},{b},{a}");
    let slash = format!("{a},{a}/");
    let both = format!("{a},{b}");
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("an empty item", &[("AUTH_ISSUER", &format!("{a},,{b}")), port_0], &[], &["AUTH_ISSUER", "item 2", "is empty"]),
        ("a trailing comma", &[("AUTH_ISSUER", &format!("{a},")), port_0], &[], &["AUTH_ISSUER", "item 2", "is empty"]),
        ("an issuer listed twice", &[("AUTH_ISSUER", &twice), port_0], &[], &["AUTH_ISSUER", "listed twice"]),
        ("an issuer with and without a trailing slash", &[("AUTH_ISSUER", &slash), port_0], &[], &["AUTH_ISSUER", "trailing `/`"]),
        ("an http issuer among https ones", &[("AUTH_ISSUER", &format!("{a},http://example.com/x")), port_0], &[], &["AUTH_ISSUER", "`http://example.com/x`", "https"]),
        ("one JWKS URL for several issuers", &[("AUTH_ISSUER", &both), ("AUTH_JWKS_URI", "https://a.example/keys"), port_0], &[], &["AUTH_JWKS_URI", "2 issuers", "leave it unset"]),
        ("OKTA_OAUTH2_ISSUER naming another list", &[("AUTH_ISSUER", &both), ("OKTA_OAUTH2_ISSUER", a), port_0], &[], &["AUTH_ISSUER", "OKTA_OAUTH2_ISSUER", "differs"]),
        ("an Okta authorization server listed twice", &[("OKTA_DOMAIN", "dev-1.okta.com"), ("OKTA_AUTH_SERVER", "default,default"), port_0], &[], &["OKTA_AUTH_SERVER", "`default` is listed twice"]),
        ("an empty Okta authorization server", &[("OKTA_DOMAIN", "dev-1.okta.com"), ("OKTA_AUTH_SERVER", "default,,aus1"), port_0], &[], &["OKTA_AUTH_SERVER", "item 2", "is empty"]),
    ];
    for (case, env, args, needles) in cases {
        let outcome = run(env, args);
        assert_one_error_line(&outcome, needles, case);
    }
}
