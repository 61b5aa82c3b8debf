//! SNS: publishes outcomes to the topic (being written).
