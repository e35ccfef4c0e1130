//! `hubtui hub enrollment add|list|show|remove`: the local hub's DPS enrollments, managed
//! in its data dir while the hub is stopped (a running hub holds its database; then the
//! service REST API `/enrollments/{id}` and `/enrollmentGroups/{id}` is the way).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::Failure;
use hub::dps::enrollments::{self, EnrollmentDocument};
use hub::store::Store;
use iothub::dps::enrollment::{EnrollmentGroup, IndividualEnrollment};

#[derive(Args, Debug)]
pub struct EnrollmentArgs {
    #[command(subcommand)]
    pub command: EnrollmentCommand,
}

#[derive(Subcommand, Debug)]
pub enum EnrollmentCommand {
    /// Create or replace an enrollment (keys are generated unless given).
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

fn add(a: AddArgs, default_dir: PathBuf) -> Result<(), Failure> {
    let mut body = Map::new();
    let keys = json!({"primaryKey": a.primary_key, "secondaryKey": a.secondary_key});
    body.insert(
        "attestation".into(),
        json!({"type": "symmetricKey", "symmetricKey": keys}),
    );
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
    format!(
        "{what} {id} saved ({})\n  id scope:    {scope}\n  primary key: {}",
        v["provisioningStatus"].as_str().unwrap_or("enabled"),
        v["attestation"]["symmetricKey"]["primaryKey"]
            .as_str()
            .unwrap_or("")
    )
}

fn list(t: Target, default_dir: PathBuf) -> Result<(), Failure> {
    let (store, _) = open(&t, default_dir)?;
    let individual = enrollments::list::<IndividualEnrollment>(&store).map_err(failure)?;
    let groups = enrollments::list::<EnrollmentGroup>(&store).map_err(failure)?;
    let all = json!({"enrollments": individual, "enrollmentGroups": groups});
    print(&all, t.json, || {
        let mut lines = vec![format!(
            "{:<6} {:<32} {:<32} {}",
            "KIND", "ID", "DEVICE", "STATUS"
        )];
        for e in &individual {
            lines.push(row(
                "single",
                &e.registration_id,
                e.device_id(),
                e.settings.enabled(),
            ));
        }
        for g in &groups {
            lines.push(row(
                "group",
                &g.enrollment_group_id,
                "(registration id)",
                g.settings.enabled(),
            ));
        }
        lines.join("\n")
    });
    Ok(())
}

fn row(kind: &str, id: &str, device: &str, enabled: bool) -> String {
    let status = if enabled { "enabled" } else { "disabled" };
    format!("{kind:<6} {id:<32} {device:<32} {status}")
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
