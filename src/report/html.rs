//! `--html`: placeholder.
use super::Report;
/// The page.
pub fn render(_r: &Report) -> String {
    String::new()
}
