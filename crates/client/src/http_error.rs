//! Transport failures of HTTP requests, in words.

/// A transport error as one sentence (reqwest's Display hides the cause).
/// What went wrong, without reqwest's wrapping (which repeats the URL): the
/// innermost cause, named as a proxy or connection failure where it is one.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let Some(innermost) = causes.last() else {
        return e.to_string();
    };
    if e.is_timeout() {
        "no answer in time".into()
    } else if causes.iter().any(|c| c.contains("tunnel error")) {
        format!("the proxy did not open a tunnel: {innermost}")
    } else if e.is_connect() {
        format!("cannot connect: {innermost}")
    } else {
        causes.join(": ")
    }
}
