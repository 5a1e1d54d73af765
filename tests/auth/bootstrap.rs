//! Start-up with authentication, black-box: the initial user that
//! bootstraps a missing htpasswd file, and the errors when it is missing.

use crate::support;

use support::auth::*;

#[test]
fn initial_user_bootstraps_a_missing_htpasswd_file() {
    let setup = Setup::new();
    let config = setup.config("");
    assert!(!setup.htpasswd().exists());
    let env = [
        ("BERTH_INITIAL_USER", "root"),
        ("BERTH_INITIAL_PASSWORD", "first-password"),
    ];
    let s = setup.start_cmd(setup.command(Some(&config), &env));
    assert!(setup.htpasswd().exists());
    assert_eq!(
        get(&s, "/v2/", Some(("root", "first-password"))).status(),
        200
    );
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(setup.htpasswd())
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(mode & 0o077, 0, "the htpasswd file is readable by others");
    drop(s);
    // An existing file is never overwritten by the bootstrap.
    let env = [
        ("BERTH_INITIAL_USER", "root"),
        ("BERTH_INITIAL_PASSWORD", "other-password"),
    ];
    let s = setup.start_cmd(setup.command(Some(&config), &env));
    assert_eq!(
        get(&s, "/v2/", Some(("root", "first-password"))).status(),
        200
    );
    expect_challenge(get(&s, "/v2/", Some(("root", "other-password"))));
    assert!(!s.logs().contains("other-password"));
    drop(s);
    // Once the file exists the variables are not needed: a compose file
    // that still names the user but no longer the password starts.
    let s = setup.start_cmd(setup.command(Some(&config), &[("BERTH_INITIAL_USER", "root")]));
    assert_eq!(
        get(&s, "/v2/", Some(("root", "first-password"))).status(),
        200
    );
}

#[test]
fn a_missing_htpasswd_file_stops_start_up_with_advice() {
    let setup = Setup::new();
    let config = setup.config("");
    let out = setup.command(Some(&config), &[]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("htpasswd") && err.contains("BERTH_INITIAL_USER"),
        "{err}"
    );
    // Only one of the bootstrap variables is a configuration error.
    let out = setup
        .command(Some(&config), &[("BERTH_INITIAL_USER", "root")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BERTH_INITIAL_PASSWORD"));
    // An empty password is no password: no user is made with it.
    let out = setup
        .command(
            Some(&config),
            &[
                ("BERTH_INITIAL_USER", "root"),
                ("BERTH_INITIAL_PASSWORD", ""),
            ],
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BERTH_INITIAL_PASSWORD"));
    assert!(!setup.htpasswd().exists());
    // Access rules without authentication are refused too.
    let p = setup.dir.path().join("open.toml");
    std::fs::write(&p, "[access]\nanonymous_pull = [\"x\"]\n").unwrap();
    let out = berth()
        .args(["check-config", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
