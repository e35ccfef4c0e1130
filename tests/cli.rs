//! The explorer's command line with the real binary: bad input gets one sentence on stderr
//! and exit status 2 before any terminal escape code is written; hub profiles.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hubtui");
const GOOD: &str = "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0LWtleS1ieXRlcw==";
const KEY: &str = "c2VjcmV0LWtleS1ieXRlcw==";

/// Runs the binary with `args`, XDG dirs and HOME in `home`, and no hub in the environment.
fn hubtui(home: &Path, args: &[&str]) -> Output {
    command(home).args(args).output().unwrap()
}

/// As `hubtui`, with `input` on stdin.
fn hubtui_with_stdin(home: &Path, args: &[&str], input: &str) -> Output {
    let mut child = command(home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
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

/// Exit status 0; stderr shown otherwise.
fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    succeeded(&out);
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
fn profiles_remember_a_storage_account_with_its_key_masked() {
    let home = tempfile::tempdir().unwrap();
    let storage = "DefaultEndpointsProtocol=https;AccountName=uploads1;AccountKey=c2VjcmV0a2V5;EndpointSuffix=core.windows.net";
    let out = hubtui(
        home.path(),
        &["hubs", "add", "cams", GOOD, "--storage", storage],
    );
    succeeded(&out);
    let config = home.path().join("config/hubtui/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("storage = \"{storage}\"")), "{text}");

    let out = hubtui(home.path(), &["hubs", "list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.contains("(storage uploads1 at https://uploads1.blob.core.windows.net)"),
        "{list}"
    );
    assert!(!list.contains("c2VjcmV0a2V5"), "{list}");
    let out = hubtui(home.path(), &["hubs", "list", "--json"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.contains("uploads1") && !list.contains("c2VjcmV0a2V5"),
        "{list}"
    );

    let out = hubtui(
        home.path(),
        &["hubs", "add", "bad", GOOD, "--storage", "AccountName=x"],
    );
    assert!(refused(&out).starts_with("--storage: "), "{out:?}");

    // A profile's storage is checked when the explorer starts, and named as the profile's;
    // so is --storage.
    std::fs::write(&config, text.replace("AccountName=uploads1;", "")).unwrap();
    let out = hubtui(home.path(), &["--hub", "cams"]);
    assert!(
        refused(&out).starts_with("the storage of hub profile \"cams\": "),
        "{out:?}"
    );
    let out = hubtui(home.path(), &["--storage", "nonsense"]);
    assert!(refused(&out).starts_with("--storage: "), "{out:?}");
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
    succeeded(&out);
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

#[test]
fn hubs_add_takes_the_connection_string_from_stdin_or_the_environment() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config/hubtui/config.toml");
    succeeded(&hubtui_with_stdin(
        home.path(),
        &["hubs", "add", "piped", "-"],
        &format!("{GOOD}\n"),
    ));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("[hubs.piped]") && text.contains(KEY),
        "{text}"
    );

    let eventhub = "Endpoint=sb://eh.servicebus.windows.net/;SharedAccessKeyName=p;SharedAccessKey=a2V5;EntityPath=e";
    succeeded(&hubtui_with_stdin(
        home.path(),
        &["hubs", "add", "both", "-", "--eventhub", "-"],
        &format!("{GOOD}\n{eventhub}\n"),
    ));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&format!("eventhub = \"{eventhub}\"")),
        "{text}"
    );

    let out = command(home.path())
        .env("IOTHUB_CONNECTION_STRING", GOOD)
        .args(["hubs", "add", "from-env"])
        .output()
        .unwrap();
    succeeded(&out);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("[hubs.from-env]"), "{text}");

    assert_eq!(
        refused(&hubtui(home.path(), &["hubs", "add", "none"])),
        "hubs add needs the connection string: give it as CONNSTR, as - to read it from stdin, or in IOTHUB_CONNECTION_STRING"
    );
    assert_eq!(
        refused(&hubtui_with_stdin(
            home.path(),
            &["hubs", "add", "empty", "-"],
            ""
        )),
        "CONNSTR -: stdin held no connection string; pipe one line per `-`"
    );
    assert_eq!(
        refused(&hubtui_with_stdin(
            home.path(),
            &["hubs", "add", "bad", "-"],
            "HostName=h;SharedAccessKey=a2V5\n"
        )),
        "stdin: the connection string has no SharedAccessKeyName"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("[hubs.none]") && !text.contains("[hubs.bad]"));
}

/// clap's usage error for `args`: exit status 2, naming `flag`.
fn misplaced(home: &Path, args: &[&str], flag: &str) {
    let out = hubtui(home, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains(flag),
        "{args:?}: {stderr}"
    );
}

#[test]
fn explorer_flags_are_refused_by_the_hub_and_hubs_commands() {
    let home = tempfile::tempdir().unwrap();
    // `--partitions 0` keeps a hub from starting should a misplaced flag be let through.
    let cases: [(&[&str], &str); 8] = [
        (&["hub", "--theme", "x", "--partitions", "0"], "--theme"),
        (&["hub", "--hub", "prod", "--partitions", "0"], "--hub"),
        (&["--theme", "x", "hub", "--partitions", "0"], "--theme"),
        (&["--hub", "prod", "hub", "--partitions", "0"], "--hub"),
        (&["hubs", "list", "--mouse"], "--mouse"),
        (&["hubs", "list", "--log-level", "debug"], "--log-level"),
        (&["hubs", "list", "--hub", "prod"], "--hub"),
        (&["--mouse", "hubs", "list"], "--mouse"),
    ];
    for (args, flag) in cases {
        misplaced(home.path(), args, flag);
    }
    assert!(!home.path().join("config").exists());
}

#[test]
fn flags_are_accepted_where_they_belong() {
    let home = tempfile::tempdir().unwrap();
    // `--help` answers only once every argument before it has parsed.
    for args in [
        &[
            "--log-level",
            "debug",
            "--theme",
            "light",
            "--mouse",
            "--help",
        ][..],
        &["hub", "--log-level", "debug", "--help"],
        &[
            "hubs",
            "add",
            "p",
            "-",
            "--eventhub",
            "-",
            "--ca",
            "ca.pem",
            "--help",
        ],
    ] {
        succeeded(&hubtui(home.path(), args));
    }
    let out = hubtui(home.path(), &["hub", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--log-level") && !help.contains("--hub "),
        "{help}"
    );
    // The explorer's environment variables do not count as flags given to a subcommand.
    let out = command(home.path())
        .env("IOTHUB_CONNECTION_STRING", GOOD)
        .env("HUBTUI_THEME", "light")
        .env("HUBTUI_LOG_LEVEL", "debug")
        .args(["hubs", "list"])
        .output()
        .unwrap();
    succeeded(&out);
}

/// Every `hubtui …` command line the README shows, in `sh` blocks and in inline code, as
/// the words after `hubtui`: optional parts (`[--json]`) taken as given, up to a
/// redirection or the end of the line.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = include_str!("../README.md");
    let mut texts = Vec::new();
    let mut block: Option<&str> = None;
    for line in readme.lines() {
        if let Some(lang) = line.strip_prefix("```") {
            block = if block.is_some() { None } else { Some(lang) };
        } else if block == Some("sh") {
            texts.push(line.to_string());
        } else if block.is_none() {
            texts.extend(line.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    texts
        .iter()
        .filter_map(|text| shlex::split(&text.replace(['[', ']'], " ")))
        .filter_map(|words| {
            let mut words = words.into_iter().skip_while(|w| w.contains('='));
            (words.next()? == "hubtui").then(|| {
                words
                    .take_while(|w| !["<", ">", "|", "&&", ";"].contains(&w.as_str()))
                    .collect()
            })
        })
        .collect()
}

#[test]
fn every_command_in_the_readme_parses() {
    let commands = readme_commands();
    for expected in [
        &[][..],
        &["hub"],
        &["hubs", "list"],
        &["device", "--headless"],
    ] {
        assert!(
            commands
                .iter()
                .any(|c| c.len() >= expected.len() && c.iter().zip(expected).all(|(a, b)| a == b)),
            "no `hubtui {}` found in the README: {commands:?}",
            expected.join(" ")
        );
    }
    let home = tempfile::tempdir().unwrap();
    for args in &commands {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.push("--help");
        let out = hubtui(home.path(), &args);
        assert!(
            out.status.success(),
            "the README shows `hubtui {}`, which does not parse: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
