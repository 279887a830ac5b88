//! `api-guard explain`: the real binary, with the settings in its environment, against the
//! real development issuer. It must agree with the running service on every token of the
//! forged-token table, and never print the token or its signature.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use api_guard::Reason;
use serde_json::{Value, json};

use crate::forged::cases;
use crate::helpers::{binary_in, spawn_app, wait_at_most};

/// What one run of `api-guard explain` gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|_| panic!("not JSON:\n{}\n{}", self.stdout, self.stderr))
    }
}

/// Runs `api-guard explain ARGS` in a fresh directory with `env`, `stdin` on its standard
/// input; at most 20 s.
fn explain(env: &[(&str, &str)], args: &[&str], stdin: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), env, &[], args, stdin)
}

/// `api-guard FLAGS explain ARGS` in `dir` (which may hold a `.env`).
fn run_in(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    flags: &[&str],
    args: &[&str],
    stdin: &str,
) -> Run {
    let mut child = binary_in(dir)
        .envs(env.iter().copied())
        .args(flags)
        .arg("explain")
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let status = wait_at_most(&mut child, Duration::from_secs(20));
    let output = child.wait_with_output().unwrap();
    Run {
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[actix_web::test]
async fn explain_agrees_with_the_service_on_every_forged_token_and_a_valid_one() {
    let app = spawn_app().await;
    let issuer = app.issuer.issuer().to_owned();
    let env = [("AUTH_ISSUER", issuer.as_str())];
    let mut tokens: Vec<(String, String)> = cases(&app)
        .into_iter()
        .map(|case| (case.name.to_owned(), case.token))
        .collect();
    tokens.push(("a valid token".into(), app.token()));
    let mut disagreements = Vec::new();
    for (index, (name, token)) in tokens.iter().enumerate() {
        let served = app.whoami(token).await;
        // Half through the argument, half through stdin: both ways are the same check.
        let run = if index % 2 == 0 {
            explain(&env, &["--json", "-"], token)
        } else {
            explain(&env, &["--json", token], "")
        };
        let explained = run.json();
        let expected_code = match served.status {
            200 => 0,
            400 | 401 | 403 => 1,
            _ => 2,
        };
        let failing: Vec<&Value> = explained["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["verdict"] == "fail")
            .collect();
        if run.code != Some(expected_code)
            || explained["status"] != json!(served.status)
            || explained["error_description"] != served.body["error_description"]
            || (served.status != 200 && failing.is_empty())
        {
            disagreements.push(format!(
                "{name}: service {} {}; explain exit {:?}, {} {} (failing: {failing:?})\n{}",
                served.status,
                served.body["error_description"],
                run.code,
                explained["status"],
                explained["error_description"],
                run.stderr
            ));
        }
        if let Some((_, signature)) = token.rsplit_once('.')
            && signature.len() > 8
        {
            assert!(
                !run.stdout.contains(signature),
                "{name}: the signature is printed"
            );
        }
        assert!(
            !run.stdout.contains(token.as_str()),
            "{name}: the token is printed"
        );
    }
    assert!(
        disagreements.is_empty(),
        "explain and the service disagree on {} of {} tokens:\n{}",
        disagreements.len(),
        tokens.len(),
        disagreements.join("\n")
    );
}

#[actix_web::test]
async fn explain_prints_one_line_per_check_and_says_what_to_change() {
    let app = spawn_app().await;
    let issuer = app.issuer.issuer().to_owned();
    let mut claims = app.issuer.standard_claims(&["AccessAll"]);
    claims["aud"] = json!("api://orders");
    claims["email"] = json!("someone@example.com");
    let token = app.issuer.mint_with(app.issuer.standard_header(), claims);
    let run = explain(&[("AUTH_ISSUER", issuer.as_str())], &[token.as_str()], "");
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let names: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.trim_start().starts_with("->"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        &names[1..16],
        [
            "token",
            "header",
            "alg",
            "typ",
            "key",
            "signature",
            "claims",
            "iss",
            "aud",
            "exp",
            "nbf",
            "iat",
            "introspection",
            "scopes",
            "dpop"
        ],
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("-> aud is `api://orders`, AUTH_AUDIENCE is `api://default`: set AUTH_AUDIENCE=api://orders or request a token for this audience"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("in the key store of issuer {issuer}"))
    );
    assert!(
        run.stdout
            .contains("refused: 401 invalid_token (wrong_audience)"),
        "{}",
        run.stdout
    );
    // A valid token: its claims, the sensitive ones redacted.
    let mut claims = app.issuer.standard_claims(&["AccessAll"]);
    claims["email"] = json!("someone@example.com");
    let token = app.issuer.mint_with(app.issuer.standard_header(), claims);
    let run = explain(
        &[("AUTH_ISSUER", issuer.as_str())],
        &["--json", "-"],
        &token,
    );
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let explained = run.json();
    assert_eq!(explained["valid"], true);
    assert_eq!(explained["claims"]["email"], "[redacted]");
    assert!(!run.stdout.contains("someone@example.com"));
}

#[actix_web::test]
async fn explain_exits_2_for_a_configuration_or_usage_error() {
    let app = spawn_app().await;
    let issuer = app.issuer.issuer().to_owned();
    let no_issuer = explain(&[], &[&app.token()], "");
    assert_eq!(no_issuer.code, Some(2), "{}", no_issuer.stderr);
    assert!(
        no_issuer
            .stderr
            .starts_with("error: AUTH_ISSUER (--issuer): no issuer configured"),
        "{}",
        no_issuer.stderr
    );
    let empty_stdin = explain(&[("AUTH_ISSUER", issuer.as_str())], &["-"], "\n");
    assert_eq!(empty_stdin.code, Some(2));
    assert!(
        empty_stdin.stderr.contains("no token in stdin"),
        "{}",
        empty_stdin.stderr
    );
    let no_token = explain(&[("AUTH_ISSUER", issuer.as_str())], &[], "");
    assert_eq!(no_token.code, Some(2), "{}", no_token.stderr);
    let bad_setting = explain(
        &[
            ("AUTH_ISSUER", issuer.as_str()),
            ("AUTH_INTROSPECTION", "always"),
        ],
        &[&app.token()],
        "",
    );
    assert_eq!(bad_setting.code, Some(2));
    assert!(
        bad_setting.stderr.contains("AUTH_INTROSPECTION_CLIENT_ID"),
        "{}",
        bad_setting.stderr
    );
}

#[actix_web::test]
async fn explain_introspects_an_opaque_token_and_reports_a_revoked_one() {
    let app = spawn_app().await;
    let issuer = app.issuer.issuer().to_owned();
    let settings = app.issuer.settings();
    let env = [
        ("AUTH_ISSUER", issuer.as_str()),
        ("AUTH_INTROSPECTION", "opaque"),
        ("AUTH_INTROSPECTION_CLIENT_ID", settings.client_id.as_str()),
        (
            "AUTH_INTROSPECTION_CLIENT_SECRET",
            settings.client_secret.as_str(),
        ),
    ];
    let token = app.issuer.mint_opaque(&["AccessAll"]);
    let run = explain(&env, &["--json", &token], "");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let explained = run.json();
    let verdicts: Vec<(&str, &str)> = explained["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap(), c["verdict"].as_str().unwrap()))
        .collect();
    assert!(
        verdicts.contains(&("introspection", "pass")),
        "{verdicts:?}"
    );
    assert!(verdicts.contains(&("signature", "skipped")), "{verdicts:?}");
    // A wrong secret: not checkable (2), and the warning says why without the secret.
    let mut wrong = env;
    wrong[3].1 = "wrong-secret-Jq8";
    let run = explain(&wrong, &[&token], "");
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("status 401"), "{}", run.stderr);
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("wrong-secret-Jq8"));
    app.issuer.revoke(&token);
    let run = explain(&env, &["--json", &token], "");
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.json()["error_description"],
        Reason::Inactive.description()
    );
}

#[actix_web::test]
async fn explain_reads_the_settings_from_dotenv_the_environment_and_flags() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!("AUTH_ISSUER={}\n", app.issuer.issuer()),
    )
    .unwrap();
    let token = app.token();
    let from_dotenv = run_in(dir.path(), &[], &[], &[&token], "");
    assert_eq!(
        from_dotenv.code,
        Some(0),
        "{}{}",
        from_dotenv.stdout,
        from_dotenv.stderr
    );
    let with_flag = run_in(
        dir.path(),
        &[("AUTH_REQUIRED_SCOPES", "AccessAll")],
        &["--audience", "api://orders"],
        &["--json", &token],
        "",
    );
    assert_eq!(with_flag.code, Some(1));
    assert_eq!(with_flag.json()["reason"], "wrong_audience");
}
