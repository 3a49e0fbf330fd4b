//! The hidden `fog manpages DIR` (what `cargo xtask man` runs) writes a
//! page for `fog` and one per subcommand.

use assert_cmd::Command;

#[test]
fn manpages_are_written_for_fog_and_its_subcommands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man");
    Command::cargo_bin("fog")
        .expect("the fog binary is built")
        .arg("manpages")
        .arg(&out)
        .assert()
        .success();
    let main = std::fs::read_to_string(out.join("fog.1")).expect("fog.1 is written");
    assert!(
        main.starts_with(".ie") || main.contains(".TH"),
        "not roff:\n{main}"
    );
    assert!(main.contains("node"), "fog.1 does not mention `node`");
    assert!(main.contains("tui"), "fog.1 does not mention `tui`");
    for page in [
        "fog-job.1",
        "fog-job-run.1",
        "fog-tui.1",
        "fog-dao.1",
        "fog-completions.1",
    ] {
        assert!(out.join(page).is_file(), "{page} is missing");
    }
    let tui = std::fs::read_to_string(out.join("fog-tui.1")).unwrap();
    assert!(
        tui.contains("devnet"),
        "fog-tui.1 does not describe --devnet"
    );
    // The hidden command documents nobody.
    assert!(!out.join("fog-manpages.1").exists());
}

#[test]
fn the_hidden_command_is_not_in_help() {
    let output = Command::cargo_bin("fog")
        .expect("the fog binary is built")
        .arg("--help")
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(!help.contains("manpages"), "{help}");
}
