//! `hubtui hub enrollment` with the real binary: enrollments made on the command line are
//! the ones the hub serves, JSON out with --json, one sentence for bad input and for a
//! data dir whose hub is running.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hubtui");
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn enrollment(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .args(["hub", "enrollment"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[tokio::test]
async fn enrollments_from_the_command_line_are_served_by_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let added = json_of(&enrollment(
        dir.path(),
        &[
            "add",
            "dev-1",
            "--primary-key",
            KEY,
            "--device-id",
            "d1",
            "--json",
        ],
    ));
    assert_eq!(added["registrationId"], "dev-1");
    assert_eq!(added["deviceId"], "d1");
    assert_eq!(added["attestation"]["symmetricKey"]["primaryKey"], KEY);
    let group = json_of(&enrollment(
        dir.path(),
        &["add", "fleet", "--group", "--disabled", "--json"],
    ));
    assert_eq!(group["provisioningStatus"], "disabled");
    let human = enrollment(dir.path(), &["add", "dev-2"]);
    let text = String::from_utf8_lossy(&human.stdout).to_string();
    let scope = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("id scope:"))
        .expect("the id scope is printed")
        .trim()
        .to_string();

    let listed = json_of(&enrollment(dir.path(), &["list", "--json"]));
    assert_eq!(listed["enrollments"].as_array().unwrap().len(), 2);
    assert_eq!(listed["enrollmentGroups"][0]["enrollmentGroupId"], "fleet");
    let shown = json_of(&enrollment(dir.path(), &["show", "fleet", "--group"]));
    assert_eq!(shown["enrollmentGroupId"], "fleet");
    assert!(
        enrollment(dir.path(), &["remove", "dev-2"])
            .status
            .success()
    );

    // The hub started on that dir keeps the printed scope and serves the enrollment;
    // while it runs the command says the database is held.
    let opts = hubtui::hub::HubOptions::ephemeral(dir.path().to_path_buf());
    let hub = hubtui::hub::start(opts).await.unwrap();
    assert_eq!(hub.info.id_scope, scope);
    let served = hubtui::hub::dps::enrollments::get::<
        hubtui::iothub::dps::enrollment::IndividualEnrollment,
    >(&hub.state.store, "dev-1")
    .unwrap();
    assert_eq!(served.device_id(), "d1");
    let held = enrollment(dir.path(), &["list"]);
    assert_eq!(held.status.code(), Some(1));
    assert!(
        stderr(&held).contains("is running and holds its database"),
        "{}",
        stderr(&held)
    );
    assert_eq!(stderr(&held).lines().count(), 1);
    hub.shutdown().await;
}

#[test]
fn bad_input_is_one_sentence_and_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            vec!["add", "d", "--initial-twin", "{"],
            "--initial-twin is not valid JSON",
        ),
        (
            vec!["add", "d", "--primary-key", "not base64!"],
            "not valid base64",
        ),
        (vec!["add", "bad id"], "registration id"),
        (
            vec!["add", "g", "--group", "--device-id", "x"],
            "--device-id applies",
        ),
        (vec!["remove", "nobody"], "does not exist"),
    ] {
        let out = enrollment(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{args:?}");
    }
}
