//! Epoch (owner-level) receivers, as Event Hubs enforces them per consumer group and
//! partition: a receiver that attaches with `com.microsoft:epoch` E takes the
//! partition from every receiver with no epoch or an epoch up to E (they are
//! detached with `amqp:link:stolen`); while it holds the partition, receivers
//! without an epoch or with a lower one are refused. Event processors with a
//! checkpoint store rely on this to hand partitions over.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Why a receiver lost its partition, sent to it when it is taken over.
pub type Stolen = oneshot::Receiver<String>;

#[derive(Debug)]
struct Holder {
    id: u64,
    name: String,
    epoch: Option<i64>,
    kick: oneshot::Sender<String>,
}

/// The receivers of every (consumer group, partition), shared by all connections.
#[derive(Debug, Default)]
pub struct PartitionOwners {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// Keyed by lower-cased consumer group (Event Hubs names are case-insensitive).
    holders: HashMap<(String, u32), Vec<Holder>>,
}

/// A receiver's place on its partition; leaving drops it.
pub struct Membership<'a> {
    owners: &'a PartitionOwners,
    key: (String, u32),
    id: u64,
    pub stolen: Stolen,
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        let mut inner = self.owners.lock();
        if let Some(list) = inner.holders.get_mut(&self.key) {
            list.retain(|h| h.id != self.id);
            if list.is_empty() {
                inner.holders.remove(&self.key);
            }
        }
    }
}

fn describe(epoch: Option<i64>) -> String {
    epoch.map_or_else(|| "(none)".to_string(), |e| e.to_string())
}

impl PartitionOwners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a receiver named `name` with `epoch`, taking the partition from the ones
    /// it outranks; or says, as Event Hubs does, why it may not join.
    pub fn join(
        &self,
        consumer_group: &str,
        partition: u32,
        name: &str,
        epoch: Option<i64>,
    ) -> Result<Membership<'_>, String> {
        let key = (consumer_group.to_ascii_lowercase(), partition);
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let list = inner.holders.entry(key.clone()).or_default();
        let highest = list.iter().filter_map(|h| h.epoch).max();
        match (epoch, highest) {
            (None, Some(held)) => {
                return Err(format!(
                    "At least one receiver for the endpoint is created with epoch of '{held}', \
                     and so non-epoch receiver is not allowed. Either reconnect with a higher \
                     epoch, or make sure all epoch receivers are closed or disconnected."
                ));
            }
            (Some(e), Some(held)) if e < held => {
                return Err(format!(
                    "Receiver '{name}' with epoch '{e}' cannot be created because a receiver \
                     with a higher epoch of '{held}' already exists for this partition."
                ));
            }
            (Some(e), _) => {
                for old in std::mem::take(list) {
                    let _ = old.kick.send(format!(
                        "New receiver '{name}' with higher epoch of '{e}' is created hence \
                         current receiver '{}' with epoch '{}' is getting disconnected. If you \
                         are recreating the receiver, make sure a higher epoch is used.",
                        old.name,
                        describe(old.epoch)
                    ));
                }
            }
            (None, None) => {}
        }
        let (kick, stolen) = oneshot::channel();
        list.push(Holder {
            id,
            name: name.to_string(),
            epoch,
            kick,
        });
        Ok(Membership {
            owners: self,
            key,
            id,
            stolen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_higher_or_equal_epoch_takes_the_partition() {
        let owners = PartitionOwners::default();
        let mut plain = owners.join("$Default", 0, "a", None).unwrap();
        let mut first = owners.join("$default", 0, "b", Some(1)).unwrap();
        assert!(plain.stolen.try_recv().unwrap().contains("epoch '(none)'"));
        // Same epoch again (a processor recreating its receiver) takes over too.
        let second = owners.join("$Default", 0, "c", Some(1)).unwrap();
        let why = first.stolen.try_recv().unwrap();
        assert!(
            why.starts_with("New receiver 'c' with higher epoch of '1'"),
            "{why}"
        );

        let refused = owners.join("$Default", 0, "d", None).err().unwrap();
        assert!(refused.contains("created with epoch of '1'"), "{refused}");
        let lower = owners.join("$Default", 0, "e", Some(0)).err().unwrap();
        assert!(lower.contains("higher epoch of '1'"), "{lower}");

        // Other partitions and consumer groups are independent.
        owners.join("$Default", 1, "f", None).unwrap();
        owners.join("other", 0, "g", None).unwrap();

        // Once the epoch receiver leaves, anyone may join.
        drop(second);
        owners.join("$Default", 0, "h", None).unwrap();
    }

    #[test]
    fn receivers_without_epochs_share_a_partition() {
        let owners = PartitionOwners::default();
        let mut a = owners.join("$Default", 0, "a", None).unwrap();
        let _b = owners.join("$Default", 0, "b", None).unwrap();
        assert!(a.stolen.try_recv().is_err());
    }
}
