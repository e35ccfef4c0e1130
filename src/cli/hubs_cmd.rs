//! `hubtui hubs add|list|remove`: named hub profiles in the config file.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::Failure;
use super::profiles::{ConfigFile, Profile, config_path, parse_eventhub, parse_service};
use client::service::Proxy;
use client::service::proxy::masked as masked_proxy;

#[derive(Args, Debug)]
pub struct HubsArgs {
    #[command(subcommand)]
    pub command: HubsCommand,
}

#[derive(Subcommand, Debug)]
pub enum HubsCommand {
    /// Save a hub under a name (replaces a profile of the same name).
    Add {
        /// Profile name, used as `hubtui --hub NAME`.
        name: String,
        /// The hub's service connection string (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…);
        /// `-` reads it from stdin; without it, IOTHUB_CONNECTION_STRING is used. Both keep
        /// the key out of shell history.
        #[arg(value_name = "CONNSTR")]
        connection_string: Option<String>,
        /// Event Hubs-compatible connection string for telemetry; `-` reads it from stdin
        /// (the line after CONNSTR's when both are `-`).
        #[arg(long)]
        eventhub: Option<String>,
        /// CA certificate (PEM) to trust instead of the system's roots, e.g. a local hub's ca.pem.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Reach this hub's AMQP over WebSockets (443), as `hubtui --amqp-websockets`.
        #[arg(long)]
        amqp_websockets: bool,
        /// HTTP proxy for this hub, http://[user:password@]host:port (implies --amqp-websockets).
        #[arg(long, value_name = "URL")]
        proxy: Option<String>,
        /// Storage account connection string for the Files tab (where device uploads go);
        /// `-` reads it from stdin (after any other `-` lines).
        #[arg(long, value_name = "CONNSTR")]
        storage: Option<String>,
    },
    /// List saved hubs (keys masked).
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Forget a saved hub.
    Remove { name: String },
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub fn run(args: HubsArgs) -> Result<(), Failure> {
    let path = config_path();
    let mut config = ConfigFile::load(&path).map_err(Failure::usage)?;
    match args.command {
        HubsCommand::Add {
            name,
            connection_string,
            eventhub,
            ca,
            amqp_websockets,
            proxy,
            storage,
        } => {
            if !valid_name(&name) {
                return Err(Failure::usage(format!(
                    "the profile name \"{name}\" may use only letters, digits, '-', '_' and '.' (at most 64)"
                )));
            }
            let mut stdin = std::io::stdin().lock();
            let (connection_string, source) = service_input(connection_string, &mut stdin)?;
            let cs = parse_service(&connection_string, source).map_err(Failure::usage)?;
            let eventhub = match eventhub.as_deref() {
                Some("-") => Some(stdin_line(&mut stdin, "--eventhub -")?),
                _ => eventhub,
            };
            if let Some(eh) = &eventhub {
                parse_eventhub(eh, "--eventhub").map_err(Failure::usage)?;
            }
            let ca = match ca {
                Some(p) => Some(
                    std::path::absolute(&p)
                        .map_err(|e| Failure::usage(format!("--ca {}: {e}", p.display())))?,
                ),
                None => None,
            };
            if let Some(p) = &ca
                && !p.is_file()
            {
                return Err(Failure::usage(format!(
                    "--ca: there is no file {}",
                    p.display()
                )));
            }
            if let Some(url) = &proxy {
                Proxy::parse(url).map_err(|e| Failure::usage(format!("--proxy: {e}")))?;
            }
            let storage = match storage.as_deref() {
                Some("-") => Some(stdin_line(&mut stdin, "--storage -")?),
                _ => storage,
            };
            if let Some(text) = &storage {
                super::profiles::parse_storage(text, "--storage").map_err(Failure::usage)?;
            }
            let replaced = config
                .hubs
                .insert(
                    name.clone(),
                    Profile {
                        connection_string: cs.to_string(),
                        eventhub: eventhub.map(|e| e.trim().to_string()),
                        ca_certificate: ca,
                        amqp_websockets: amqp_websockets || proxy.is_some(),
                        proxy: proxy.map(|p| p.trim().to_string()),
                        storage: storage.map(|s| s.trim().to_string()),
                    },
                )
                .is_some();
            config.save(&path).map_err(Failure::runtime)?;
            println!(
                "{} hub \"{name}\" ({}) in {}",
                if replaced { "replaced" } else { "saved" },
                cs.host_name,
                path.display()
            );
        }
        HubsCommand::List { json } => list(&config, json),
        HubsCommand::Remove { name } => {
            config.profile(&name, &path).map_err(Failure::usage)?;
            config.hubs.remove(&name);
            config.save(&path).map_err(Failure::runtime)?;
            println!("removed hub \"{name}\" from {}", path.display());
        }
    }
    Ok(())
}

/// The connection string for `hubs add` and what to call it in messages: the argument,
/// a line of stdin for `-`, or IOTHUB_CONNECTION_STRING when the argument is left out.
fn service_input(
    arg: Option<String>,
    stdin: &mut impl BufRead,
) -> Result<(String, &'static str), Failure> {
    match arg {
        Some(text) if text == "-" => Ok((stdin_line(stdin, "CONNSTR -")?, "stdin")),
        Some(text) => Ok((text, "CONNSTR")),
        None => match std::env::var("IOTHUB_CONNECTION_STRING") {
            Ok(text) if !text.trim().is_empty() => Ok((text, "IOTHUB_CONNECTION_STRING")),
            _ => Err(Failure::usage(
                "hubs add needs the connection string: give it as CONNSTR, as - to read it \
                 from stdin, or in IOTHUB_CONNECTION_STRING",
            )),
        },
    }
}

/// One line of stdin, trimmed; `what` names the argument that asked for it.
fn stdin_line(stdin: &mut impl BufRead, what: &str) -> Result<String, Failure> {
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("{what}: cannot read stdin: {e}")))?;
    let line = line.trim();
    if line.is_empty() {
        return Err(Failure::usage(format!(
            "{what}: stdin held no connection string; pipe one line per `-`"
        )));
    }
    Ok(line.to_string())
}

fn masked_service(text: &str) -> String {
    parse_service(text, "").map_or_else(|_| "(not valid)".into(), |c| c.masked())
}

/// The account and endpoint only: the key stays out of listings.
fn masked_storage(text: &str) -> String {
    super::profiles::parse_storage(text, "").map_or_else(
        |_| "(not valid)".into(),
        |c| format!("{} at {}", c.account_name, c.blob_endpoint),
    )
}

fn masked_eventhub(text: &str) -> String {
    parse_eventhub(text, "").map_or_else(|_| "(not valid)".into(), |c| c.masked())
}

fn list(config: &ConfigFile, as_json: bool) {
    if as_json {
        let items: Vec<_> = config
            .hubs
            .iter()
            .map(|(name, p)| {
                let host = parse_service(&p.connection_string, "")
                    .map(|c| c.host_name)
                    .ok();
                json!({
                    "name": name,
                    "hostName": host,
                    "connectionString": masked_service(&p.connection_string),
                    "eventhub": p.eventhub.as_deref().map(masked_eventhub),
                    "caCertificate": p.ca_certificate,
                    "amqpWebSockets": p.amqp_websockets,
                    "proxy": p.proxy.as_deref().map(masked_proxy),
                    "storage": p.storage.as_deref().map(masked_storage),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
        return;
    }
    if config.hubs.is_empty() {
        println!("no saved hubs; add one with `hubtui hubs add NAME CONNSTR`");
        return;
    }
    let width = config
        .hubs
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:width$}  CONNECTION STRING", "NAME");
    for (name, p) in &config.hubs {
        let mut line = format!("{name:width$}  {}", masked_service(&p.connection_string));
        if p.eventhub.is_some() {
            line.push_str("  (+ eventhub)");
        }
        if p.amqp_websockets {
            line.push_str("  (AMQP over WebSockets)");
        }
        if let Some(proxy) = &p.proxy {
            line.push_str(&format!("  (proxy {})", masked_proxy(proxy)));
        }
        if let Some(storage) = &p.storage {
            line.push_str(&format!("  (storage {})", masked_storage(storage)));
        }
        println!("{line}");
    }
}
