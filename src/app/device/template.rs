//! The telemetry composer's template: JSON text with placeholders that change at every send.
//! `{{seq}}` is the message counter, `{{now}}` the time (RFC 3339, UTC) and `{{rand A B}}` a
//! uniform number from A to B. Expansion is pure (the counter, clock and random source come
//! in), and its result must be valid JSON, so nothing malformed ever leaves the device.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;

/// Why a template cannot be sent, in one sentence.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "the template opens a placeholder with {{{{ at line {line} but never closes it with }}}}"
    )]
    Unclosed { line: usize },
    #[error(
        "the template has an unknown placeholder {{{{{name}}}}} at line {line}; use {{{{seq}}}}, {{{{now}}}} or {{{{rand A B}}}}"
    )]
    Unknown { name: String, line: usize },
    #[error(
        "the placeholder {{{{{text}}}}} at line {line} needs two numbers, the lower first, as in {{{{rand 20 30}}}}"
    )]
    BadRand { text: String, line: usize },
    #[error("the expanded template is not valid JSON at line {line} column {column}: {reason}")]
    NotJson {
        line: usize,
        column: usize,
        reason: String,
    },
}

/// What the placeholders of one send expand to.
pub struct Values<'a, R: Rng> {
    pub seq: u64,
    pub now: DateTime<Utc>,
    pub rng: &'a mut R,
}

/// Expands every placeholder in `template` and checks that the result is JSON.
pub fn expand<R: Rng>(template: &str, values: &mut Values<'_, R>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    let mut consumed = 0;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let line = line_at(template, consumed + open);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError::Unclosed { line });
        };
        let inner = &after[..close];
        if inner.contains('\n') {
            return Err(TemplateError::Unclosed { line });
        }
        out.push_str(&placeholder(inner, line, values)?);
        let step = open + 2 + close + 2;
        consumed += step;
        rest = &rest[step..];
    }
    out.push_str(rest);
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&out) {
        let full = e.to_string();
        // serde_json appends " at line L column C"; the sentence says it once.
        let reason = full
            .rsplit_once(" at line ")
            .map_or(full.as_str(), |(m, _)| m)
            .to_string();
        return Err(TemplateError::NotJson {
            line: e.line().max(1),
            column: e.column().max(1),
            reason,
        });
    }
    Ok(out)
}

fn line_at(text: &str, byte: usize) -> usize {
    text[..byte].matches('\n').count() + 1
}

fn placeholder<R: Rng>(
    inner: &str,
    line: usize,
    values: &mut Values<'_, R>,
) -> Result<String, TemplateError> {
    let mut words = inner.split_whitespace();
    match words.next() {
        Some("seq") if words.next().is_none() => Ok(values.seq.to_string()),
        Some("now") if words.next().is_none() => {
            Ok(values.now.to_rfc3339_opts(SecondsFormat::Millis, true))
        }
        Some("rand") => {
            let bad = || TemplateError::BadRand {
                text: inner.trim().to_string(),
                line,
            };
            let (Some(a), Some(b), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad());
            };
            random(a, b, values.rng).ok_or_else(bad)
        }
        _ => Err(TemplateError::Unknown {
            name: inner.trim().to_string(),
            line,
        }),
    }
}

/// A uniform number from `a` to `b`: a whole number when both are, else a decimal with as many
/// digits after the point as the more precise bound (at least one).
fn random(a: &str, b: &str, rng: &mut impl Rng) -> Option<String> {
    if let (Ok(lo), Ok(hi)) = (a.parse::<i64>(), b.parse::<i64>()) {
        return (lo <= hi).then(|| rng.random_range(lo..=hi).to_string());
    }
    let (lo, hi) = (a.parse::<f64>().ok()?, b.parse::<f64>().ok()?);
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return None;
    }
    let decimals = [a, b]
        .iter()
        .map(|s| s.split_once('.').map_or(0, |(_, d)| d.len()))
        .max()
        .unwrap_or(0)
        .clamp(1, 6);
    let x = if lo == hi {
        lo
    } else {
        rng.random_range(lo..=hi)
    };
    Some(format!("{x:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn run(template: &str, seq: u64) -> Result<String, TemplateError> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut values = Values {
            seq,
            now: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            rng: &mut rng,
        };
        expand(template, &mut values)
    }

    #[test]
    fn seq_and_now_expand() {
        assert_eq!(
            run("{\"n\": {{seq}}, \"at\": \"{{ now }}\"}", 42).unwrap(),
            "{\"n\": 42, \"at\": \"2026-01-02T03:04:05.000Z\"}"
        );
    }

    #[test]
    fn text_without_placeholders_is_kept() {
        assert_eq!(run("{\"a\": [1, 2]}", 0).unwrap(), "{\"a\": [1, 2]}");
    }

    #[test]
    fn rand_stays_within_its_bounds() {
        for seq in 0..200 {
            let out = run("{\"t\": {{rand 20 22}}, \"h\": {{rand 0.5 0.75}}}", seq).unwrap();
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let t = v["t"].as_i64().unwrap();
            assert!((20..=22).contains(&t), "{out}");
            let h = v["h"].as_f64().unwrap();
            assert!((0.5..=0.75).contains(&h), "{out}");
            // As many decimals as the more precise bound.
            assert_eq!(out.split("\"h\": ").nth(1).unwrap().len(), "0.00}".len());
        }
    }

    #[test]
    fn rand_varies_between_sends() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Utc::now();
        let seen: std::collections::BTreeSet<String> = (0..20)
            .map(|seq| {
                let mut v = Values {
                    seq,
                    now,
                    rng: &mut rng,
                };
                expand("{{rand 0 1000}}", &mut v).unwrap()
            })
            .collect();
        assert!(seen.len() > 10);
    }

    #[test]
    fn unknown_placeholder_is_one_sentence_with_its_line() {
        let e = run("{\n\"a\": {{sequence}}\n}", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the template has an unknown placeholder {{sequence}} at line 2; use {{seq}}, {{now}} or {{rand A B}}"
        );
    }

    #[test]
    fn unclosed_placeholder_is_refused() {
        assert_eq!(
            run("{\"a\": {{seq}\n}", 1).unwrap_err(),
            TemplateError::Unclosed { line: 1 }
        );
        assert_eq!(
            run("{\"a\": {{seq", 1).unwrap_err().to_string(),
            "the template opens a placeholder with {{ at line 1 but never closes it with }}"
        );
    }

    #[test]
    fn bad_rand_bounds_are_refused() {
        for t in [
            "{{rand}}",
            "{{rand 1}}",
            "{{rand a b}}",
            "{{rand 5 1}}",
            "{{rand 1 2 3}}",
        ] {
            let e = run(t, 0).unwrap_err();
            assert!(matches!(e, TemplateError::BadRand { .. }), "{t}: {e:?}");
        }
        assert_eq!(
            run("{{rand 5 1}}", 0).unwrap_err().to_string(),
            "the placeholder {{rand 5 1}} at line 1 needs two numbers, the lower first, as in {{rand 20 30}}"
        );
    }

    #[test]
    fn result_must_be_json() {
        // {{now}} outside quotes is not JSON.
        let e = run("{\"at\": {{now}}}", 0).unwrap_err();
        assert!(matches!(e, TemplateError::NotJson { line: 1, .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("the expanded template is not valid JSON at line 1 column")
        );
        assert!(matches!(
            run("", 0).unwrap_err(),
            TemplateError::NotJson { .. }
        ));
    }
}
