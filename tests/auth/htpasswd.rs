//! The htpasswd file, black-box: lines Berth cannot use, changes picked up
//! without a restart, and the `berth htpasswd` subcommand.

use crate::support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::auth::*;
use support::{have, wait_until};

#[test]
fn non_bcrypt_lines_are_reported_with_their_line_numbers_and_ignored() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    let good = std::fs::read_to_string(setup.htpasswd()).unwrap();
    let text = format!(
        "# team registry users\n\
         {}\n\
         md5user:$apr1$HfsVL2Mp$0Vb5ZC8cU7OJn7fnu6yw.1\n\
         shauser:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n\
         plainuser:secret\n\
         garbage line without colon\n",
        good.trim()
    );
    std::fs::write(setup.htpasswd(), text).unwrap();
    let s = setup.start("");
    assert_eq!(get(&s, "/v2/", ALICE).status(), 200);
    expect_challenge(get(&s, "/v2/", Some(("plainuser", "secret"))));
    expect_challenge(get(&s, "/v2/", Some(("md5user", "password"))));
    let logs = s.logs();
    for (line, what) in [
        (3, "MD5"),
        (4, "SHA-1"),
        (5, "not a bcrypt"),
        (6, "user:hash"),
    ] {
        let found = logs
            .lines()
            .any(|l| l.contains(&format!("line={line}")) && l.contains(what));
        assert!(found, "line {line} ({what}) is not reported:\n{logs}");
    }
    assert!(!logs.contains("0Vb5ZC8c"), "a hash is logged:\n{logs}");
    // `berth htpasswd list` reports the same lines.
    let out = berth()
        .args(["htpasswd", "--file"])
        .arg(setup.htpasswd())
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "alice");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("line 6"), "{err}");
}

#[test]
fn htpasswd_changes_apply_without_restart() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    setup.add_user("carol", "carol-secret");
    // Polling for the change fails logins on purpose: no lockout here.
    let s = setup.start("[access.lockout]\nfailures = 0\n");
    let bob = Some(("bob", "bob-secret"));
    assert_eq!(get(&s, "/v2/", ALICE).status(), 200);
    expect_challenge(get(&s, "/v2/", bob));
    // A new user can log in within seconds.
    setup.add_user("bob", "bob-secret");
    assert!(
        wait_until(Duration::from_secs(5), || get(&s, "/v2/", bob).status()
            == 200),
        "bob was not picked up"
    );
    // A removed user is refused within seconds, even with a cached login.
    let out = berth()
        .args(["htpasswd", "--file"])
        .arg(setup.htpasswd())
        .args(["remove", "alice"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        wait_until(Duration::from_secs(5), || get(&s, "/v2/", ALICE).status()
            == 401),
        "alice is still accepted"
    );
    // A changed password applies, and the old one stops working.
    setup.add_user("carol", "carol-new");
    assert!(wait_until(Duration::from_secs(5), || {
        get(&s, "/v2/", Some(("carol", "carol-new"))).status() == 200
    }));
    expect_challenge(get(&s, "/v2/", Some(("carol", "carol-secret"))));
    // A malformed file (no usable entry) keeps the users in force, and says why.
    std::fs::write(setup.htpasswd(), "this is not\nan htpasswd file\n").unwrap();
    assert!(wait_until(Duration::from_secs(5), || s
        .logs()
        .contains("keeping the users loaded before")));
    assert_eq!(get(&s, "/v2/", bob).status(), 200);
    // And an empty one, which editors that rewrite in place pass through.
    std::fs::write(setup.htpasswd(), "").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&s, "/v2/", bob).status(), 200);
    std::fs::write(setup.htpasswd(), "# only a comment\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&s, "/v2/", bob).status(), 200);
    // So does a file that disappeared.
    std::fs::remove_file(setup.htpasswd()).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&s, "/v2/", bob).status(), 200);
    // And a good file is taken again.
    setup.add_user("dave", "dave-secret");
    assert!(wait_until(Duration::from_secs(5), || {
        get(&s, "/v2/", Some(("dave", "dave-secret"))).status() == 200
    }));
    expect_challenge(get(&s, "/v2/", bob));
}

#[test]
fn htpasswd_subcommand_writes_files_apache_htpasswd_accepts() {
    let setup = Setup::new();
    let file = setup.htpasswd();
    add_user_cost(&file, "alice", "alice-secret", 5);
    add_user_cost(&file, "bob", "bob-secret", 5);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().all(|l| l.contains(":$2y$05$")), "{text}");
    if have("htpasswd") {
        let ok = Command::new("htpasswd")
            .arg("-vb")
            .arg(&file)
            .args(["alice", "alice-secret"])
            .output()
            .unwrap();
        assert!(ok.status.success(), "{ok:?}");
        let bad = Command::new("htpasswd")
            .arg("-vb")
            .arg(&file)
            .args(["alice", "nope"])
            .output()
            .unwrap();
        assert!(!bad.status.success());
    }
    // Changing a password keeps one line per user, and the file's owner
    // (root editing the file a registry running as another user reads).
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if is_root {
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
    }
    add_user_cost(&file, "alice", "alice-new", 5);
    if is_root {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&file).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "owner changed");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("alice:").count(), 1);
    let rm = |user: &str| {
        berth()
            .args(["htpasswd", "--file"])
            .arg(&file)
            .args(["remove", user])
            .output()
            .unwrap()
    };
    assert!(rm("alice").status.success());
    let out = rm("alice");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("alice"));
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 1);
    // No terminal and no --password-stdin: a clear error, nothing written.
    let out = berth()
        .args(["htpasswd", "--file"])
        .arg(&file)
        .args(["add", "carol"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
    // The file can also come from the config (registry:2's variable).
    let mut child = berth()
        .args(["htpasswd", "add", "dave", "--password-stdin", "--cost", "4"])
        .env("REGISTRY_AUTH_HTPASSWD_PATH", &file)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "dave-secret").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("dave:$2y$04$"));
}
