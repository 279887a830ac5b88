//! Build script: the commit this build is made from, for `api_guard_build_info{commit}`.
//! `API_GUARD_COMMIT` from the build environment wins (a container build has no `.git`);
//! else `git rev-parse --short=12 HEAD`; else nothing, and the metric says `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=API_GUARD_COMMIT");
    let from_env = std::env::var("API_GUARD_COMMIT")
        .ok()
        .filter(|c| is_commit(c));
    let commit = from_env.or_else(|| {
        // Rebuild when HEAD moves: its file, and the ref it points at (in this worktree's
        // git directory and the shared one).
        for what in ["HEAD", "refs/heads", "packed-refs"] {
            if let Some(path) = git(&["rev-parse", "--git-path", what]) {
                println!("cargo:rerun-if-changed={path}");
            }
        }
        git(&["rev-parse", "--short=12", "HEAD"]).filter(|c| is_commit(c))
    });
    if let Some(commit) = commit {
        println!("cargo:rustc-env=API_GUARD_BUILD_COMMIT={commit}");
    }
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Hex digits only, so nothing else reaches a label value.
fn is_commit(value: &str) -> bool {
    (7..=40).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_hexdigit())
}
