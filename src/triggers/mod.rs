//! Entry points: each trigger's event becomes a command, and each outcome becomes the trigger's
//! answer. Nothing here decides restores; it only translates.

pub mod hand_off;
pub mod signature;
