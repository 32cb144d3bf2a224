//! Carriers as a media node sees them, sans-IO: whether each is up (OPTIONS probes), how many
//! channels this node has open through it, the digest answer to its challenges, and the state
//! of a registration trunk. The node's actor feeds these with responses and instants and sends
//! what they ask for.

pub mod auth;
pub mod health;
pub mod trunk;

pub use auth::{AuthError, Challenge};
pub use health::{CarrierBook, Skip, Transition};
pub use trunk::{Trunk, TrunkAction};
