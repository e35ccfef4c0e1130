use serde_json::{Map, Value, json};

use super::*;
use crate::runner::Behaviour;

const MINIMAL: &str = r#"
[[telemetry]]
name = "t"
generator = "counter"
"#;

fn field_error(text: &str) -> (String, String) {
    match Profile::parse("p.toml", text) {
        Err(ProfileError::Field { field, problem, .. }) => (field, problem),
        other => panic!("expected a field error, got {other:?}"),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn every_builtin_profile_parses_and_names_itself() {
    for name in BUILTIN_NAMES {
        let p = Profile::builtin(name).unwrap();
        assert_eq!(p.name, name);
        assert!(p.model_id.is_some(), "{name}");
        assert!(p.writable.contains_key(INTERVAL_PROPERTY), "{name}");
        assert_eq!(Profile::load(name).unwrap(), p);
    }
    assert_eq!(Profile::builtin("toaster"), None);
    assert_eq!(
        Profile::builtin("camera").unwrap().component.as_deref(),
        Some("camera1")
    );
}

#[test]
fn a_minimal_profile_gets_defaults() {
    let p = Profile::parse("m", MINIMAL).unwrap();
    assert_eq!(p.interval, Duration::from_secs(DEFAULT_INTERVAL_SECS));
    assert_eq!(
        p.telemetry[0].generator,
        Generator::Counter { start: 0, step: 1 }
    );
    assert!(p.methods.is_empty() && p.writable.is_empty() && p.model_id.is_none());
}

#[test]
fn mistakes_are_one_sentence_naming_the_field() {
    let cases = [
        (
            "interval_secs = 0\n".to_owned() + MINIMAL,
            "interval_secs",
            "from 1 to 3600",
        ),
        ("".to_owned(), "telemetry", "at least one"),
        (
            "[[telemetry]]\nname = \"x\"\ngenerator = \"gauss\"\n".to_owned(),
            "telemetry field x",
            "unknown; use one of random_walk",
        ),
        (
            "[[telemetry]]\nname = \"x\"\ngenerator = \"random_walk\"\nstart = 1.0\nstep = 1.0\nmin = 0.0\n".to_owned(),
            "telemetry field x",
            "needs a number max",
        ),
        (
            "[[telemetry]]\nname = \"x\"\ngenerator = \"constant\"\nvalue = 1\nvalues = [1]\n".to_owned(),
            "telemetry field x",
            "takes value, not values",
        ),
        (
            "[[telemetry]]\nname = \"x\"\ngenerator = \"enum\"\nvalues = []\n".to_owned(),
            "telemetry field x",
            "non-empty values",
        ),
        (
            "[[telemetry]]\nname = \"x\"\ngenerator = \"sine\"\nmin = 2.0\nmax = 1.0\nperiod = 4\n"
                .to_owned(),
            "telemetry field x",
            "min (2) is above max (1)",
        ),
        (
            MINIMAL.to_owned() + "[[telemetry]]\nname = \"t\"\ngenerator = \"counter\"\n",
            "telemetry field t",
            "appears twice",
        ),
        (
            MINIMAL.to_owned() + "[methods.reboot]\nstatus = 42\n",
            "methods.reboot.status",
            "from 100 to 999",
        ),
        (
            MINIMAL.to_owned() + "[writable.level]\ntype = \"integer\"\nmin = 1\nmax = 9\ndefault = 10\n",
            "writable.level",
            "level must be a whole number from 1 to 9",
        ),
        (
            MINIMAL.to_owned() + "[writable.mode]\ntype = \"colour\"\ndefault = \"red\"\n",
            "writable.mode",
            "type \"colour\" is unknown",
        ),
    ];
    for (text, field, problem) in cases {
        let (f, p) = field_error(&text);
        assert_eq!(f, field, "{text}");
        assert!(p.contains(problem), "{p:?} lacks {problem:?}");
    }
    let e = Profile::parse("p.toml", &(MINIMAL.to_owned() + "colour = \"red\"\n")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("the profile p.toml is not valid TOML at line") && msg.contains("colour"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    let e = Profile::load("no-such-profile").unwrap_err().to_string();
    assert!(
        e.contains("no-such-profile") && e.contains("thermostat, air-quality"),
        "{e}"
    );
}

#[test]
fn generators_follow_their_rules_and_a_seed_repeats() {
    let text = r#"
        [[telemetry]]
        name = "walk"
        generator = "random_walk"
        start = 5.0
        step = 2.0
        min = 0.0
        max = 10.0
        decimals = 1
        [[telemetry]]
        name = "wave"
        generator = "sine"
        min = 0.0
        max = 10.0
        period = 4
        [[telemetry]]
        name = "n"
        generator = "counter"
        start = 10
        step = 5
        [[telemetry]]
        name = "pick"
        generator = "enum"
        values = ["a", "b"]
        [[telemetry]]
        name = "fixed"
        generator = "constant"
        value = { on = true }
    "#;
    let profile = Profile::parse("g", text).unwrap();
    let run = |seed| {
        let mut d = ProfileDevice::new(profile.clone(), seed);
        (0..200)
            .map(|_| serde_json::from_slice::<Value>(&d.next_message().0).unwrap())
            .collect::<Vec<_>>()
    };
    let msgs = run(7);
    assert_eq!(msgs, run(7));
    assert_eq!(
        msgs[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["walk", "wave", "n", "pick", "fixed"]
    );
    assert_eq!(msgs[0]["walk"], 5.0);
    let waves: Vec<f64> = msgs[..4]
        .iter()
        .map(|m| m["wave"].as_f64().unwrap())
        .collect();
    assert_eq!(waves, [5.0, 10.0, 5.0, 0.0]);
    assert_eq!(msgs[3]["n"], 25);
    let mut picked = std::collections::BTreeSet::new();
    for m in &msgs {
        let w = m["walk"].as_f64().unwrap();
        assert!((0.0..=10.0).contains(&w), "{w}");
        picked.insert(m["pick"].as_str().unwrap().to_owned());
        assert_eq!(m["fixed"], json!({"on": true}));
    }
    assert_eq!(picked.len(), 2);
}

#[test]
fn messages_carry_profile_properties_and_component() {
    let mut d = ProfileDevice::new(Profile::builtin("camera").unwrap(), 1);
    let (_, p) = d.next_message();
    assert_eq!(p.system("sub"), Some("camera1"));
    assert_eq!(p.system("ct"), Some("application/json"));
    assert_eq!(p.get("kind"), Some("camera"));
    assert_eq!(p.system("mid").unwrap().len(), 36);
}

#[test]
fn methods_answer_as_configured() {
    let mut d = ProfileDevice::new(Profile::builtin("camera").unwrap(), 1);
    assert_eq!(
        d.handle_method("startRecording", &Value::Null),
        (202, json!({"recording": true}))
    );
    assert_eq!(
        d.handle_method("selfDestruct", &Value::Null),
        (404, json!({"error": "unknown method"}))
    );
}

#[test]
fn writable_properties_are_acknowledged_in_plug_and_play_form() {
    let mut d = ProfileDevice::new(Profile::builtin("thermostat").unwrap(), 1);
    let r = d.on_connect(&json!({"desired": {"targetTemperature": 25.5, "$version": 3}}));
    assert_eq!(
        r["targetTemperature"],
        json!({"value": 25.5, "ac": 200, "av": 3, "ad": "completed"})
    );
    assert_eq!(r["telemetryInterval"]["ac"], 203);
    assert_eq!(r["telemetryInterval"]["value"], 5);
    // Not newer than what was applied: ignored.
    assert_eq!(
        d.apply_desired(3, &obj(json!({"telemetryInterval": 1}))),
        None
    );

    let acks = d
        .apply_desired(
            4,
            &obj(json!({"telemetryInterval": 2, "targetTemperature": 99, "colour": "red"})),
        )
        .unwrap();
    assert_eq!(
        acks["telemetryInterval"],
        json!({"value": 2, "ac": 200, "av": 4, "ad": "completed"})
    );
    assert_eq!(d.telemetry_interval(), Duration::from_secs(2));
    assert_eq!(acks["targetTemperature"]["ac"], 400);
    assert_eq!(acks["targetTemperature"]["value"], 25.5);
    assert_eq!(
        acks["targetTemperature"]["ad"],
        "targetTemperature must be a number from 5 to 35"
    );
    assert_eq!(
        acks["colour"],
        json!({"value": null, "ac": 400, "av": 4, "ad": "unknown property"})
    );

    // Removing a desired value returns to the profile's default.
    let acks = d
        .apply_desired(5, &obj(json!({"telemetryInterval": null})))
        .unwrap();
    assert_eq!(acks["telemetryInterval"]["value"], 5);
    assert_eq!(d.telemetry_interval(), Duration::from_secs(5));
}

#[test]
fn a_telemetry_interval_of_zero_is_refused_even_without_a_minimum() {
    let text =
        MINIMAL.to_owned() + "[writable.telemetryInterval]\ntype = \"integer\"\ndefault = 5\n";
    let mut d = ProfileDevice::new(Profile::parse("p", &text).unwrap(), 1);
    let acks = d
        .apply_desired(1, &obj(json!({"telemetryInterval": 0})))
        .unwrap();
    assert_eq!(acks["telemetryInterval"]["ac"], 400);
    assert_eq!(d.telemetry_interval(), Duration::from_secs(5));
}

#[test]
fn the_readme_example_profile_is_valid() {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("```toml\n")
        .expect("the README shows a profile")
        + 8;
    let text = &readme[start..start + readme[start..].find("```").unwrap()];
    let p = Profile::parse("README", text).unwrap();
    assert_eq!(p.telemetry.len(), 5);
    assert_eq!(p.component.as_deref(), Some("sensor1"));
}
