//! Parsed domain types: once a value of these types exists, it is valid.

pub mod email;
pub mod ids;
pub mod lead;
pub mod time;
pub mod value;

pub use email::EmailAddress;
pub use ids::{LeadId, StageId, TemplateName};
pub use lead::{Event, Lead, SendRecord};
pub use value::{Value, ValueMap};
