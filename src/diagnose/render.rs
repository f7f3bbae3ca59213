//! Compact text for a model: summary line first, then the top findings.

use super::Report;

impl Report {
    pub fn render(&self) -> String {
        String::new()
    }
}
