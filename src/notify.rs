//! Rendering outcomes as notifications (being written).
