//! Unit tests for the WHERE additions: the twin functions, NIN, backslash escapes and
//! hexadecimal numbers.

use super::tests::{err, path, twin, w};
use super::*;
use serde_json::json;

fn with(sql_condition: &str, doc: &Value) -> bool {
    parse_query(&format!("SELECT * FROM devices WHERE {sql_condition}"))
        .unwrap_or_else(|e| panic!("{sql_condition}: {e}"))
        .matches(doc)
}

#[test]
fn type_checks_are_true_or_false_never_undefined() {
    let doc = json!({"tags": {"s": "x", "n": 1.5, "b": false, "o": {}, "a": [1], "z": null}});
    let table = [
        ("IS_DEFINED", ["s", "n", "b", "o", "a", "z"].as_slice()),
        ("IS_NULL", &["z"]),
        ("IS_STRING", &["s"]),
        ("IS_NUMBER", &["n"]),
        ("IS_BOOL", &["b"]),
        ("IS_OBJECT", &["o"]),
        ("IS_ARRAY", &["a"]),
        ("IS_PRIMITIVE", &["s", "n", "b", "z"]),
    ];
    for (function, holds_for) in table {
        for key in ["s", "n", "b", "o", "a", "z", "missing"] {
            let want = holds_for.contains(&key);
            assert_eq!(
                with(&format!("{function}(tags.{key})"), &doc),
                want,
                "{function} {key}"
            );
            // Never undefined: NOT flips every answer, a missing property included.
            assert_eq!(
                with(&format!("NOT {function}(tags.{key})"), &doc),
                !want,
                "NOT {function} {key}"
            );
        }
    }
    assert!(w("is_string(DEVICEID)"), "names and functions ignore case");
}

#[test]
fn string_functions_match_strings_and_are_undefined_otherwise() {
    assert!(w("STARTSWITH(deviceId, 'dev-')"));
    assert!(!w("STARTSWITH(deviceId, 'Dev-')"), "case-sensitive");
    assert!(w("ENDSWITH(properties.reported.fw, '.0')"));
    assert!(!w("ENDSWITH(properties.reported.fw, '.1')"));
    assert!(w("CONTAINS(tags.name, '''')"));
    assert!(w("CONTAINS(tags.building, '')"));
    assert!(!w("CONTAINS(tags.building, 'x')"));
    assert!(w("NOT CONTAINS(tags.building, 'x')"));
    // A number or a missing property is neither a match nor a non-match.
    for cond in ["STARTSWITH(tags.floor, '3')", "ENDSWITH(tags.missing, 'x')"] {
        assert!(!w(cond), "{cond}");
        assert!(!w(&format!("NOT {cond}")), "NOT {cond}");
    }
    assert_eq!(
        parse_query("SELECT * FROM devices WHERE endswith(a.b, 'z')")
            .unwrap()
            .condition,
        Some(Condition::Text {
            op: TextMatch::EndsWith,
            path: path("a.b"),
            text: "z".into()
        })
    );
}

#[test]
fn array_contains_compares_elements() {
    let doc = json!({"tags": {"zones": ["a", 2, true, null, {"x": 1}], "s": "a"}});
    assert!(with("ARRAY_CONTAINS(tags.zones, 'a')", &doc));
    assert!(with("ARRAY_CONTAINS(tags.zones, 2.0)", &doc));
    assert!(with("ARRAY_CONTAINS(tags.zones, true)", &doc));
    assert!(with("ARRAY_CONTAINS(tags.zones, null)", &doc));
    assert!(!with("ARRAY_CONTAINS(tags.zones, 'b')", &doc));
    assert!(with("NOT ARRAY_CONTAINS(tags.zones, 'b')", &doc));
    // Not an array, or missing: undefined.
    assert!(!with("ARRAY_CONTAINS(tags.s, 'a')", &doc));
    assert!(!with("NOT ARRAY_CONTAINS(tags.s, 'a')", &doc));
    assert!(!with("NOT ARRAY_CONTAINS(tags.none, 'a')", &doc));
}

#[test]
fn nin_is_not_in() {
    assert!(w("tags.building NIN ['B0', 'B2']"));
    assert!(!w("tags.building nin ['B1']"));
    assert!(!w("tags.missing NIN ['x']"), "undefined, as NOT IN");
    assert_eq!(
        parse_query("SELECT * FROM devices WHERE a NIN [1]")
            .unwrap()
            .condition,
        Some(Condition::In {
            path: path("a"),
            values: vec![json!(1)],
            negated: true
        })
    );
}

#[test]
fn missing_properties_satisfy_no_comparison() {
    for op in ["=", "!=", "<>", "<", ">", "<=", ">="] {
        let cond = format!("tags.missing {op} 1");
        assert!(!w(&cond), "{cond}");
        assert!(!w(&format!("NOT ({cond})")), "NOT {cond}");
    }
}

#[test]
fn backslash_escapes_and_hex_numbers() {
    assert!(w(r"tags.name = 'it\'s'"));
    assert!(w(r#"tags.quote = "say \"hi\"""#));
    assert!(w(r"tags.building = '\u0042\u0031'"));
    assert!(w(r"CONTAINS(tags.name, 't\'')"));
    let doc = json!({"tags": {"path": "C:\\x"}});
    assert!(with(r"tags.path = 'C:\\x'", &doc));
    assert!(w("tags.floor = 0x3"));
    assert!(w("tags.floor > -0x10"));
    assert!(w("tags.floor IN [0X03]"));
    for (sql, kind) in [
        (r"a = 'C:\temp'", QueryErrorKind::BadEscape(r"\t".into())),
        (r"a = '\u12'", QueryErrorKind::BadEscape(r"\u12'".into())),
        (r"a = '\", QueryErrorKind::BadEscape(r"\".into())),
        ("a = 0x", QueryErrorKind::BadNumber("0x".into())),
        ("a = 0xfg", QueryErrorKind::BadNumber("0xfg".into())),
        ("a = 0x+1", QueryErrorKind::BadNumber("0x".into())),
    ] {
        assert_eq!(
            err(&format!("SELECT * FROM devices WHERE {sql}")).kind,
            kind,
            "{sql}"
        );
    }
}

#[test]
fn function_errors_name_what_is_wrong() {
    let cases = [
        (
            "STARTS_WITH(deviceId, 'a')",
            QueryErrorKind::UnknownFunction("STARTS_WITH".into()),
        ),
        (
            "LOWER(deviceId) = 'a'",
            QueryErrorKind::UnknownFunction("LOWER".into()),
        ),
        (
            "STARTSWITH(deviceId)",
            QueryErrorKind::Expected {
                expected: "',' and a string after the property",
                found: "')'".into(),
            },
        ),
        (
            "STARTSWITH(deviceId, 1)",
            QueryErrorKind::Expected {
                expected: "a string as the function's second argument",
                found: "the number 1".into(),
            },
        ),
        (
            "IS_DEFINED('x')",
            QueryErrorKind::Expected {
                expected: "a property path as the function's first argument",
                found: "a string".into(),
            },
        ),
        (
            "IS_DEFINED(a, b)",
            QueryErrorKind::Expected {
                expected: "')' after the function's arguments",
                found: "','".into(),
            },
        ),
        (
            "ARRAY_CONTAINS(a, b)",
            QueryErrorKind::Expected {
                expected: "a constant as the function's second argument",
                found: "'b'".into(),
            },
        ),
        (
            "IS_DEFINED(IS_DEFINED(a))",
            QueryErrorKind::Expected {
                expected: "')' after the function's arguments",
                found: "'('".into(),
            },
        ),
    ];
    for (cond, kind) in cases {
        assert_eq!(
            err(&format!("SELECT * FROM devices WHERE {cond}")).kind,
            kind,
            "{cond}"
        );
    }
    let e = err("SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a')");
    assert_eq!(e.position, 29);
    assert!(
        e.to_string()
            .starts_with("STARTS_WITH is not a function of the twin query language (IS_DEFINED, "),
        "{e}"
    );
}

#[test]
fn functions_combine_with_the_rest_of_the_condition() {
    let _ = twin();
    assert!(w(
        "(STARTSWITH(deviceId, 'dev') OR IS_NULL(tags.floor)) AND NOT IS_OBJECT(tags.floor) AND tags.floor NIN [1, 2]"
    ));
    assert!(!w(
        "STARTSWITH(deviceId, 'dev') AND (IS_ARRAY(tags) OR ENDSWITH(status, 'x'))"
    ));
}
