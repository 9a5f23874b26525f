//! Leads and events coming in: CSV files, the HTTP API's batches and the demo's seed
//! share one validation (`csv::lead_upsert`).

pub mod csv;
pub mod seed;
