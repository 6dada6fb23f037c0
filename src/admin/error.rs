//! How an admin command fails, and the exit code each failure gets.

/// Why an admin command stopped. Nothing was written when it returns one.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The command's input is wrong: fix the arguments (exit code 2).
    #[error("{0}")]
    Invalid(String),
    /// The input is fine but the database says no: no such project, nothing linked (exit code 1).
    #[error("{0}")]
    Refused(String),
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// Reading a key from stdin or writing the answer failed.
    #[error("terminal I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for AdminError {
    fn from(err: sqlx::Error) -> Self {
        // Undefined table or column: the commands run ahead of the schema.
        let behind =
            err.as_database_error().and_then(|e| e.code()).is_some_and(|c| c == "42P01" || c == "42703");
        if behind {
            return AdminError::Refused(
                "the database schema is out of date; run `customer-portal migrate` first".into(),
            );
        }
        AdminError::Database(err)
    }
}

impl AdminError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Invalid(_) => 2,
            _ => 1,
        }
    }
}

pub(super) type Result<T> = std::result::Result<T, AdminError>;
