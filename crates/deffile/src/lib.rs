//! Apptainer definition files: text to a typed `Definition`. Pure: no I/O.

/// Placeholder until the parser lands.
#[derive(Debug, thiserror::Error)]
#[error("placeholder")]
pub struct Error;

impl Error {
    pub fn hint(&self) -> Option<String> {
        None
    }
}
