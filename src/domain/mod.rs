//! Parsed domain types: once a value of these types exists, it is valid.

pub mod email;
pub mod evaluation;
pub mod ids;
pub mod lead;
pub mod time;
pub mod value;

pub use email::EmailAddress;
pub use evaluation::{EVENTS_PER_KIND, LeadChanges, LoadedLead, NewSend, OlderEvents};
pub use ids::{LeadId, StageId, TemplateName};
pub use lead::{Event, Lead, SendRecord};
pub use value::{Value, ValueMap};

/// Text for one line (a name, a header): control characters such as a line break
/// from a spreadsheet cell become spaces, runs of spaces collapse, ends are trimmed.
pub fn one_line(s: &str) -> String {
    let spaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}
