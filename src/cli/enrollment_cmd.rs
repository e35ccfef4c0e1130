//! `hubtui hub enrollment add|list|show|remove`: the local hub's DPS enrollments, managed
//! in its data dir while the hub is stopped (a running hub holds its database; then the
//! service REST API `/enrollments/{id}` and `/enrollmentGroups/{id}` is the way).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::Failure;
use hub::dps::enrollments::{self, EnrollmentDocument};
use hub::store::Store;
use iothub::dps::enrollment::{EnrollmentGroup, EnrollmentSettings, IndividualEnrollment};

#[derive(Args, Debug)]
pub struct EnrollmentArgs {
    #[command(subcommand)]
    pub command: EnrollmentCommand,
}

#[derive(Subcommand, Debug)]
pub enum EnrollmentCommand {
    /// Create or replace an enrollment (keys are generated unless given, or X.509 with
    /// --x509-cert, --x509-ca or --ca-ref).
    Add(AddArgs),
    /// List individual enrollments and enrollment groups.
    List(Target),
    /// Show one enrollment, keys included.
    Show(Named),
    /// Remove an enrollment.
    Remove(Named),
}

#[derive(Args, Debug)]
pub struct Target {
    /// The hub's data directory.
    #[arg(long, env = "HUBTUI_HUB_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct Named {
    /// Registration id (individual) or enrollment group id (with --group).
    pub id: String,
    /// The id names an enrollment group.
    #[arg(long)]
    pub group: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    pub named: Named,
    /// Device id to create (individual enrollments; default: the registration id).
    #[arg(long)]
    pub device_id: Option<String>,
    /// Primary symmetric key, base64 (a group key for --group).
    #[arg(long)]
    pub primary_key: Option<String>,
    /// Secondary symmetric key, base64.
    #[arg(long)]
    pub secondary_key: Option<String>,
    /// Initial twin, JSON: {"tags": {...}, "properties": {"desired": {...}}}.
    #[arg(long)]
    pub initial_twin: Option<String>,
    /// Create the enrollment disabled: its devices are answered `disabled`.
    #[arg(long)]
    pub disabled: bool,
    /// X.509 attestation of an individual enrollment: the device's certificate (PEM); its
    /// subject CN must be the registration id.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["primary_key", "secondary_key", "x509_ca", "ca_ref"])]
    pub x509_cert: Option<PathBuf>,
    /// X.509 attestation of an enrollment group: the CA or intermediate certificate (PEM)
    /// its devices' certificate chains verify to.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["primary_key", "secondary_key"])]
    pub x509_ca: Option<PathBuf>,
    /// X.509 attestation of an enrollment group: the name of a CA certificate registered
    /// with `hubtui hub ca add`.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["primary_key", "secondary_key"])]
    pub ca_ref: Option<String>,
}

pub fn run(args: EnrollmentArgs, default_dir: PathBuf) -> Result<(), Failure> {
    match args.command {
        EnrollmentCommand::Add(a) => add(a, default_dir),
        EnrollmentCommand::List(t) => list(t, default_dir),
        EnrollmentCommand::Show(n) => show(n, default_dir),
        EnrollmentCommand::Remove(n) => remove(n, default_dir),
    }
}

fn open(target: &Target, default_dir: PathBuf) -> Result<(Store, PathBuf), Failure> {
    let dir = target.data_dir.clone().unwrap_or(default_dir);
    super::hub_store::open(
        &dir,
        "stop it first, or manage enrollments over its REST API (PUT /enrollments/{id})",
    )
}

/// A refusal from the enrollment rules is bad input (exit 2), anything else a failure.
fn failure(e: iothub::error::ServiceError) -> Failure {
    match e.code.http_status() {
        400 | 404 | 412 => Failure::usage(e.message),
        _ => Failure::runtime(e.message),
    }
}

fn print(doc: &impl serde::Serialize, json: bool, summary: impl FnOnce() -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(doc).unwrap_or_default());
    } else {
        println!("{}", summary());
    }
}

/// The attestation the flags ask for: X.509 with a certificate or CA, else symmetric keys.
fn attestation(a: &AddArgs) -> Result<Value, Failure> {
    if let Some(path) = &a.x509_cert {
        if a.named.group {
            return Err(Failure::usage(
                "--x509-cert is an individual enrollment's device certificate; give a group its CA with --x509-ca",
            ));
        }
        let pem = read_certificate(path, "--x509-cert")?;
        return Ok(json!({"type": "x509", "x509": {
            "clientCertificates": {"primary": {"certificate": pem}}}}));
    }
    if a.x509_ca.is_some() || a.ca_ref.is_some() {
        if !a.named.group {
            return Err(Failure::usage(
                "--x509-ca and --ca-ref apply to enrollment groups (--group); give an individual enrollment its device certificate with --x509-cert",
            ));
        }
        let mut x509 = Map::new();
        if let Some(path) = &a.x509_ca {
            let pem = read_certificate(path, "--x509-ca")?;
            x509.insert(
                "signingCertificates".into(),
                json!({"primary": {"certificate": pem}}),
            );
        }
        if let Some(name) = &a.ca_ref {
            x509.insert("caReferences".into(), json!({"primary": name}));
        }
        return Ok(json!({"type": "x509", "x509": x509}));
    }
    let keys = json!({"primaryKey": a.primary_key, "secondaryKey": a.secondary_key});
    Ok(json!({"type": "symmetricKey", "symmetricKey": keys}))
}

fn read_certificate(path: &std::path::Path, flag: &str) -> Result<String, Failure> {
    let label = format!("the certificate {} given to {flag}", path.display());
    super::ca_cmd::read_pem(path, &label)
}

fn add(a: AddArgs, default_dir: PathBuf) -> Result<(), Failure> {
    let mut body = Map::new();
    body.insert("attestation".into(), attestation(&a)?);
    if let Some(twin) = &a.initial_twin {
        let twin: Value = serde_json::from_str(twin)
            .map_err(|e| Failure::usage(format!("--initial-twin is not valid JSON: {e}")))?;
        body.insert("initialTwin".into(), twin);
    }
    let status = if a.disabled { "disabled" } else { "enabled" };
    body.insert("provisioningStatus".into(), json!(status));
    if a.named.group && a.device_id.is_some() {
        return Err(Failure::usage(
            "--device-id applies to individual enrollments; a group's devices take their registration id",
        ));
    }
    if let Some(d) = &a.device_id {
        body.insert("deviceId".into(), json!(d));
    }
    let (store, _) = open(&a.named.target, default_dir)?;
    // The scope devices need: made now if the hub has never started, and kept by it.
    let scope =
        hub::dps::load_id_scope(&store, None).map_err(|e| Failure::runtime(e.to_string()))?;
    let body = Value::Object(body);
    let id = &a.named.id;
    let json = a.named.target.json;
    if a.named.group {
        let g: EnrollmentGroup = enrollments::put(&store, id, &body, None).map_err(failure)?;
        print(&g, json, || added("enrollment group", id, &g, &scope));
    } else {
        let e: IndividualEnrollment = enrollments::put(&store, id, &body, None).map_err(failure)?;
        print(&e, json, || added("enrollment", id, &e, &scope));
    }
    Ok(())
}

fn added<T: EnrollmentDocument>(what: &str, id: &str, doc: &T, scope: &str) -> String {
    let v = serde_json::to_value(doc).unwrap_or_default();
    let head = format!(
        "{what} {id} saved ({})\n  id scope:    {scope}",
        v["provisioningStatus"].as_str().unwrap_or("enabled")
    );
    let attestation = &v["attestation"];
    if attestation["type"] != "x509" {
        let key = attestation["symmetricKey"]["primaryKey"]
            .as_str()
            .unwrap_or("");
        return format!("{head}\n  primary key: {key}");
    }
    let x509 = &attestation["x509"];
    let mut lines = vec![head];
    for (label, certs) in [
        ("certificate", &x509["clientCertificates"]),
        ("signing CA", &x509["signingCertificates"]),
    ] {
        let info = &certs["primary"]["info"];
        if let Some(subject) = info["subjectName"].as_str() {
            lines.push(format!("  {label}: {subject}"));
            lines.push(format!(
                "    sha1 {}  valid {} .. {}",
                info["sha1Thumbprint"].as_str().unwrap_or(""),
                info["notBeforeUtc"].as_str().unwrap_or(""),
                info["notAfterUtc"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(name) = x509["caReferences"]["primary"].as_str() {
        lines.push(format!("  CA reference: {name}"));
    }
    lines.join("\n")
}

fn list(t: Target, default_dir: PathBuf) -> Result<(), Failure> {
    let (store, _) = open(&t, default_dir)?;
    let individual = enrollments::list::<IndividualEnrollment>(&store).map_err(failure)?;
    let groups = enrollments::list::<EnrollmentGroup>(&store).map_err(failure)?;
    let all = json!({"enrollments": individual, "enrollmentGroups": groups});
    print(&all, t.json, || {
        let mut lines = vec![format!(
            "{:<6} {:<32} {:<32} {:<12} {}",
            "KIND", "ID", "DEVICE", "ATTESTATION", "STATUS"
        )];
        for e in &individual {
            lines.push(row(
                "single",
                &e.registration_id,
                e.device_id(),
                &e.settings,
            ));
        }
        for g in &groups {
            lines.push(row(
                "group",
                &g.enrollment_group_id,
                "(registration id)",
                &g.settings,
            ));
        }
        lines.join("\n")
    });
    Ok(())
}

fn row(kind: &str, id: &str, device: &str, settings: &EnrollmentSettings) -> String {
    let status = if settings.enabled() {
        "enabled"
    } else {
        "disabled"
    };
    let attestation = &settings.attestation.kind;
    format!("{kind:<6} {id:<32} {device:<32} {attestation:<12} {status}")
}

fn show(n: Named, default_dir: PathBuf) -> Result<(), Failure> {
    let (store, _) = open(&n.target, default_dir)?;
    let doc = if n.group {
        serde_json::to_value(enrollments::get::<EnrollmentGroup>(&store, &n.id).map_err(failure)?)
    } else {
        serde_json::to_value(
            enrollments::get::<IndividualEnrollment>(&store, &n.id).map_err(failure)?,
        )
    }
    .unwrap_or_default();
    // The document is what there is to see: JSON with or without --json.
    print(&doc, true, String::new);
    Ok(())
}

fn remove(n: Named, default_dir: PathBuf) -> Result<(), Failure> {
    let (store, _) = open(&n.target, default_dir)?;
    if n.group {
        enrollments::delete::<EnrollmentGroup>(&store, &n.id, None).map_err(failure)?;
    } else {
        enrollments::delete::<IndividualEnrollment>(&store, &n.id, None).map_err(failure)?;
    }
    if n.target.json {
        println!("{}", json!({"removed": n.id, "group": n.group}));
    } else {
        println!("removed {}", n.id);
    }
    Ok(())
}
