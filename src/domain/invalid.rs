//! Why a value is refused, said of the value alone.
//!
//! Domain rules (a text's length, a password's strength, a time of day) do
//! not know which GraphQL argument a value came from. They refuse it with
//! an [`Invalid`] that reads as the end of a sentence ("must be 1 to 200
//! characters long, got 0"); the GraphQL edge puts the argument's path in
//! front with [`At::at`], so the client reads "`name` must be 1 to 200
//! characters long, got 0".

use crate::error::{AppError, AppResult};

/// A refused value: what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(problem: impl Into<String>) -> Self {
        Self(problem.into())
    }

    /// The client's error, naming the argument the value was sent as.
    pub fn at(self, argument: &str) -> AppError {
        AppError::BadUserInput(format!("`{argument}` {}", self.0))
    }
}

/// Names the argument of a refused value: `text::required(..).at("name")?`.
pub trait At<T> {
    fn at(self, argument: &str) -> AppResult<T>;
}

impl<T> At<T> for Result<T, Invalid> {
    fn at(self, argument: &str) -> AppResult<T> {
        self.map_err(|invalid| invalid.at(argument))
    }
}
