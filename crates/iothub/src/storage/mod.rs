//! Azure Blob storage: Shared Key signing, service SAS making, and storage account
//! connection strings. The local hub's blob store checks with these; the client signs
//! with them.

pub mod connection_string;
pub mod service_sas;
pub mod shared_key;
