//! User idle time from systemd-logind's `IdleHint`, read over D-Bus through
//! `loginctl` (part of systemd wherever logind runs).
//!
//! A D-Bus client library was tried first: zbus 6 took over two minutes to
//! build on the project's shared two-core build machine and offers no
//! blocking API (it needs an async runtime), so the sensor asks `loginctl`
//! instead: same bus, same properties, no new dependency. Every call is
//! bounded by a timeout and an output limit.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sensors::UserIdle;

/// Longest a `loginctl` call may take.
const TIMEOUT: Duration = Duration::from_millis(1500);
/// Largest `loginctl` output read.
const MAX_OUTPUT: u64 = 256 * 1024;
/// At most this many sessions are asked about.
const MAX_SESSIONS: usize = 64;

/// What logind says about the user, or `None` when logind is not reachable
/// or has no active user session (the caller then falls back).
pub(crate) fn idle() -> Option<UserIdle> {
    let list = run(&["list-sessions", "--no-legend", "--no-pager"])?;
    let ids: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| {
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .take(MAX_SESSIONS)
        .collect();
    if ids.is_empty() {
        return None;
    }
    let mut args = vec!["show-session"];
    args.extend(ids);
    args.extend([
        "-p",
        "Active",
        "-p",
        "Class",
        "-p",
        "IdleHint",
        "-p",
        "IdleSinceHint",
        "--no-pager",
    ]);
    let text = run(&args)?;
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_micros();
    parse_sessions(&text, u64::try_from(now_us).ok()?)
}

/// Reads `show-session` output (blocks of `Key=value` lines separated by
/// blank lines) at `now_us` (Unix microseconds).
pub(crate) fn parse_sessions(text: &str, now_us: u64) -> Option<UserIdle> {
    let mut any_user = false;
    let mut latest_idle_since: Option<u64> = None;
    for block in text.split("\n\n") {
        let get = |key: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        };
        if get("Class") != Some("user") || get("Active") != Some("yes") {
            continue;
        }
        any_user = true;
        match get("IdleHint") {
            Some("no") => {
                return Some(UserIdle {
                    idle_s: 0.0,
                    at_least: false,
                });
            }
            Some("yes") => {
                let since = get("IdleSinceHint")?
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s > 0)?;
                latest_idle_since = Some(latest_idle_since.map_or(since, |l| l.max(since)));
            }
            _ => return None,
        }
    }
    if !any_user {
        return None;
    }
    let since = latest_idle_since?;
    Some(UserIdle {
        idle_s: now_us.saturating_sub(since) as f64 / 1e6,
        at_least: false,
    })
}

fn run(args: &[&str]) -> Option<String> {
    let mut child = Command::new("loginctl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    return None;
                }
                let mut out = Vec::new();
                child
                    .stdout
                    .take()?
                    .take(MAX_OUTPUT)
                    .read_to_end(&mut out)
                    .ok()?;
                return String::from_utf8(out).ok();
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::debug!("loginctl did not answer in time");
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_active_session_that_is_not_idle_means_the_user_is_there() {
        let text = "Active=yes\nClass=user\nIdleHint=no\nIdleSinceHint=0\n\nActive=no\nClass=greeter\nIdleHint=yes\nIdleSinceHint=5\n";
        let idle = parse_sessions(text, 10_000_000).expect("answer");
        assert_eq!(idle.idle_s, 0.0);
    }

    #[test]
    fn idle_sessions_count_from_the_latest_idle_since() {
        let text = "Active=yes\nClass=user\nIdleHint=yes\nIdleSinceHint=4000000\n\nClass=user\nActive=yes\nIdleHint=yes\nIdleSinceHint=7000000\n";
        let idle = parse_sessions(text, 10_000_000).expect("answer");
        assert_eq!(idle.idle_s, 3.0);
        assert!(!idle.at_least);
    }

    #[test]
    fn no_active_user_session_or_garbage_is_no_answer() {
        assert_eq!(
            parse_sessions("Active=no\nClass=user\nIdleHint=yes\n", 1),
            None
        );
        assert_eq!(parse_sessions("", 1), None);
        assert_eq!(
            parse_sessions("Active=yes\nClass=user\nIdleHint=maybe\n", 1),
            None
        );
        assert_eq!(
            parse_sessions("Active=yes\nClass=user\nIdleHint=yes\nIdleSinceHint=x\n", 1),
            None
        );
    }
}
