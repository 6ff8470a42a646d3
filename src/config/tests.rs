//! Config loading and validation: every rejected case checks its message.
