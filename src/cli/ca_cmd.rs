//! `hubtui hub ca add|list|remove`: the CA certificates that X.509 CA-signed devices chain
//! up to, registered in a stopped hub's data dir. A certificate registered here counts as
//! verified: Azure's proof-of-possession step (signing a verification code with the CA's
//! key in the portal or CLI) has no counterpart on a hub whose data dir you own.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Failure;
use hub::store::Store;
use hub::x509::authorities::{self, CaCertificate, CaError};
use hub::x509::certificate::MAX_PEM_BYTES;

#[derive(Args, Debug)]
pub struct CaArgs {
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Register a CA certificate (PEM) under a name, replacing one of the same name.
    Add(AddArgs),
    /// List the registered CA certificates.
    List(Target),
    /// Remove a registered CA certificate.
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
    /// The certificate's name on the hub: letters, digits, '-', '.' or '_'.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    pub named: Named,
    /// The CA certificate, one PEM certificate (root or intermediate).
    #[arg(long, value_name = "FILE")]
    pub pem: PathBuf,
}

pub fn run(args: CaArgs, default_dir: PathBuf) -> Result<(), Failure> {
    match args.command {
        CaCommand::Add(a) => add(a, default_dir),
        CaCommand::List(t) => list(t, default_dir),
        CaCommand::Remove(n) => remove(n, default_dir),
    }
}

fn open(target: &Target, default_dir: PathBuf) -> Result<Store, Failure> {
    let dir = target.data_dir.clone().unwrap_or(default_dir);
    // The hub reads the CA certificates at each X.509 connect, so a restart picks them up.
    let (store, _) = super::hub_store::open(
        &dir,
        "stop it, change its CA certificates, and start it again",
    )?;
    Ok(store)
}

fn failure(e: CaError) -> Failure {
    match e {
        CaError::Store(e) => Failure::runtime(e.to_string()),
        other => Failure::usage(other.to_string()),
    }
}

/// A PEM certificate file, bounded in size; `label` names it in the sentence on failure
/// ("the CA certificate ca.pem").
pub(super) fn read_pem(path: &Path, label: &str) -> Result<String, Failure> {
    let unreadable = |e: std::io::Error| Failure::usage(format!("cannot read {label}: {e}"));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut pem = String::new();
    file.take(MAX_PEM_BYTES as u64 + 1)
        .read_to_string(&mut pem)
        .map_err(unreadable)?;
    if pem.len() > MAX_PEM_BYTES {
        return Err(Failure::usage(format!(
            "{label} is larger than {MAX_PEM_BYTES} bytes; give the PEM file of one certificate"
        )));
    }
    Ok(pem)
}

fn time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn describe(ca: &CaCertificate) -> Value {
    json!({
        "name": ca.name,
        "subject": ca.facts.subject,
        "thumbprintSha1": ca.facts.sha1,
        "thumbprintSha256": ca.facts.sha256,
        "notBefore": time(ca.facts.not_before),
        "notAfter": time(ca.facts.not_after),
        "isVerified": true,
        "added": time(ca.added_ms / 1000),
    })
}

fn add(a: AddArgs, default_dir: PathBuf) -> Result<(), Failure> {
    let pem = read_pem(&a.pem, &format!("the CA certificate {}", a.pem.display()))?;
    let store = open(&a.named.target, default_dir)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let ca = authorities::add(&store, &a.named.name, pem.as_bytes(), now_ms).map_err(failure)?;
    if a.named.target.json {
        println!("{}", describe(&ca));
    } else {
        println!(
            "CA certificate {} registered (treated as verified)\n  subject:    {}\n  SHA-256:    {}\n  expires:    {}",
            ca.name,
            ca.facts.subject,
            ca.facts.sha256,
            time(ca.facts.not_after)
        );
    }
    Ok(())
}

fn list(t: Target, default_dir: PathBuf) -> Result<(), Failure> {
    let store = open(&t, default_dir)?;
    let all = authorities::list(&store).map_err(failure)?;
    if t.json {
        let docs: Vec<Value> = all.iter().map(describe).collect();
        println!("{}", Value::Array(docs));
    } else {
        println!("{:<24} {:<21} SUBJECT", "NAME", "EXPIRES");
        for ca in &all {
            println!(
                "{:<24} {:<21} {}",
                ca.name,
                time(ca.facts.not_after),
                ca.facts.subject
            );
        }
    }
    Ok(())
}

fn remove(n: Named, default_dir: PathBuf) -> Result<(), Failure> {
    let store = open(&n.target, default_dir)?;
    if !authorities::remove(&store, &n.name).map_err(failure)? {
        return Err(Failure::usage(format!(
            "no CA certificate is registered as {}; `hubtui hub ca list` shows the names",
            n.name
        )));
    }
    if n.target.json {
        println!("{}", json!({"removed": n.name}));
    } else {
        println!("removed {}", n.name);
    }
    Ok(())
}
