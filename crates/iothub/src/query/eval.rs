//! WHERE evaluation over a twin's JSON, three-valued (true, false, undefined).

use super::{CompareOp, Condition, TextMatch, TypeCheck};
use serde_json::Value;

/// Three-valued truth of the query dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Truth {
    True,
    False,
    Undefined,
}

impl From<bool> for Truth {
    fn from(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }
}

/// The value at `path` and the key it was found under (the twin's spelling, which may
/// differ in case from the query's for the first segment).
pub(super) fn lookup_entry<'a>(root: &'a Value, path: &[String]) -> Option<(&'a str, &'a Value)> {
    let (first, rest) = path.split_first()?;
    let object = root.as_object()?;
    let (mut key, mut current) = object
        .get_key_value(first)
        .or_else(|| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(first)))?;
    for segment in rest {
        (key, current) = current.as_object()?.get_key_value(segment)?;
    }
    Some((key.as_str(), current))
}

pub(super) fn lookup<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    lookup_entry(root, path).map(|(_, v)| v)
}

pub(super) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn ordering(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn compare(op: CompareOp, actual: Option<&Value>, literal: &Value) -> Truth {
    let Some(actual) = actual else {
        return Truth::Undefined;
    };
    use std::cmp::Ordering::{Greater, Less};
    match op {
        CompareOp::Eq => values_equal(actual, literal).into(),
        CompareOp::Ne => (!values_equal(actual, literal)).into(),
        _ => match ordering(actual, literal) {
            None => Truth::Undefined,
            Some(o) => match op {
                CompareOp::Lt => (o == Less).into(),
                CompareOp::Gt => (o == Greater).into(),
                CompareOp::Le => (o != Greater).into(),
                _ => (o != Less).into(),
            },
        },
    }
}

fn type_check(check: TypeCheck, value: Option<&Value>) -> bool {
    let Some(value) = value else {
        return false;
    };
    match check {
        TypeCheck::Defined => true,
        TypeCheck::Null => value.is_null(),
        TypeCheck::String => value.is_string(),
        TypeCheck::Number => value.is_number(),
        TypeCheck::Bool => value.is_boolean(),
        TypeCheck::Object => value.is_object(),
        TypeCheck::Array => value.is_array(),
        TypeCheck::Primitive => !value.is_object() && !value.is_array(),
    }
}

impl Condition {
    pub(super) fn eval(&self, twin: &Value) -> Truth {
        match self {
            Condition::Compare { path, op, value } => compare(*op, lookup(twin, path), value),
            Condition::In {
                path,
                values,
                negated,
            } => match lookup(twin, path) {
                None => Truth::Undefined,
                Some(actual) => (values.iter().any(|v| values_equal(actual, v)) != *negated).into(),
            },
            Condition::Is { check, path } => type_check(*check, lookup(twin, path)).into(),
            Condition::Text { op, path, text } => match lookup(twin, path) {
                Some(Value::String(s)) => match op {
                    TextMatch::StartsWith => s.starts_with(text.as_str()),
                    TextMatch::EndsWith => s.ends_with(text.as_str()),
                    TextMatch::Contains => s.contains(text.as_str()),
                }
                .into(),
                _ => Truth::Undefined,
            },
            Condition::ArrayContains { path, value } => match lookup(twin, path) {
                Some(Value::Array(items)) => items.iter().any(|i| values_equal(i, value)).into(),
                _ => Truth::Undefined,
            },
            Condition::Not(inner) => match inner.eval(twin) {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Undefined => Truth::Undefined,
            },
            Condition::And(terms) => all_or_any(terms, twin, Truth::False, Truth::True),
            Condition::Or(terms) => all_or_any(terms, twin, Truth::True, Truth::False),
        }
    }
}

/// AND (`decisive` False, `otherwise` True) or OR (the other way round) over a chain:
/// the first decisive term decides; else any undefined term leaves the whole undefined.
fn all_or_any(terms: &[Condition], twin: &Value, decisive: Truth, otherwise: Truth) -> Truth {
    let mut result = otherwise;
    for term in terms {
        match term.eval(twin) {
            t if t == decisive => return decisive,
            Truth::Undefined => result = Truth::Undefined,
            _ => {}
        }
    }
    result
}
