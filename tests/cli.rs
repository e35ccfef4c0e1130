//! The explorer's command line with the real binary: bad input gets one sentence on stderr
//! and exit status 2 before any terminal escape code is written; hub profiles.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_hubtui");
const GOOD: &str = "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0LWtleS1ieXRlcw==";
const KEY: &str = "c2VjcmV0LWtleS1ieXRlcw==";

/// Runs the binary with `args`, XDG dirs and HOME in `home`, and no hub in the environment.
fn hubtui(home: &Path, args: &[&str]) -> Output {
    command(home).args(args).output().unwrap()
}

fn command(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"));
    c
}

/// Exit status 2 and exactly one line, `hubtui: <sentence>`, with no escape codes anywhere.
fn refused(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "escape codes: {stdout:?} {stderr:?}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
        .trim_end()
        .strip_prefix("hubtui: ")
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_string()
}

#[test]
fn a_bad_hub_connection_string_names_the_field() {
    let home = tempfile::tempdir().unwrap();
    let out = hubtui(
        home.path(),
        &["--hub", "HostName=h;SharedAccessKeyName=iothubowner"],
    );
    assert_eq!(
        refused(&out),
        "--hub: the connection string has no SharedAccessKey"
    );

    let out = command(home.path())
        .env(
            "IOTHUB_CONNECTION_STRING",
            "SharedAccessKeyName=p;SharedAccessKey=a2V5",
        )
        .output()
        .unwrap();
    assert_eq!(
        refused(&out),
        "IOTHUB_CONNECTION_STRING: the connection string has no HostName"
    );

    let out = hubtui(
        home.path(),
        &["--hub", "HostName=h;DeviceId=d;SharedAccessKey=a2V5"],
    );
    assert!(refused(&out).starts_with("--hub is a device connection string"));

    let out = hubtui(
        home.path(),
        &[
            "--hub",
            GOOD,
            "--eventhub",
            "Endpoint=sb://x/;SharedAccessKeyName=p",
        ],
    );
    assert_eq!(
        refused(&out),
        "--eventhub: the connection string has no SharedAccessKey"
    );
}

#[test]
fn unknown_profiles_and_themes_are_one_sentence() {
    let home = tempfile::tempdir().unwrap();
    let out = hubtui(home.path(), &["--hub", "prod"]);
    let msg = refused(&out);
    assert!(
        msg.starts_with("there is no hub profile named \"prod\""),
        "{msg}"
    );
    assert!(msg.contains("hubtui hubs add prod CONNSTR"), "{msg}");

    let out = hubtui(home.path(), &["--theme", "neon"]);
    assert!(refused(&out).starts_with("--theme: there is no theme named \"neon\""));
}

#[test]
fn a_bad_proxy_is_one_sentence() {
    let home = tempfile::tempdir().unwrap();
    let out = hubtui(home.path(), &["--proxy", "http://:3128"]);
    assert_eq!(
        refused(&out),
        "--proxy: the proxy setting \"http://:3128\" is not a proxy URL such as http://proxy:3128"
    );
}

#[test]
fn profiles_remember_websockets_and_a_proxy() {
    let home = tempfile::tempdir().unwrap();
    let out = hubtui(
        home.path(),
        &[
            "hubs",
            "add",
            "corp",
            GOOD,
            "--proxy",
            "http://me:s3cret@proxy.corp:3128",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = home.path().join("config/hubtui/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("amqp_websockets = true"), "{text}");
    assert!(
        text.contains("proxy = \"http://me:s3cret@proxy.corp:3128\""),
        "{text}"
    );

    let out = hubtui(home.path(), &["hubs", "list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("(AMQP over WebSockets)"), "{list}");
    assert!(
        list.contains("(proxy http://me:****@proxy.corp:3128)"),
        "{list}"
    );
    assert!(!list.contains("s3cret"), "{list}");

    let out = hubtui(
        home.path(),
        &["hubs", "add", "bad", GOOD, "--proxy", "http://proxy:port"],
    );
    assert!(
        refused(&out).starts_with("--proxy: the proxy setting"),
        "{out:?}"
    );

    // A profile's proxy is checked when the explorer starts, and named as the profile's.
    let edited = text.replace("proxy.corp:3128", "proxy.corp:nope");
    std::fs::write(&config, edited).unwrap();
    let out = hubtui(home.path(), &["--hub", "corp"]);
    assert_eq!(
        refused(&out),
        "the proxy of hub profile \"corp\": the proxy setting \"http://me:****@proxy.corp:nope\" is not a proxy URL such as http://proxy:3128"
    );
}

#[test]
fn without_a_terminal_the_explorer_says_so_and_starts_nothing() {
    let home = tempfile::tempdir().unwrap();
    let out = hubtui(home.path(), &[]);
    assert!(refused(&out).starts_with("the explorer needs a terminal"));
    assert!(!home.path().join("data/hubtui/explorer-hub").exists());
}

#[test]
fn hubs_add_list_remove() {
    let home = tempfile::tempdir().unwrap();
    let out = hubtui(home.path(), &["hubs", "add", "prod", GOOD]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = home.path().join("config/hubtui/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("[hubs.prod]") && text.contains(KEY), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir = std::fs::metadata(config.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir & 0o077, 0, "config dir readable by others: {dir:o}");
    }

    let out = hubtui(home.path(), &["hubs", "list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        list.contains("prod") && list.contains("SharedAccessKey=****"),
        "{list}"
    );
    assert!(!list.contains(KEY), "key shown: {list}");

    let out = hubtui(home.path(), &["hubs", "list", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["name"], "prod");
    assert_eq!(json[0]["hostName"], "myhub.azure-devices.net");
    assert!(!json.to_string().contains(KEY));

    // A bad string is refused before anything is written.
    let out = hubtui(
        home.path(),
        &["hubs", "add", "dev", "HostName=h;SharedAccessKey=a2V5"],
    );
    assert_eq!(
        refused(&out),
        "CONNSTR: the connection string has no SharedAccessKeyName"
    );

    let out = hubtui(home.path(), &["hubs", "remove", "prod"]);
    assert!(out.status.success());
    let out = hubtui(home.path(), &["hubs", "remove", "prod"]);
    assert!(refused(&out).starts_with("there is no hub profile named \"prod\""));
    let out = hubtui(home.path(), &["hubs", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("no saved hubs"));
}
