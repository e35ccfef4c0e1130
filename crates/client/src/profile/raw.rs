//! The profile file as written, and the checks that turn it into a [`Profile`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{
    DEFAULT_INTERVAL_SECS, Generator, INTERVAL_PROPERTY, MethodAnswer, Profile, ProfileError,
    TelemetryField, ValueKind, WritableProperty,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    model_id: Option<String>,
    interval_secs: Option<u64>,
    component: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    telemetry: Vec<RawField>,
    #[serde(default)]
    methods: BTreeMap<String, RawMethod>,
    #[serde(default)]
    writable: BTreeMap<String, RawWritable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    generator: String,
    start: Option<f64>,
    step: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    decimals: Option<u32>,
    period: Option<u64>,
    values: Option<Vec<Value>>,
    value: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethod {
    status: Option<i32>,
    payload: Option<Value>,
    upload: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWritable {
    #[serde(rename = "type")]
    kind: String,
    min: Option<f64>,
    max: Option<f64>,
    default: Value,
}

const GENERATORS: &str = "random_walk, sine, counter, enum, constant";
const MAX_DECIMALS: u32 = 10;

pub(super) fn parse(name: &str, text: &str) -> Result<Profile, ProfileError> {
    let raw: RawProfile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
        profile: name.to_owned(),
        line: e.span().map_or(1, |s| {
            text[..s.start.min(text.len())].lines().count().max(1)
        }),
        message: e.message().trim_end_matches('.').to_owned(),
    })?;
    let bad = |field: String, problem: String| ProfileError::Field {
        profile: name.to_owned(),
        field,
        problem,
    };

    let interval_secs = raw.interval_secs.unwrap_or(DEFAULT_INTERVAL_SECS);
    if !(1..=3600).contains(&interval_secs) {
        return Err(bad(
            "interval_secs".into(),
            "it must be a whole number of seconds from 1 to 3600".into(),
        ));
    }
    if raw.component.as_deref().is_some_and(str::is_empty) {
        return Err(bad("component".into(), "it is empty; leave it out".into()));
    }
    if raw.telemetry.is_empty() {
        return Err(bad(
            "telemetry".into(),
            "a profile needs at least one [[telemetry]] field".into(),
        ));
    }
    let mut telemetry = Vec::new();
    for (i, f) in raw.telemetry.into_iter().enumerate() {
        let label = if f.name.is_empty() {
            format!("telemetry field {}", i + 1)
        } else {
            format!("telemetry field {}", f.name)
        };
        if f.name.is_empty() {
            return Err(bad(label, "its name is empty".into()));
        }
        if telemetry.iter().any(|t: &TelemetryField| t.name == f.name) {
            return Err(bad(label, "the name appears twice".into()));
        }
        let generator = generator(&f).map_err(|problem| bad(label, problem))?;
        telemetry.push(TelemetryField {
            name: f.name,
            generator,
        });
    }
    let methods = raw
        .methods
        .into_iter()
        .map(|(name, m)| {
            let status = m.status.unwrap_or(200);
            if !(100..=999).contains(&status) {
                return Err(bad(
                    format!("methods.{name}.status"),
                    "it must be a status code from 100 to 999".into(),
                ));
            }
            let payload = m
                .payload
                .unwrap_or_else(|| Value::Object(Default::default()));
            if m.upload.as_deref().is_some_and(str::is_empty) {
                return Err(bad(
                    format!("methods.{name}.upload"),
                    "it must name a built-in asset (capture.png) or a file".into(),
                ));
            }
            let upload = m.upload;
            Ok((
                name,
                MethodAnswer {
                    status,
                    payload,
                    upload,
                },
            ))
        })
        .collect::<Result<_, _>>()?;
    let writable = raw
        .writable
        .into_iter()
        .map(|(name, w)| {
            let field = format!("writable.{name}");
            let prop = writable(&name, w).map_err(|problem| bad(field, problem))?;
            Ok((name, prop))
        })
        .collect::<Result<_, _>>()?;
    Ok(Profile {
        name: name.to_owned(),
        model_id: raw.model_id.filter(|m| !m.is_empty()),
        interval: Duration::from_secs(interval_secs),
        component: raw.component,
        properties: raw.properties.into_iter().collect(),
        telemetry,
        methods,
        writable,
    })
}

fn generator(f: &RawField) -> Result<Generator, String> {
    let given: Vec<&str> = [
        ("start", f.start.is_some()),
        ("step", f.step.is_some()),
        ("min", f.min.is_some()),
        ("max", f.max.is_some()),
        ("decimals", f.decimals.is_some()),
        ("period", f.period.is_some()),
        ("values", f.values.is_some()),
        ("value", f.value.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let takes = |allowed: &[&str]| match given.iter().find(|k| !allowed.contains(k)) {
        Some(k) => Err(format!(
            "the {} generator takes {}, not {k}",
            f.generator,
            allowed.join(", ")
        )),
        None => Ok(()),
    };
    let need = |v: Option<f64>, key: &str| {
        v.filter(|x| x.is_finite())
            .ok_or_else(|| format!("the {} generator needs a number {key}", f.generator))
    };
    let decimals = f.decimals.unwrap_or(2);
    if decimals > MAX_DECIMALS {
        return Err(format!("decimals must be at most {MAX_DECIMALS}"));
    }
    let range = || -> Result<(f64, f64), String> {
        let (min, max) = (need(f.min, "min")?, need(f.max, "max")?);
        if min > max {
            return Err(format!("min ({min}) is above max ({max})"));
        }
        Ok((min, max))
    };
    match f.generator.as_str() {
        "random_walk" => {
            takes(&["start", "step", "min", "max", "decimals"])?;
            let (min, max) = range()?;
            let start = need(f.start, "start")?;
            let step = need(f.step, "step")?;
            if !(min..=max).contains(&start) {
                return Err(format!("start ({start}) is outside min..max"));
            }
            if step < 0.0 {
                return Err("step must not be negative".into());
            }
            Ok(Generator::RandomWalk {
                start,
                step,
                min,
                max,
                decimals,
            })
        }
        "sine" => {
            takes(&["min", "max", "period", "decimals"])?;
            let (min, max) = range()?;
            let period = f
                .period
                .filter(|p| *p > 0)
                .ok_or("the sine generator needs a period of at least 1 message")?;
            Ok(Generator::Sine {
                min,
                max,
                period,
                decimals,
            })
        }
        "counter" => {
            takes(&["start", "step"])?;
            let whole = |v: Option<f64>, default: i64, key: &str| match v {
                None => Ok(default),
                Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(x as i64),
                Some(_) => Err(format!("the counter's {key} must be a whole number")),
            };
            Ok(Generator::Counter {
                start: whole(f.start, 0, "start")?,
                step: whole(f.step, 1, "step")?,
            })
        }
        "enum" => {
            takes(&["values"])?;
            match &f.values {
                Some(values) if !values.is_empty() => Ok(Generator::Enum {
                    values: values.clone(),
                }),
                _ => Err("the enum generator needs a non-empty values list".into()),
            }
        }
        "constant" => {
            takes(&["value"])?;
            let value = f
                .value
                .clone()
                .ok_or("the constant generator needs a value")?;
            Ok(Generator::Constant { value })
        }
        other => Err(format!(
            "the generator \"{other}\" is unknown; use one of {GENERATORS}"
        )),
    }
}

fn writable(name: &str, w: RawWritable) -> Result<WritableProperty, String> {
    let kind = match w.kind.as_str() {
        "number" => ValueKind::Number,
        "integer" => ValueKind::Integer,
        "boolean" => ValueKind::Boolean,
        "string" => ValueKind::String,
        other => {
            return Err(format!(
                "the type \"{other}\" is unknown; use number, integer, boolean or string"
            ));
        }
    };
    if (w.min.is_some() || w.max.is_some())
        && !matches!(kind, ValueKind::Number | ValueKind::Integer)
    {
        return Err(format!(
            "min and max only apply to numbers, not to a {}",
            kind.name()
        ));
    }
    if let (Some(min), Some(max)) = (w.min, w.max)
        && min > max
    {
        return Err(format!("min ({min}) is above max ({max})"));
    }
    let prop = WritableProperty {
        kind,
        min: w.min,
        max: w.max,
        default: w.default,
    };
    if !prop.accepts(&prop.default) {
        return Err(format!(
            "its default does not fit: {}",
            prop.expectation(name)
        ));
    }
    if name == INTERVAL_PROPERTY && kind != ValueKind::Integer {
        return Err(format!(
            "{INTERVAL_PROPERTY} is in seconds and must have type integer"
        ));
    }
    Ok(prop)
}
